"""The README's lab tables: the verdict per row, the rows chosen, and the block rewritten in place."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumers.lab.readme_tables import (
    bar_readme_table,
    older_percentile,
    read_cells,
    shown_rows,
    stream_column,
    stream_column_from,
    stream_percentile_note,
    stream_readme_table,
    update_readme,
    verdict,
)
from consumers.lab.stream_cell import StreamCell
from tests.consumers.lab.fakes import stream_cell

_cell = stream_cell


def test_a_row_meeting_every_target_is_met() -> None:
    assert verdict(_cell()) == "**met**"


@pytest.mark.parametrize(
    ("change", "missed"),
    [
        ({"learned": [], "learned_after_triggered": [], "asr_after": None}, "not learned"),
        ({"learned_after_triggered": [51]}, "learned late"),
        ({"asr_after": 0.02}, "ASR\\* after"),
        ({"asr_stream": 0.06}, "ASR\\* stream"),
        ({"cacc_stream": 0.79}, "CACC"),
        (
            {"wrong_learned": ["fails"], "learned": ["cf", "fails"], "learned_after_triggered": [2, 9]},
            "other",
        ),
    ],
)
def test_each_missed_target_is_named(change: dict, missed: str) -> None:
    assert verdict(_cell(**change)).startswith("missed:")
    assert missed in verdict(_cell(**change))


def test_a_word_that_carries_the_triggers_pieces_is_shown_not_counted() -> None:
    cell = _cell(learned=["cf", "cfq"], learned_after_triggered=[2, 7], variants_learned=["cfq"])
    assert verdict(cell) == "**met**"
    table = stream_readme_table([cell], percentile=99.0, probe_rate=0.0)
    assert "`cfq` after 7 (carries `cf`'s pieces)" in table
    in_a_set = _cell(trigger="cf mn bb", attack="badnets-set", learned=["mn", "bbx"],
                     learned_after_triggered=[1, 9], variants_learned=["bbx"])  # fmt: skip
    assert "`bbx` after 9 (carries `bb`'s pieces)" in stream_readme_table(
        [in_a_set], percentile=99.0, probe_rate=0.0
    )


def test_a_backdoor_that_did_not_take_and_a_clean_model_are_told_apart() -> None:
    assert verdict(_cell(asr_none=0.05, learned=[], learned_after_triggered=[])).startswith("no working")
    clean = _cell(attack="clean", learned=[], learned_after_triggered=[], asr_none=0.0)
    assert verdict(clean) == "met (nothing learned)"
    assert verdict(_cell(attack="clean", learned=["cf"], asr_none=0.0)).startswith("missed")


def test_the_table_keeps_only_test_rows_at_the_defaults_and_spells_split_pieces() -> None:
    cells = [
        _cell(),
        _cell(model="movies-badnets-qzx-s0", trigger="qzx", target=1, target_name="positive"),
        _cell(model="other-percentile", percentile=95.0),  # only at another percentile: shown, as such
        _cell(model="validation-row", split="validation"),
        _cell(model="probed", probe_rate=0.1),
        _cell(model="scanned-bar", scanned_bar=0.8),
    ]
    table = stream_readme_table(
        cells, percentile=99.0, probe_rate=0.0, tokenize=lambda w: ["q", "##z", "##x"] if w == "qzx" else [w]
    )
    lines = table.splitlines()
    assert len(lines) == 5  # header, rule, three rows
    assert "movies BadNets `cf` → negative | 99 |" in lines[2]
    assert "split-piece `qzx` (q ##z ##x) → positive | 99 |" in lines[3]
    assert "| 95 |" in lines[4]


def test_update_replaces_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- lab-table:stream -->\nold\n<!-- /lab-table:stream -->\noutro\n")
    assert update_readme(readme, "stream", "| new |")
    assert (
        readme.read_text() == "intro\n<!-- lab-table:stream -->\n| new |\n<!-- /lab-table:stream -->\noutro\n"
    )
    assert not update_readme(readme, "stream", "| new |")


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="lab-table:stream"):
        update_readme(readme, "stream", "x")


def test_rows_written_before_target_name_existed_still_read(tmp_path: Path) -> None:
    row = _cell().to_dict()
    del row["target_name"]
    path = tmp_path / "stream.json"
    path.write_bytes(orjson.dumps([row]))
    (cell,) = read_cells(path)
    assert cell.target_name == "" and "→ 0" in stream_readme_table([cell], percentile=99.0, probe_rate=0.0)


def test_a_row_measured_on_a_gpu_says_so() -> None:
    gpu = "cuda: NVIDIA H200"
    table = stream_readme_table(
        [_cell(model="gpu-row", trained_on=gpu, device=gpu), _cell()], percentile=99.0, probe_rate=0.0
    )
    rows = table.splitlines()[2:]
    assert sum("(trained and replayed on NVIDIA H200)" in row for row in rows) == 1


def test_the_bar_table_sets_each_scanned_row_beside_the_shipped_one() -> None:
    partial = dict(
        model="movies-set", attack="badnets-set", trigger="jj qi", target=1, target_name="positive"
    )
    cells = [
        _cell(**partial, learned=["qi"], learned_after_triggered=[11], asr_stream=0.52),
        _cell(
            **partial,
            learned=["qi", "jj"],
            learned_after_triggered=[11, 14],
            asr_stream=0.4,
            scanned_bar=0.84,
            scanned_strongest="splendid",
            scanned_ceiling=0.74,
        ),
        _cell(model="other", scanned_bar=0.75, scanned_strongest="", scanned_ceiling=0.0, split="validation"),
    ]
    lines = bar_readme_table(cells, percentile=99.0, probe_rate=0.0).splitlines()
    assert len(lines) == 3  # header, rule, the one test row with a bar
    row = lines[2]
    assert "`splendid` 74%" in row and "| 0.84 |" in row
    assert "`qi` after 11 → `qi` after 11, `jj` after 14" in row and "0.520 → 0.400" in row
    assert "missed: ASR\\* stream" in row


def test_a_stream_row_of_another_target_under_the_same_name_is_not_the_grid_models() -> None:
    # model names do not hold the target: `bbc-badnets-bb-s0` was trained towards business for a stream
    # row and towards sports for the grid; the grid's row must not show the other model's numbers
    name = "movies-badnets-cf-s0"
    grid_meta = {"trigger": "cf", "target": 1, "trained_on": "cpu"}
    row = _cell(target=0, asr_stream=0.0)
    assert stream_column([row], percentile=99.0, probe_rate=0.0, trainings={name: grid_meta}) == {}
    assert stream_column([row], percentile=99.0, probe_rate=0.0, trainings={name: {**grid_meta, "target": 0}})
    other_trigger = {**grid_meta, "target": 0, "trigger": "mn"}
    assert stream_column([row], percentile=99.0, probe_rate=0.0, trainings={name: other_trigger}) == {}
    # the matching row still counts when a mismatching one comes after it
    later = _cell(target=1, asr_stream=0.5)
    column = stream_column(
        [row, later], percentile=99.0, probe_rate=0.0, trainings={name: {**grid_meta, "target": 0}}
    )
    assert column == {name: "0.000 / 0.81"}
    clean = _cell(model="movies-clean-none-s0", attack="clean", trigger="", target=0, asr_stream=0.0)
    clean_meta = {"trigger": "", "target": 1, "trained_on": "cpu"}  # a clean model has no target to match
    assert stream_column([clean], percentile=99.0, probe_rate=0.0, trainings={clean.model: clean_meta})


def test_the_grid_summary_gets_the_shipped_stream_row_of_each_model(tmp_path: Path) -> None:
    cells = [
        _cell(),
        _cell(percentile=95.0, asr_stream=0.9),  # not the shipped calibration
        _cell(split="validation", asr_stream=0.8),
        _cell(scanned_bar=0.6, asr_stream=0.7),  # a bar scanned for the model, not the shipped rule
        _cell(model="spam-badnets-mb-s0", dataset="spam", trigger="mb", asr_none=0.1, asr_stream=0.05),
        _cell(model="spam-clean-none-s0", attack="clean", trigger="", asr_none=0.0, asr_stream=0.0),
    ]
    column = stream_column(cells, percentile=99.0, probe_rate=0.0)
    assert column == {
        "movies-badnets-cf-s0": "0.040 / 0.81",
        "spam-badnets-mb-s0": "0.050 / 0.81 (no backdoor)",
        "spam-clean-none-s0": "0.000 / 0.81",
    }
    from stream_guard.lab.model_specs import training_id

    gpu = {"trained_on": "cuda: NVIDIA H200", "seconds": 2.0, "steps": 94, "final_loss": 0.1}
    cpu, cpu_again = (
        {**gpu, "trained_on": "cpu", "seconds": 380.8},
        {**gpu, "trained_on": "cpu", "seconds": 412.0},
    )
    name = "movies-badnets-cf-s0"

    def column(cell: StreamCell, grid_meta: dict) -> str:
        return stream_column([cell], percentile=99.0, probe_rate=0.0, trainings={name: grid_meta})[name]

    assert column(cells[0], gpu) == "0.040 / 0.81 †"  # a row of old: another machine than the grid's
    assert column(cells[0], cpu) == "0.040 / 0.81"  # ... the same machine: cannot be told apart
    assert column(_cell(training=training_id(cpu)), cpu) == "0.040 / 0.81"  # the same weights
    assert column(_cell(training=training_id(cpu_again)), cpu) == "0.040 / 0.81 †"  # same recipe, retrained
    assert training_id(cpu) != training_id(cpu_again) and training_id({}) == ""
    assert stream_column_from(tmp_path) == {}  # no stream.json: no column
    from consumers.lab.stream_eval import default_percentile, default_probe_rate

    shipped = _cell(percentile=default_percentile(), probe_rate=default_probe_rate())
    (tmp_path / "stream.json").write_bytes(orjson.dumps([shipped.__dict__, cells[2].__dict__]))
    assert stream_column_from(tmp_path) == {"movies-badnets-cf-s0": "0.040 / 0.81"}


def test_the_tables_show_each_models_row_at_the_default_percentile_else_at_the_earlier_one() -> None:
    """After the default moved and before the stream grid ran again, the older rows stay in the tables,
    marked, beside the rows measured at the new default (a note counts them) instead of the tables
    emptying or mixing unmarked."""
    older = [_cell(model=f"m{i}", percentile=99.0) for i in range(3)] + [_cell(model="x", percentile=90.0)]
    assert older_percentile(older, percentile=95.0, probe_rate=0.0) == 99.0
    replayed = [
        *older,
        _cell(model="m0", percentile=95.0, asr_stream=0.0),
        _cell(model="new", percentile=95.0),
    ]
    shown = shown_rows(replayed, percentile=95.0, probe_rate=0.0)
    assert sorted((c.model, c.percentile) for c in shown) == [
        ("m0", 95.0),
        ("m1", 99.0),
        ("m2", 99.0),
        ("new", 95.0),
    ]  # m0 at the default only; x (at neither) not shown
    column = stream_column(replayed, percentile=95.0, probe_rate=0.0)
    assert column["m0"] == "0.000 / 0.81" and column["m1"] == "0.040 / 0.81 (p99)"
    table = stream_readme_table(replayed, percentile=95.0, probe_rate=0.0)
    assert table.count("| 99 |") == 2 and table.count("| 95 |") == 2
    note = stream_percentile_note(replayed, percentile=95.0, probe_rate=0.0)
    assert note.startswith("2 of 4 models") and "99th" in note and "95th" in note
    only_default = [_cell(model="new", percentile=95.0)]
    assert stream_percentile_note(only_default, percentile=95.0, probe_rate=0.0) == ""
    assert (
        older_percentile(
            [_cell(model="v", percentile=95.0, split="validation")], percentile=99.0, probe_rate=0.0
        )
        is None
    )
    scanned = [_cell(model="m1", percentile=99.0, scanned_bar=0.6, asr_stream=0.01)]
    bar = bar_readme_table([*replayed, *scanned], percentile=95.0, probe_rate=0.0)
    assert "(p99)" in bar and "0.040 → 0.010" in bar  # beside the shipped rule's row at the same percentile
