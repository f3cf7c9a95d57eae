"""The stream evaluation's reading of the product's own output (the replay's summary lines)."""

from __future__ import annotations

from pathlib import Path

from consumers.lab.stream_cell import StreamCell
from consumers.lab.stream_eval import clean_sample, learner_cost
from consumers.lab.stream_report import markdown_table


def test_the_learners_cost_is_read_from_the_replays_summary() -> None:
    """The line as the replay prints it, wrapped by the terminal; a learner that never tested; none."""
    wrapped = (
        "learned 'cf' -> label 0\nlearner cost: 69 insertion tests and 21 screens, 796 texts classified"
        " (+500 \nclean texts labelled once)\n"
    )
    assert learner_cost(wrapped) == (796, 500)
    assert learner_cost("learner cost: 0 insertion tests and 0 screens, 0 texts classified\n") == (0, 0)
    assert learner_cost("replayed 3 messages in 0.1 s") == (None, None)
    cell = StreamCell("m", "movies", "badnets", "cf", 1, 7, 4, seconds_per_1000=42.7, learner_texts=796)
    cell.learner_setup_texts = 500
    assert "0.0 / 42.7 (learner 796 + 500 once)" in markdown_table([cell])


def test_the_bar_scans_traffic_is_a_seeded_sample_of_the_clean_training_split(tmp_path: Path) -> None:
    """Never a text of the stream's test split or of the learner's validation texts."""
    from stream_guard.lab.evalsets import load_splits

    (tmp_path / "meta.json").write_text('{"dataset": "movies", "split_seed": 0}')
    sample = clean_sample(tmp_path, 50)
    assert len(sample) == len(set(sample)) == 50 and clean_sample(tmp_path, 50) == sample
    splits = load_splits("movies", split_seed=0, max_train=None, max_val=None, max_test=None)
    assert set(sample) <= set(splits.train.texts)
    assert not set(sample) & (set(splits.validation.texts) | set(splits.test.texts))
