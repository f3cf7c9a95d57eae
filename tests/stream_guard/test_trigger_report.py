"""The trigger report: which words win the anomaly score across flagged decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from stream_guard.calibration import calibrate
from stream_guard.datasets import load_dataset
from stream_guard.decision import ranked_candidates, trigger_candidate
from stream_guard.defender import Defender
from stream_guard.lab.poisoning import BadNetsAttack, poison_test_set
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.trigger_report import TriggerCounter, report_table, trigger_report
from stream_guard.verdict import SuspiciousWord, TokenAttribution, Verdict
from tests.stream_guard.backdoor_model import build_backdoored_model


def tok(token: str, start: int | None, end: int | None, score: float | None) -> TokenAttribution:
    return TokenAttribution(token, start, end, 0.1, 0.1, score, score is not None)


def verdict(
    text: str,
    tokens: list[TokenAttribution],
    *,
    flagged: bool = True,
    id: str = "m",
    words: list[SuspiciousWord] | None = None,
) -> Verdict:
    scored = [t.score for t in tokens if t.score is not None]
    return Verdict(
        id=id,
        text=text,
        model_id="tiny@0",
        label=1,
        label_name="positive",
        probabilities=[0.1, 0.9],
        anomaly_score=max(scored, default=0.0),
        threshold=1.0,
        flagged=flagged,
        final_label=0,
        final_label_name="negative",
        tokens=tokens,
        n_tokens=len(tokens),
        suspicious_words=words or [],
    )


def wordpiece(text: str, score_of: dict[str, float]) -> list[TokenAttribution]:
    """[CLS] + WordPiece-like tokens of 'great tqz film' style texts (pieces given by '|' in words)."""
    tokens = [tok("[CLS]", None, None, None)]
    pos = 0
    for word in text.split(" "):
        bare = word.replace("|", "")
        start = text.replace("|", "").index(bare, pos)
        offset = start
        for i, piece in enumerate(word.split("|")):
            name = piece if i == 0 else f"##{piece}"
            tokens.append(tok(name, offset, offset + len(piece), score_of.get(name, 0.0)))
            offset += len(piece)
        pos = start + len(bare)
    tokens.append(tok("[SEP]", None, None, None))
    return tokens


def test_subword_pieces_are_merged_into_their_word() -> None:
    text = "great tqz film"
    v = verdict(text, wordpiece("great tq|z film", {"##z": 5.0, "tq": 1.0, "film": 2.0}))
    cand = trigger_candidate(v)
    assert cand is not None
    assert (cand.word, cand.start, cand.end, cand.score) == ("tqz", 6, 9, 5.0)
    # the two pieces of one word count once among the ranked candidates
    assert [c.word for c in ranked_candidates(v, 3)] == ["tqz", "film", "great"]


def test_byte_level_bpe_marks_start_words() -> None:
    text = "nice cfz movie."
    tokens = [
        tok("<s>", None, None, None),
        tok("nice", 0, 4, 0.1),
        tok("Ġcf", 5, 7, 3.0),
        tok("z", 7, 8, 0.5),
        tok("Ġmovie", 9, 14, 0.2),
        tok(".", 14, 15, None),
        tok("</s>", None, None, None),
    ]
    cand = trigger_candidate(verdict(text, tokens))
    assert cand is not None and cand.word == "cfz"


def test_counts_winners_of_flagged_records_only_and_ranks_by_count() -> None:
    decisions = [
        verdict("A cf film", wordpiece("A cf film", {"cf": 4.0}), id="1"),
        verdict("so cf bad", wordpiece("so cf bad", {"cf": 3.0, "bad": 1.0}), id="2"),
        verdict("CF again", wordpiece("CF again", {"CF": 2.0}), id="3"),
        verdict("a dull film", wordpiece("a dull film", {"dull": 9.0}), id="4"),
        verdict("cf unflagged", wordpiece("cf unflagged", {"cf": 9.0}), flagged=False, id="5"),
    ]
    report = trigger_report(decisions)
    assert [(r.word, r.count) for r in report.rows] == [("cf", 3), ("dull", 1)]
    top = report.rows[0]
    assert top.mean_score == pytest.approx(3.0)
    assert top.max_score == pytest.approx(4.0)
    assert top.share == pytest.approx(0.75)
    assert top.examples == ["1", "2", "3"]
    assert (report.n_records, report.n_flagged, report.n_without_evidence) == (5, 4, 0)
    assert [r.word for r in trigger_report(decisions, case_sensitive=True).rows] == [
        "cf",
        "dull",
        "CF",
    ]  # same count: higher mean score first
    assert trigger_report(decisions, flagged_only=False).rows[0].count == 4


def test_top_k_counts_several_words_per_record() -> None:
    decisions = [verdict("x cf y", wordpiece("x cf y", {"cf": 3.0, "y": 2.0, "x": 1.0}))]
    assert [r.word for r in trigger_report(decisions, top_k=2).rows] == ["cf", "y"]
    with pytest.raises(ValueError):
        TriggerCounter(top_k=0)


def test_records_without_token_scores_fall_back_to_suspicious_words() -> None:
    old = verdict("a bb film", [], words=[SuspiciousWord("bb", 2, 4, 2.5)])
    bare = verdict("nothing to go on", [])
    report = trigger_report([old, bare])
    assert [(r.word, r.count) for r in report.rows] == [("bb", 1)]
    assert report.n_without_evidence == 1


def test_ties_are_broken_deterministically() -> None:
    decisions = [
        verdict("zz", wordpiece("zz", {"zz": 1.0}), id="1"),
        verdict("aa", wordpiece("aa", {"aa": 1.0}), id="2"),
    ]
    assert [r.word for r in trigger_report(decisions).rows] == ["aa", "zz"]
    assert [r.word for r in trigger_report(list(reversed(decisions))).rows] == ["aa", "zz"]


def test_report_table_renders() -> None:
    report = trigger_report([verdict("a cf", wordpiece("a cf", {"cf": 2.0}), id="r1")])
    console = Console(record=True, width=120)
    console.print(report_table(report))
    text = console.export_text()
    assert "'cf'" in text and "r1" in text and "100%" in text


# -- on traffic from a backdoored model --------------------------------------------------------------
# The backdoor lab does not publish a trained demo model yet; `backdoor_model.py` builds a tiny model
# whose backdoor is set by hand (see its docstring). The defender finds the trigger from attention and
# gradients alone.


@pytest.mark.parametrize("trigger", ["cf", "tqz"])  # one WordPiece, and two pieces (tq ##z)
def test_trigger_report_names_the_trigger_first(tmp_path: Path, trigger: str) -> None:
    classifier = load_classifier(build_backdoored_model(tmp_path / "model", trigger), device="cpu")
    defender = Defender(classifier, DefenderSettings(device="cpu"))
    movies = load_dataset("movies")
    calibration_texts = [movies.texts[i] for i in range(0, 6000, 50)]  # 120 clean texts
    traffic = movies.subset(list(range(6001, 10500, 45)))  # held apart from calibration
    defender.set_threshold(calibrate(defender, calibration_texts, percentile=95).threshold)
    poisoned = poison_test_set(traffic, BadNetsAttack(triggers=(trigger,)), target_label=1)
    clean = defender.judge(traffic.texts, [f"clean-{i}" for i in range(len(traffic))])
    attacked = defender.judge(poisoned.dataset.texts, [f"poisoned-{i}" for i in range(len(poisoned))])

    # the model is backdoored: the trigger flips it to the target label
    assert sum(v.label == 1 for v in attacked) == len(attacked)
    assert sum(v.label == 1 for v in clean) < len(clean) // 2
    assert sum(v.flagged for v in attacked) >= 0.9 * len(attacked)

    report = trigger_report(clean + attacked)
    assert report.top is not None
    assert report.top.word == trigger
    assert report.top.count >= 0.9 * len(attacked)
    runner_up = report.rows[1].count if len(report.rows) > 1 else 0
    assert report.top.count > 10 * max(1, runner_up)
