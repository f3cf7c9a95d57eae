"""The lab's result files: partial runs written into one directory accumulate, model by model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from stream_guard.lab.defenses.xgraad import Sweep
from stream_guard.lab.evaluate import ModelEvaluation
from stream_guard.lab.report import write_results
from tests.stream_guard.lab.fakes import toy_model_meta

SIZES = {"validation": 20, "clean_test": 20, "poisoned_test": 8}


def fake_evaluation(model: str, *, asr: float = 0.9, sweep: bool = False, **meta: Any) -> ModelEvaluation:
    """A handmade evaluation: the undefended row and one defense, no score components (so no Fig. 2)."""
    rows = [
        {"defense": "none", "cacc": 0.9, "asr": asr, "asr_without_trigger": 0.05, "seconds_per_1000": 1.0},
        {"defense": "strip", "cacc": 0.85, "asr": 0.25, "precision": 0.5, "recall": 0.5, "fpr": 0.1},
    ]
    figure = Sweep([90.0, 95.0], [0.8, 0.9], [0.1, 0.2], [0.1, 0.05], [0.9, 0.8]) if sweep else None
    meta = toy_model_meta("toy", **meta)
    return ModelEvaluation(model, meta, meta["dataset"], rows, dict(SIZES), sweep=figure, seconds=3.0)


def read(out: Path) -> tuple[dict[str, Any], str]:
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_two_partial_writes_accumulate_both_runs_models(tmp_path: Path) -> None:
    first = fake_evaluation("toy-ep-cf-s0", attack="ep", sweep=True)
    write_results([first], tmp_path, settings={"run": 1})
    (plot,) = json.loads((tmp_path / "results.json").read_text())["models"][0]["plots"].values()
    png = (tmp_path / plot).read_bytes()
    write_results([fake_evaluation("toy-badnets-cf-s0")], tmp_path, settings={"run": 2})

    data, md = read(tmp_path)
    assert [r["model"] for r in data["models"]] == ["toy-badnets-cf-s0", "toy-ep-cf-s0"]  # by model name
    old, new = data["models"][1], data["models"][0]
    assert old["settings"] == {"run": 1} and new["settings"] == {"run": 2} and data["settings"] == {"run": 2}
    assert old["generated"] and new["generated"] and new["generated"] >= old["generated"]
    assert old["plots"] == {"sweep": plot} and (tmp_path / plot).read_bytes() == png  # kept, not redrawn
    assert ModelEvaluation.from_dict(old).sweep == first.sweep
    assert "merged across runs" in md and "2 model(s)" in md
    assert md.index("Model `toy-badnets-cf-s0`") < md.index("Model `toy-ep-cf-s0`")
    assert md.count("| strip |") == 2 and f"![sweep]({plot})" in md
    assert f"From the run of {old['generated']}" in md and "That run's settings:" in md  # old differ


def test_a_model_in_both_runs_keeps_only_the_newer_record(tmp_path: Path) -> None:
    write_results([fake_evaluation("toy-a"), fake_evaluation("toy-b", asr=0.111)], tmp_path)
    write_results([fake_evaluation("toy-b", asr=0.222)], tmp_path)

    data, md = read(tmp_path)
    assert [r["model"] for r in data["models"]] == ["toy-a", "toy-b"]
    assert data["models"][1]["rows"][0]["asr"] == 0.222
    assert md.count("Model `toy-b`") == 1 and "0.222" in md and "0.111" not in md


def test_a_same_named_model_of_another_backdoor_is_refused_and_the_row_kept(tmp_path: Path) -> None:
    write_results([fake_evaluation("toy-badnets-cf-s0", asr=0.111, target=0)], tmp_path)
    for change in ({"target": 1}, {"trigger": "mn"}, {"attack": "ep"}):
        with pytest.raises(ValueError, match="holds toy-badnets-cf-s0 as") as err:
            write_results([fake_evaluation("toy-badnets-cf-s0", asr=0.222, **change)], tmp_path)
        assert "another --out" in str(err.value)
    data, md = read(tmp_path)
    assert data["models"][0]["rows"][0]["asr"] == 0.111 and "0.222" not in md  # nothing replaced
    write_results([fake_evaluation("toy-badnets-cf-s0", asr=0.333, epochs=2.0)], tmp_path)  # retrained
    assert read(tmp_path)[0]["models"][0]["rows"][0]["asr"] == 0.333


def test_fresh_ignores_the_results_already_there(tmp_path: Path) -> None:
    write_results([fake_evaluation("toy-a")], tmp_path)
    write_results([fake_evaluation("toy-b")], tmp_path, fresh=True)
    data, md = read(tmp_path)
    assert [r["model"] for r in data["models"]] == ["toy-b"] and "toy-a" not in md


def test_records_of_a_file_written_before_merging_get_its_run(tmp_path: Path) -> None:
    record = {**fake_evaluation("toy-old").to_dict(), "plots": {}}
    legacy = {"generated": "2024-01-02 03:04 UTC", "notes": [], "settings": {"v": 0}, "models": [record]}
    (tmp_path / "results.json").write_text(json.dumps(legacy))
    write_results([fake_evaluation("toy-new")], tmp_path, settings={"v": 1})
    data, md = read(tmp_path)
    old = data["models"][1]
    assert old["model"] == "toy-old" and old["generated"] == "2024-01-02 03:04 UTC"
    assert old["settings"] == {"v": 0} and "From the run of 2024-01-02 03:04 UTC." in md


@pytest.mark.parametrize(
    "corrupt",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"models": [{"model": "toy-x"}]}),  # a record missing its rows
        json.dumps({"models": [{**fake_evaluation("toy-x").to_dict(), "plots": ["a.png"]}]}),
    ],
)
def test_a_corrupt_results_json_is_replaced_with_a_warning(tmp_path: Path, corrupt: str) -> None:
    (tmp_path / "results.json").write_text(corrupt)
    with capture_logs() as logs:
        write_results([fake_evaluation("toy-a")], tmp_path)
    data, md = read(tmp_path)
    assert [r["model"] for r in data["models"]] == ["toy-a"] and "toy-x" not in md
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert logs[0]["event"] == "lab_results_unreadable_starting_fresh"


def test_from_dict_undoes_to_dict() -> None:
    ev = fake_evaluation("toy-a", sweep=True)
    back = ModelEvaluation.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert back == ev


def test_the_summary_has_one_row_per_model_with_asr_and_cacc_per_defense(tmp_path: Path) -> None:
    write_results(
        [fake_evaluation("toy-ep-cf-s0", attack="ep", asr=0.75), fake_evaluation("toy-badnets-cf-s0")],
        tmp_path,
    )
    _, md = read(tmp_path)
    summary = md[md.index("## Summary") : md.index("\n## ", md.index("## Summary") + 1)]
    lines = [line for line in summary.splitlines() if line.startswith("| toy")]
    assert len(lines) == 2 and "| badnets |" in lines[0] and "| ep |" in lines[1]  # by attack
    assert "| 0.75 / 0.90 | 0.25 / 0.85 |" in lines[1] and "| 0.05 | cpu |" in lines[1]
    assert "none ASR / CACC | strip ASR / CACC" in summary and "rap ASR" not in summary
    assert "ONION" in md[: md.index("## Summary")]  # no onion rows: the note says why


def test_a_model_poisoned_at_another_rate_says_so_in_its_row_and_heading(tmp_path: Path) -> None:
    write_results(
        [fake_evaluation("toy-badnets-cf-s0"), fake_evaluation("toy-badnets-cf-p20-s0", poison_rate=0.2)],
        tmp_path,
    )
    _, md = read(tmp_path)
    summary = md[md.index("## Summary") : md.index("\n## ", md.index("## Summary") + 1)]
    rows = [line for line in summary.splitlines() if line.startswith("| toy")]
    assert sum("`cf` → 0 at 20% |" in row for row in rows) == 1  # the default 10 % is not named
    assert sum("`cf` → 0 |" in row for row in rows) == 1
    assert "## toy · badnets · trigger 'cf' · target 0 at 20%\n" in md
    assert "## toy · badnets · trigger 'cf' · target 0\n" in md


def test_the_stream_column_is_added_in_place_and_the_run_kept(tmp_path: Path) -> None:
    from stream_guard.lab.report import rewrite_results_md

    assert rewrite_results_md(tmp_path) is None  # nothing to render
    write_results(
        [fake_evaluation("toy-ep-cf-s0", attack="ep"), fake_evaluation("toy-badnets-cf-s0")], tmp_path
    )
    before_json = (tmp_path / "results.json").read_text()
    _, md = read(tmp_path)
    assert "stream ASR" not in md
    rewrite_results_md(tmp_path, stream={"toy-badnets-cf-s0": "0.010 / 0.88"})
    data, md = read(tmp_path)
    assert (tmp_path / "results.json").read_text() == before_json  # only the markdown is rendered again
    assert md.startswith(f"# Backdoor lab results\n\nGenerated {data['generated']} ")  # same run stamp
    summary = md[md.index("## Summary") : md.index("\n## ", md.index("## Summary") + 1)]
    rows = {line.split(" | ")[1]: line for line in summary.splitlines() if line.startswith("| toy")}
    assert "| strip ASR / CACC | stream ASR\\* / CACC |" in summary
    assert "| 0.25 / 0.85 | 0.010 / 0.88 |" in rows["badnets"] and "| 0.25 / 0.85 | – |" in rows["ep"]
    assert "stream-level defense" in md[: md.index("## Summary")]  # the note says what the column is


def test_validation_runs_say_so_and_never_share_a_file_with_test_runs(tmp_path: Path) -> None:
    chosen = fake_evaluation("toy-badnets-cf-s0")
    chosen.split = "validation"
    write_results([chosen], tmp_path / "validation")
    data, md = read(tmp_path / "validation")
    assert data["models"][0]["split"] == "validation"
    assert ModelEvaluation.from_dict(data["models"][0]).split == "validation"
    assert "judged on the rest of the validation split" in md and "not on test" in md

    write_results([fake_evaluation("toy-badnets-cf-s0")], tmp_path / "test")
    with pytest.raises(ValueError, match="test-split results"):
        write_results([chosen], tmp_path / "test")
    with pytest.raises(ValueError, match="validation-split results"):
        write_results([fake_evaluation("toy-ep-cf-s0")], tmp_path / "validation")
    write_results([chosen], tmp_path / "test", fresh=True)  # --fresh starts over
    assert read(tmp_path / "test")[0]["models"][0]["split"] == "validation"
    assert ModelEvaluation.from_dict({**data["models"][0], "split": None}).split == "test"  # older records
