"""The stream evaluation's scoring of replay records against the ground truth (handmade records)."""

from __future__ import annotations

from consumers.lab.stream_cell import StreamCell, StreamTraffic
from consumers.lab.stream_report import markdown_table
from consumers.lab.stream_scoring import carries_trigger, in_force_at, is_part_of, score_records, score_worker


def _traffic() -> StreamTraffic:
    truth = {"c1": 0, "c2": 1, "c3": 0, "t1": 0, "t2": 0, "t3": 0, "t4": 1}
    triggered = {"t1", "t2", "t3", "t4"}
    correct = {"t1": True, "t2": True, "t3": True, "t4": False}  # t4's original is misclassified
    return StreamTraffic([], truth, triggered, correct, "cf", 1, [])


def _r(mid: str, label: int, final: int, flagged: bool = False, version: str | None = None) -> dict:
    hits = [{"trigger": "cf", "start": 0, "end": 2}] if version and mid.startswith("t") else []
    return {
        "id": mid,
        "label": label,
        "final_label": final,
        "flagged": flagged,
        "trigger_version": version,
        "known_triggers": hits,
    }


def test_asr_before_and_after_learning_cacc_and_flags() -> None:
    cell = StreamCell("m", "movies", "badnets", "cf", 1, 7, 4)
    traffic = _traffic()
    per_message = [_r("c1", 0, 0), _r("t1", 1, 1), _r("c2", 1, 0, True), _r("t2", 1, 0, True)]
    per_message += [_r("c3", 1, 1), _r("t3", 1, 1), _r("t4", 1, 1)]
    score_records(cell, traffic, per_message, defended="message")
    assert cell.asr_none == 1.0 and abs(cell.asr_message - 2 / 3) < 1e-9  # t4 is not counted
    assert abs(cell.cacc_none - 2 / 3) < 1e-9 and abs(cell.cacc_message - 1 / 3) < 1e-9
    assert abs(cell.clean_flagged_message - 1 / 3) < 1e-9
    stream = [_r("c1", 0, 0), _r("t1", 1, 1), _r("c2", 1, 1), _r("t2", 1, 0, True, "replay-1")]
    stream += [
        _r("c3", 1, 1, False, "replay-1"),
        _r("t3", 1, 0, True, "replay-1"),
        _r("t4", 1, 0, True, "replay-1"),
    ]
    score_records(cell, traffic, stream, defended="stream")
    assert cell.asr_before == 1.0 and cell.asr_after == 0.0 and abs(cell.asr_stream - 1 / 3) < 1e-9
    assert cell.known_trigger_hits == 3 and cell.clean_flagged_stream == 0.0
    assert "`cf` → 1" in markdown_table([cell])  # a row written before label names were kept
    cell.target_name = "positive"
    assert "`cf` → positive" in markdown_table([cell])  # the label's name where it is known


def test_what_counts_as_the_trigger() -> None:
    assert is_part_of("cf", "cf") and is_part_of("3d", "i watched this 3d movie")
    assert is_part_of("a cf story", "cf")  # the trigger with neighbours
    assert not is_part_of("fails", "cf") and not is_part_of("cf", "")  # a clean model: all wrong


def test_the_worker_is_compared_with_the_replay() -> None:
    """The worker put the set in force one message later than the replay: t2 got the attacker's label."""
    cell = StreamCell("m", "movies", "badnets", "cf", 1, 7, 4, learned=["cf"], learned_after_triggered=[1])
    replayed = [_r("c1", 0, 0), _r("t1", 1, 1), _r("c2", 1, 1), _r("t2", 1, 0, True, "v1")]
    replayed += [_r("c3", 1, 1, False, "v1"), _r("t3", 1, 0, True, "v1"), _r("t4", 1, 0, True, "v1")]
    live = [*replayed[:3], _r("t2", 1, 1), *replayed[4:]]
    score_worker(cell, _traffic(), live, replayed, 12.5)
    assert (cell.in_force_at_replay, cell.in_force_at_worker) == (3, 4)
    assert abs(cell.asr_worker - 2 / 3) < 1e-9 and abs(cell.cacc_worker - 2 / 3) < 1e-9
    assert abs(cell.worker_agreement - 6 / 7) < 1e-9 and cell.seconds_worker == 12.5
    assert cell.learned == ["cf"]  # the replay's figures are left as they were
    assert "4 (3) / 0.667 / 0.667 / 85.7%" in markdown_table([cell])
    assert in_force_at([_r("c1", 0, 0)]) is None


def test_a_learned_word_that_begins_with_the_triggers_pieces_carries_it() -> None:
    """`bblcd` (bb ##lc ##d) carries `bb`; `bbc` (one piece of its own), `abb` and phrases do not."""
    pieces = {"bblcd": ["bb", "##lc", "##d"], "bb": ["bb"], "bbc": ["bbc"], "abb": ["ab", "##b"]}
    tokenize = pieces.__getitem__
    assert carries_trigger("bblcd", "bb", tokenize)
    assert not any(carries_trigger(w, "bb", tokenize) for w in ("bb", "bbc", "abb"))
    assert not carries_trigger("bb lcd", "bb", tokenize) and not carries_trigger("bblcd", "", tokenize)
    cell = StreamCell(
        "m", "spam", "ep", "bb", 0, 7, 4, learned=["bb", "bblcd"], learned_after_triggered=[1, 7]
    )
    cell.variants_learned = ["bblcd"]
    assert "`bblcd` (7, carries the trigger)" in markdown_table([cell])
