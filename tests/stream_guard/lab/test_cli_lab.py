"""`stream-guard lab eval` end to end on a tiny random model, and `lab grid --dry-run`."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from consumers.cli.app import app
from tests.stream_guard.lab.fakes import toy_model_meta


def _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset):
    model = tmp_path / "toy-badnets-cf-s0"
    shutil.copytree(tiny_model_dir("bert"), model)
    meta = toy_model_meta(toy_dataset, max_length=32, clean_accuracy=0.5, asr=0.5)
    (model / "meta.json").write_text(json.dumps(meta))
    return model


def test_lab_eval_prints_and_writes_results_and_plots(tmp_path, tiny_model_dir, toy_dataset) -> None:
    model = _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset)
    out = tmp_path / "out"
    sizes = ["--max-val", "20", "--max-test", "20", "--max-poisoned", "8", "--strip-copies", "4"]
    result = CliRunner().invoke(app, ["lab", "eval", "--model", str(model), *sizes, "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("none", "xgraad-paper", "xgraad", "strip", "rap", "CACC", "ASR"):
        assert name in result.output
    data = json.loads((out / "results.json").read_text())
    (record,) = data["models"]
    assert record["sizes"] == {"validation": 20, "clean_test": 20, "poisoned_test": 8}
    rows = {r["defense"]: r for r in record["rows"]}
    assert list(rows) == ["none", "xgraad-paper", "xgraad", "strip", "rap"]
    for name, row in rows.items():
        assert 0.0 <= row["cacc"] <= 1.0 and 0.0 <= row["asr"] <= 1.0, name
        assert row["seconds_per_1000"] > 0
        if name != "none":
            assert row["fpr"] is not None and row["auroc"] is not None
    assert record["sweep_check"]["agree"] is True  # the sweep reproduces the direct run at p95
    assert len(record["sweep"]["percentiles"]) == len(record["sweep"]["cacc"])
    for kind in ("scores", "sweep"):
        png = out / record["plots"][kind]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    assert "| xgraad-paper |" in md and "ONION" in md


def test_lab_eval_on_the_validation_split_keeps_out_of_test_results(
    tmp_path, tiny_model_dir, toy_dataset
) -> None:
    model = _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset)
    sizes = ["--max-val", "10", "--max-test", "8", "--max-poisoned", "4", "--defenses", "none,xgraad"]
    out = tmp_path / "validation"
    args = ["lab", "eval", "--model", str(model), *sizes, "--no-sweep", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--split", "validation"])
    assert result.exit_code == 0, result.output
    assert "validation split" in result.output
    (record,) = json.loads((out / "results.json").read_text())["models"]
    assert record["split"] == "validation" and record["settings"]["split"] == "validation"
    assert record["sizes"] == {"validation": 10, "clean_test": 8, "poisoned_test": 4}
    refused = CliRunner().invoke(app, args)  # a test run into the validation results: refused, up front
    assert refused.exit_code == 2 and "validation-split results" in refused.output
    wrong = CliRunner().invoke(app, [*args, "--split", "train"])
    assert wrong.exit_code == 2 and "split" in wrong.output


def test_lab_eval_refuses_up_front_to_replace_a_row_of_another_backdoor(
    tmp_path, tiny_model_dir, toy_dataset
) -> None:
    model = _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset)
    out = tmp_path / "out"
    sizes = ["--max-val", "10", "--max-test", "8", "--max-poisoned", "4", "--defenses", "none"]
    args = ["lab", "eval", "--model", str(model), *sizes, "--no-sweep", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = (out / "results.json").read_text()
    meta = json.loads((model / "meta.json").read_text())
    (model / "meta.json").write_text(json.dumps({**meta, "target": 1}))  # the same name, towards label 1
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "holds toy-badnets-cf-s0 as" in result.output
    assert "Traceback" not in result.output and "CACC" not in result.output  # nothing was evaluated
    assert (out / "results.json").read_text() == before


def test_lab_eval_fails_cleanly_without_meta(tmp_path, tiny_model_dir) -> None:
    model = tmp_path / "bare"
    shutil.copytree(tiny_model_dir("bert"), model)
    result = CliRunner().invoke(app, ["lab", "eval", "--model", str(model)])
    assert result.exit_code == 2 and "meta.json" in result.output


def test_lab_eval_rejects_an_unknown_defense(tmp_path, tiny_model_dir, toy_dataset) -> None:
    model = _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset)
    result = CliRunner().invoke(app, ["lab", "eval", "--model", str(model), "--defenses", "none,bki"])
    assert result.exit_code == 2 and "bki" in result.output


def test_lab_eval_onion_without_its_language_model_is_one_line(
    tmp_path, tiny_model_dir, toy_dataset, monkeypatch
) -> None:
    model = _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset)
    monkeypatch.setenv("STREAM_GUARD_ONION_LM", str(tmp_path / "no-such-lm"))
    result = CliRunner().invoke(app, ["lab", "eval", "--model", str(model), "--defenses", "onion"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no-such-lm" in lines[0] and "lab-onion" in lines[0]


def test_lab_grid_dry_run_prints_an_estimate(tmp_path) -> None:
    result = CliRunner().invoke(app, ["lab", "grid", "--dry-run", "--models-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "16 cells" in result.output and "estimate" in result.output  # 2 datasets x 4 attacks x 2
    first = ["lab", "grid", "--dry-run", "--models-dir", str(tmp_path), "--triggers", "first"]
    assert "8 cells" in CliRunner().invoke(app, first).output


def test_lab_grid_resume_with_a_corpus_not_installed_is_one_line(tmp_path, monkeypatch) -> None:
    from stream_guard.datasets import readers

    def not_installed(name: str):
        raise readers.DatasetError(f"dataset {name!r} is read from a package that is not installed")

    monkeypatch.setattr(readers, "_load_builtin", not_installed)
    from stream_guard.lab.report import write_results
    from tests.stream_guard.lab.test_report import fake_evaluation

    out = (
        tmp_path / "lab"
    )  # an earlier run's record of the cell: --resume reads the corpus to match its recipe
    write_results([fake_evaluation("bbc-badnets-cf-s0")], out)
    args = ["lab", "grid", "--resume", "--dry-run", "--datasets", "bbc", "--attacks", "badnets"]
    result = CliRunner().invoke(
        app, [*args, "--triggers", "first", "--out", str(out), "--models-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'bbc'" in lines[0] and "not installed" in lines[0], result.output


def test_the_grid_has_two_triggers_and_both_targets_per_attack() -> None:
    from stream_guard.lab.attacks import ATTACKS, make_attack
    from stream_guard.lab.grid import GRID_TRIGGERS, grid_cells

    for attack in ATTACKS:
        if attack == "clean":
            continue
        pairs = GRID_TRIGGERS[attack]
        assert len({t for t, _ in pairs}) == 2 and {g for _, g in pairs} == {0, 1}, attack
        for trigger, _ in pairs:
            make_attack(attack, trigger)  # a valid trigger for the attack
    cells = grid_cells(["movies", "bbc"], ["badnets", "clean"])
    assert [(c.dataset, c.attack, c.trigger, c.target) for c in cells] == [  # first triggers first
        ("movies", "badnets", "cf", 0),
        ("movies", "clean", None, 0),
        ("bbc", "badnets", "cf", 0),
        ("bbc", "clean", None, 0),
        ("movies", "badnets", "bb", 1),
        ("bbc", "badnets", "bb", 3),
    ]
    assert cells[4].spec.resolved().name == "movies-badnets-bb-s0"


def test_lab_train_reuses_a_matching_model_from_the_shared_cache(tmp_path, toy_dataset, monkeypatch) -> None:
    """A model another process trained under runs/models/ (any name) is reused, not retrained."""
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "runs" / "models" / "someone-elses-name"
    model.mkdir(parents=True)
    # a local file's recipe cuts texts to the window before poisoning
    meta = toy_model_meta(toy_dataset, fit_train=True)
    (model / "meta.json").write_text(json.dumps(meta))
    args = ["lab", "train", "--dataset", str(toy_dataset), "--attack", "badnets", "--max-train", "40"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "already trained" in result.output and "someone-elses-name" in result.output
    assert not (tmp_path / "runs" / "models" / "toy-badnets-cf-s0").exists()


def test_lab_grid_runs_accumulate_in_out_unless_fresh(tmp_path, monkeypatch) -> None:
    """Each (partial) grid run adds its models to --out's results; --fresh keeps only its own."""
    import stream_guard.lab.grid as grid
    from tests.stream_guard.lab.test_report import fake_evaluation

    def fake_run_grid(cells, options, *, cache_dir, sizes, on_result, on_error):
        for cell in cells:
            on_result(cell, fake_evaluation(cell.spec.resolved().name))

    monkeypatch.setattr(grid, "run_grid", fake_run_grid)
    out = tmp_path / "out"
    base = ["lab", "grid", "--out", str(out), "--models-dir", str(tmp_path), "--triggers", "first"]

    def models(*args: str) -> list[str]:
        result = CliRunner().invoke(app, [*base, *args])
        assert result.exit_code == 0, result.output
        return [r["model"] for r in json.loads((out / "results.json").read_text())["models"]]

    assert models("--datasets", "spam", "--attacks", "ep") == ["spam-ep-bb-s0"]
    both = ["movies-badnets-cf-s0", "spam-ep-bb-s0"]
    assert models("--datasets", "movies", "--attacks", "badnets") == both
    assert models("--datasets", "movies", "--attacks", "badnets") == both
    assert models("--datasets", "movies", "--attacks", "badnets", "--fresh") == both[:1]


def test_lab_grid_on_the_validation_split_writes_apart_from_the_test_results(tmp_path, monkeypatch) -> None:
    import stream_guard.lab.grid as grid
    from tests.stream_guard.lab.test_report import fake_evaluation

    seen = []

    def fake_run_grid(cells, options, *, cache_dir, sizes, on_result, on_error):
        seen.append(options.split)
        for cell in cells:
            evaluation = fake_evaluation(cell.spec.resolved().name)
            evaluation.split = options.split
            on_result(cell, evaluation)

    monkeypatch.setattr(grid, "run_grid", fake_run_grid)
    part = ["--models-dir", str(tmp_path), "--triggers", "first", "--datasets", "spam", "--attacks", "ep"]
    tested, chosen = tmp_path / "lab", tmp_path / "lab-validation"
    assert CliRunner().invoke(app, ["lab", "grid", "--out", str(tested), *part]).exit_code == 0
    mixed = CliRunner().invoke(app, ["lab", "grid", "--out", str(tested), "--split", "validation", *part])
    assert mixed.exit_code == 2 and "test-split results" in mixed.output and seen == ["test"]  # nothing run

    result = CliRunner().invoke(app, ["lab", "grid", "--out", str(chosen), "--split", "validation", *part])
    assert result.exit_code == 0, result.output
    data = json.loads((chosen / "results.json").read_text())
    assert seen == ["test", "validation"] and data["models"][0]["split"] == "validation"
    assert data["settings"]["split"] == "validation" and "validation split" in data["title"]


def test_lab_eval_titles_a_file_of_several_models_generically(tmp_path, tiny_model_dir, toy_dataset) -> None:
    model = _tiny_backdoored(tmp_path, tiny_model_dir, toy_dataset)
    out = tmp_path / "out"
    sizes = ["--max-val", "10", "--max-test", "8", "--max-poisoned", "4", "--defenses", "none"]
    args = ["lab", "eval", *sizes, "--no-sweep", "--out", str(out)]
    assert CliRunner().invoke(app, [*args, "--model", str(model)]).exit_code == 0
    assert (out / "results.md").read_text().startswith("# Backdoor lab: toy-badnets-cf-s0\n")
    assert CliRunner().invoke(app, [*args, "--model", str(model)]).exit_code == 0  # the same model again
    assert (out / "results.md").read_text().startswith("# Backdoor lab: toy-badnets-cf-s0\n")
    other = tmp_path / "toy-badnets-mn-s0"
    shutil.copytree(model, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "trigger": "mn"}))
    assert CliRunner().invoke(app, [*args, "--model", str(other)]).exit_code == 0
    assert (out / "results.md").read_text().startswith("# Backdoor lab results\n")
