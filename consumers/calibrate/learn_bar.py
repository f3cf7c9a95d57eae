"""`calibrate --scan-bar`: measure the trigger learner's insertion bars on the model, for the update.

The learner promotes a word only when, inserted into clean texts, it turns almost all of another label's
texts into one label (90 % by default). How low that bar may go on one model, and whether it must go up,
depends on how strongly the model's ordinary words turn texts: :func:`measure_learn_bar` runs the scan of
:mod:`stream_guard.triggers.bar_scan` on a sample of clean traffic with the calibration texts as the
insertion texts, and returns the :class:`schemas.LearnBar` the calibration job writes into its
threshold update. Every learning process that reads that update (``replay --learn-triggers
--threshold-file``, ``run --learn-triggers`` from the thresholds topic, ``triggers learn
--threshold-file``) applies it (:func:`consumers.pipeline.thresholds.learn_rule_for`), unless
``STREAM_GUARD_LEARN_*`` sets the field itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from schemas import LearnBar

if TYPE_CHECKING:
    from stream_guard.defender import Defender
    from stream_guard.triggers.bar_scan import BarScan

__all__ = ["measure_learn_bar"]


def measure_learn_bar(
    defender: Defender,
    clean_texts: Sequence[str],
    sample: Sequence[str],
    *,
    min_texts: int = 2,
    exclude: Sequence[str] = (),
    max_words: int | None = None,
    margin: float = 0.1,
    progress: bool = True,
) -> tuple[BarScan, LearnBar]:
    """Scan the ordinary words of ``sample`` (clean traffic) on ``defender``'s model, inserting them into
    ``clean_texts``; the scan and the bars it supports, measured against the rule in force now
    (``STREAM_GUARD_LEARN_*``); ``exclude``: known triggers, left out."""
    from tqdm.auto import tqdm

    from stream_guard.triggers.bar_scan import scan_bar
    from stream_guard.triggers.insertion import InsertionTest
    from stream_guard.triggers.learn_settings import learn_rule

    rule = learn_rule()
    test = InsertionTest(clean_texts, defender.predict_proba)

    def bar(words: Iterable[str]) -> Iterable[str]:
        disable = None if progress else True  # None: shown on a terminal only
        return tqdm(words, desc="scanning words", unit="word", file=sys.stderr, disable=disable)

    scan = scan_bar(
        test, sample, rule, min_texts=min_texts, exclude=exclude, max_words=max_words, progress=bar
    )
    values = scan.rule_values(rule, margin=margin)
    return scan, LearnBar(
        min_insertion_rate_unseen=values["min_insertion_rate_unseen"],
        min_insertion_rate=values.get("min_insertion_rate"),
        ceiling=scan.ceiling,
        strongest=scan.tested[0].word if scan.tested else None,
        words=scan.words,
        margin=margin,
    )
