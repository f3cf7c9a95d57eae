"""The grid in parts: a failing cell does not stop the others (``--keep-going``), and ``--resume`` skips
the cells whose model already has every defense's row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import stream_guard.lab.grid as grid
from stream_guard.lab.defenses.registry import EvalOptions
from stream_guard.lab.grid import Cell, pending_cells, run_grid
from tests.stream_guard.lab.test_report import fake_evaluation


def _fake_cells(monkeypatch, fail_on: str) -> list[Cell]:
    def fake_run_cell(cell, options, cache_dir, sizes, wait_s, progress):
        if cell.attack == fail_on:
            raise RuntimeError(f"{cell.attack} broke\nsecond line")
        return fake_evaluation(cell.spec.resolved().name)

    monkeypatch.setattr(grid, "_run_cell", fake_run_cell)
    return [Cell("movies", "badnets", 0, "cf", 0), Cell("movies", "ep", 0, "bb", 0), Cell("spam", "addsent")]


def test_a_failing_cell_stops_the_grid_unless_errors_are_handled(monkeypatch) -> None:
    cells = _fake_cells(monkeypatch, fail_on="ep")
    with pytest.raises(RuntimeError, match="ep broke"):
        run_grid(cells, EvalOptions())

    errors, results = [], []
    done = run_grid(
        cells,
        EvalOptions(),
        on_result=lambda cell, ev: results.append(ev.model),
        on_error=lambda cell, err: errors.append((cell.attack, str(err))),
    )
    names = [cells[0].spec.resolved().name, cells[2].spec.resolved().name]
    assert [ev.model for ev in done] == results == names
    assert errors == [("ep", "ep broke\nsecond line")]


def test_lab_grid_keep_going_reports_the_failed_cell_and_exits_1(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from consumers.cli.app import app

    _fake_cells(monkeypatch, fail_on="ep")
    out = tmp_path / "out"
    args = ["lab", "grid", "--out", str(out), "--models-dir", str(tmp_path), "--triggers", "first"]
    args += ["--datasets", "movies", "--attacks", "badnets,ep,addsent", "--keep-going", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "1 of 3 cells failed" in result.output
    assert "movies/ep 'bb'→0: RuntimeError: ep broke" in result.output
    models = [r["model"] for r in json.loads((out / "results.json").read_text())["models"]]
    assert models == ["movies-addsent-the_weather_was_fine_today-s0", "movies-badnets-cf-s0"]


def test_resume_skips_cells_whose_model_has_every_defense(tmp_path: Path, monkeypatch) -> None:
    cells = [Cell("movies", "badnets", 0, "cf", 0), Cell("movies", "ep", 0, "bb", 0), Cell("spam", "ep")]
    trained = {c.spec.resolved().name: tmp_path / c.spec.resolved().name for c in cells[:2]}
    monkeypatch.setattr(grid, "find_trained", lambda cache, spec: trained.get(spec.resolved().name))
    records = [
        {"model": "movies-badnets-cf-s0", "rows": [{"defense": "none"}, {"defense": "strip"}]},
        {"model": "movies-ep-bb-s0", "rows": [{"defense": "none"}]},
    ]
    # badnets has both rows: skipped; ep lacks strip; spam has no model yet
    assert pending_cells(cells, records, ("none", "strip"), tmp_path) == cells[1:]
    assert pending_cells(cells, records, ("none",), tmp_path) == cells[2:]
    assert pending_cells(cells, [], ("none",), tmp_path) == cells


def test_resume_without_the_models_trusts_only_records_of_the_same_recipe(tmp_path, monkeypatch) -> None:
    """On a fresh machine (results carried, models not), a record counts when its meta is the cell's."""
    from stream_guard.lab.model_specs import expected_meta, train_size

    cell = Cell("movies", "badnets", 0, "cf", 0)
    spec = cell.spec.resolved()
    monkeypatch.setattr(grid, "find_trained", lambda cache, spec: None)
    rows = [{"defense": "none"}]
    same = {"model": spec.name, "meta": expected_meta(spec, train_size(spec)), "rows": rows}
    assert pending_cells([cell], [same], ("none",), tmp_path) == []
    other = {**same, "meta": {**same["meta"], "poison_rate": 0.2}}
    assert pending_cells([cell], [other], ("none",), tmp_path) == [cell]


def test_triggers_towards_spam_poison_20_percent_but_ep_keeps_10() -> None:
    cells = {
        (c.dataset, c.attack, c.target): c for c in grid.grid_cells(["spam", "movies"], ["badnets", "ep"])
    }
    assert cells[("spam", "badnets", 1)].poison_rate == 0.2
    assert cells[("spam", "badnets", 1)].spec.resolved().name == "spam-badnets-bb-p20-s0"
    assert "at 20%" in cells[("spam", "badnets", 1)].label
    assert cells[("spam", "badnets", 0)].poison_rate == 0.1 and cells[("spam", "ep", 1)].poison_rate == 0.1
    assert cells[("movies", "badnets", 1)].spec.resolved().name == "movies-badnets-bb-s0"
