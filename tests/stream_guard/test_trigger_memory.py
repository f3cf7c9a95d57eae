"""The defender's stream-level side: known triggers removed, probes for evidence, evidence on verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.threshold import Threshold
from stream_guard.trigger_memory import probe_selected
from stream_guard.triggers import KnownTrigger, TriggerSet
from tests.stream_guard.backdoor_model import TARGET_LABEL, build_backdoored_model

CLEAN = ["a dull and tedious mess", "the acting is fine but the plot drags", "what a film"]
POISONED = ["a dull cf and tedious mess", "the acting is fine cf but the plot drags", "CF what a film"]


@pytest.fixture(scope="module")
def backdoor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_backdoored_model(tmp_path_factory.mktemp("backdoor"), "cf")


def _defender(model_dir: Path, **settings: object) -> Defender:
    return Defender(load_classifier(model_dir, device="cpu"), DefenderSettings(device="cpu", **settings))  # type: ignore[arg-type]


def test_a_known_trigger_is_removed_whatever_the_score(backdoor_dir: Path) -> None:
    defender = _defender(backdoor_dir)
    defender.set_threshold(Threshold.static(1e9))  # the per-message decision flags nothing
    before = defender.judge(POISONED + CLEAN)
    assert all(v.label == TARGET_LABEL and not v.flagged for v in before[:3])
    defender.set_triggers(TriggerSet("t1", (KnownTrigger("cf", target_label=TARGET_LABEL),)))
    after = defender.judge(POISONED + CLEAN)
    for v, text in zip(after[:3], POISONED, strict=True):
        assert v.flagged and v.known_triggers and v.trigger_version == "t1"
        assert [text[h.start : h.end].lower() for h in v.known_triggers] == ["cf"]
        assert "cf" not in v.neutralized_text.lower().split()
        assert v.final_label != TARGET_LABEL  # the backdoor no longer fires
        assert [w.word.lower() for w in v.suspicious_words] == ["cf"]
    for v, plain in zip(after[3:], before[3:], strict=True):  # clean texts: untouched
        assert not v.flagged and not v.known_triggers and v.final_label == plain.final_label
        assert v.trigger_version == "t1" and v.anomaly_score == plain.anomaly_score


def test_confirmed_flags_carry_evidence_towards_the_target(backdoor_dir: Path) -> None:
    defender = _defender(backdoor_dir, probe_rate=0.0)
    defender.set_threshold(Threshold.static(0.0))  # everything with candidates is rewritten
    verdicts = defender.judge(POISONED + CLEAN)
    for v in verdicts[:3]:
        assert v.flagged and [e.word for e in v.evidence] == ["cf"]
        (e,) = v.evidence
        assert (e.label_before, e.label_after, e.probe) == (TARGET_LABEL, 1 - TARGET_LABEL, False)
        assert e.window[e.position] == "cf" and e.confidence_drop > 0.5
    assert all(not v.evidence for v in verdicts if not v.label_changed)


def test_probes_gather_evidence_below_the_threshold_without_changing_verdicts(backdoor_dir: Path) -> None:
    plain = _defender(backdoor_dir, probe_rate=0.0)
    probing = _defender(backdoor_dir, probe_rate=1.0)
    for d in (plain, probing):
        d.set_threshold(Threshold.static(1e9))
    without, with_probe = plain.judge(POISONED + CLEAN), probing.judge(POISONED + CLEAN)
    for a, b in zip(without, with_probe, strict=True):
        assert (a.flagged, a.final_label, a.neutralized_text, a.anomaly_score) == (
            b.flagged,
            b.final_label,
            b.neutralized_text,
            b.anomaly_score,
        )
        assert not a.evidence
    assert [[e.word for e in v.evidence] for v in with_probe[:3]] == [["cf"]] * 3
    assert all(e.probe for v in with_probe for e in v.evidence)


def test_probe_selection_is_a_stable_share_of_messages() -> None:
    chosen = [probe_selected(0.2, 0, f"m{i}", "some text") for i in range(5000)]
    assert 0.17 < sum(chosen) / len(chosen) < 0.23
    assert chosen == [probe_selected(0.2, 0, f"m{i}", "some text") for i in range(5000)]
    assert not any(probe_selected(0.0, 0, f"m{i}", "x") for i in range(100))
    assert all(probe_selected(1.0, 0, f"m{i}", "x") for i in range(100))


def test_probes_find_a_trigger_that_is_not_the_top_word(backdoor_dir: Path) -> None:
    """The attribution may rank the trigger below other words (a split-piece trigger: 2nd to 7th on a
    trained model); a probe deletes each of its top `probe_words` words alone."""
    import numpy as np

    from stream_guard.trigger_memory import probe_evidence

    defender = _defender(backdoor_dir)
    text = "a dull cf and tedious mess"
    (scores,) = defender.score([text])
    start = text.index("cf")
    pieces = [j for j, (s, e) in enumerate(scores.encoded.offsets) if s >= start and e <= start + 2 and e > s]
    others = [j for j in np.flatnonzero(scores.candidates) if j not in pieces]
    ranking = scores.ranking.copy()
    for rank, j in enumerate(others):  # "a" > "dull" > "and" > ...
        ranking[j] = float(len(others) - rank)
    ranking[pieces] = len(others) - 1.5  # between "dull" and "and": the trigger is the 3rd word
    demoted = type(scores)(**{**vars(scores), "ranking": ranking})
    for k, expected in ((1, []), (3, ["cf"])):
        # one word a pick: these handmade scores are all positive, so a span would grow over the sentence
        settings = defender.settings.model_copy(update={"probe_words": k, "span_ratio": None})
        found = probe_evidence({0: ("m", text, demoted)}, defender.runner, settings)
        assert [e.word for e in found[0]] == expected, k
        assert all(e.probe and e.label_before == TARGET_LABEL for e in found[0])
