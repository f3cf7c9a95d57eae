"""`stream-guard lab choose` over result directories written by the lab's own writer."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from consumers.cli.app import app
from stream_guard.lab.evaluate import ModelEvaluation
from stream_guard.lab.report import write_results
from tests.stream_guard.lab.fakes import toy_model_meta

SIZES = {"validation": 20, "clean_test": 20, "poisoned_test": 8}


def run_dir(out: Path, xgraad: tuple[float, float], *, split: str = "validation", percentile: float) -> Path:
    rows = [
        {"defense": "none", "cacc": 0.9, "asr": 1.0, "seconds_per_1000": 1.0},
        {"defense": "xgraad", "cacc": xgraad[1], "asr": xgraad[0], "fpr": 0.01, "seconds_per_1000": 2.0},
    ]
    meta = toy_model_meta("toy")
    evaluation = ModelEvaluation("toy-badnets-cf-s0", meta, "toy", rows, dict(SIZES), split=split)
    write_results([evaluation], out, settings={"xgraad": {"percentile": percentile}})
    return out


def test_choose_prints_the_comparison_and_writes_the_choice(tmp_path: Path) -> None:
    shipped = run_dir(tmp_path / "shipped", (0.40, 0.90), percentile=99.0)
    p90 = run_dir(tmp_path / "p90", (0.05, 0.89), percentile=90.0)
    out = tmp_path / "choice.md"
    result = CliRunner().invoke(app, ["lab", "choose", str(shipped), str(p90), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "chosen: p90/xgraad" in result.output  # the table itself is cut to the terminal
    md = out.read_text()
    assert "**p90/xgraad** (chosen)" in md and "| shipped/xgraad |" in md and "percentile 90.0" in md
    assert "+1.00" in md  # one point of CACC
    assert "| **p90/xgraad** | 0.050 / +1.00 |" in md and "per dataset" in result.output  # toy: one dataset

    strict = CliRunner().invoke(app, ["lab", "choose", str(shipped), str(p90), "--max-cacc-cost", "0.5"])
    assert strict.exit_code == 0 and "chosen: shipped/xgraad" in strict.output


def test_choose_refuses_test_results_and_missing_runs(tmp_path: Path) -> None:
    tested = run_dir(tmp_path / "tested", (0.0, 0.9), split="test", percentile=99.0)
    result = CliRunner().invoke(app, ["lab", "choose", str(tested)])
    assert result.exit_code == 2 and "judged the test split" in result.output
    missing = CliRunner().invoke(app, ["lab", "choose", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "--split validation" in missing.output


def test_compare_reports_test_runs_with_the_same_numbers_and_chooses_nothing(tmp_path: Path) -> None:
    shipped = run_dir(tmp_path / "t" / "shipped", (0.40, 0.90), split="test", percentile=99.0)
    p90 = run_dir(tmp_path / "t" / "p90", (0.05, 0.89), split="test", percentile=90.0)
    out = tmp_path / "test.md"
    result = CliRunner().invoke(app, ["lab", "compare", str(shipped), str(p90), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing chosen" in result.output and "chosen:" not in result.output
    md = out.read_text()
    assert "| p90/xgraad | percentile 90.0 | 1 of 1 | 0.050 |" in md and "(chosen)" not in md
    assert "| p90/xgraad | 0.050 / +1.00 |" in md and "nothing is chosen here" in md


def test_compare_refuses_validation_runs(tmp_path: Path) -> None:
    chosen_on = run_dir(tmp_path / "val", (0.0, 0.9), percentile=99.0)
    result = CliRunner().invoke(app, ["lab", "compare", str(chosen_on)])
    assert result.exit_code == 2 and "judged the validation split" in result.output
