"""`replay --learn-triggers`: the learning replay the command runs, and what it reports.

The learner tests candidates on the ``--clean-texts`` (the calibration texts) with the rule of
``STREAM_GUARD_LEARN_*`` and the ``--threshold-file``'s measured bar (``calibrate --scan-bar``); a
``--triggers`` file's triggers stay known and its revoked words unlearned. The report prints each
promotion, the bar and the learner's cost, and writes the learned set (``--triggers-out``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from consumers.cli.common import fail
from consumers.replay.run import EPOCH
from schemas import ThresholdUpdate, TriggerUpdate

if TYPE_CHECKING:
    from consumers.replay.learn import LearningReplay
    from stream_guard.defender import Defender

__all__ = ["learning_for", "report_learning"]


def learning_for(
    defender: Defender,
    clean: str,
    max_bytes: int,
    fixed_time: datetime | None,
    given: TriggerUpdate | None,
    threshold: ThresholdUpdate | None,
) -> LearningReplay:
    """The learning replay; a --triggers file's triggers stay known and its revoked words unlearned; the
    --threshold-file's measured learner bar (``calibrate --scan-bar``) applies."""
    from consumers.calibrate.job import CalibrationInputError, load_clean_texts
    from consumers.pipeline.thresholds import learn_rule_for
    from consumers.replay.learn import learning_replay
    from consumers.replay.run import replay_pipeline

    try:
        texts = load_clean_texts(clean).texts
        rule = learn_rule_for(threshold)
    except (CalibrationInputError, ValueError) as exc:
        fail(str(exc))
    pipeline = replay_pipeline(defender, scored_at=fixed_time, max_bytes=max_bytes)
    current = defender.triggers
    extra = list(current.triggers) if current is not None else []
    revoked = list(given.revoked) if given else []
    return learning_replay(pipeline, texts, extra=extra, revoked=revoked, rule=rule)


def report_learning(
    console: Console, learning: LearningReplay, model_id: str, out: Path | None, given: TriggerUpdate | None
) -> None:
    """Print each promotion; write the learned set merged into the --triggers file's (pins, revocations)."""
    from consumers.pipeline.triggers import update_from_learned, write_trigger_file

    for p in learning.promotions:
        t = p.trigger
        console.print(
            f"[bold]learned[/bold] {t.text!r} -> label {t.target_label} after {p.after_messages} messages "
            f"({t.evidence_text}, insertion {t.insertion_rate:.0%} of {t.insertion_texts}, "
            f"clean rate {t.clean_rate:.2%})"
        )
    if not learning.promotions:
        console.print("learned no trigger")
    rule = learning.learner.rule
    console.print(
        f"insertion bar: {rule.min_insertion_rate:.0%}, "
        f"{min(rule.min_insertion_rate, rule.min_insertion_rate_unseen):.0%} for a word in no clean text"
    )
    test = learning.learner.test
    labelled = f" (+{len(test.clean_texts)} clean texts labelled once)" if test.calls else ""
    console.print(
        f"learner cost: {test.calls - test.screens} insertion tests and {test.screens} screens, "
        f"{test.texts} texts classified{labelled}"
    )
    if out is not None:
        last = max((p.trigger.last_seen for p in learning.promotions if p.trigger.last_seen), default=None)
        update = update_from_learned(
            model_id, learning.learner.learned, previous=given, created_at=last or EPOCH
        )
        try:
            write_trigger_file(out, update)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        console.print(f"wrote {len(update.triggers)} trigger(s) to {out} (version {update.version})")
