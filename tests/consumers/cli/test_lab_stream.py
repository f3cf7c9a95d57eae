"""`stream-guard lab readme`: the README's lab tables and results.md's stream column, from the results."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from consumers.cli.app import app
from stream_guard.lab.report import write_results
from tests.consumers.lab.fakes import stream_cell
from tests.stream_guard.lab.test_report import fake_evaluation

README = """# project

<!-- lab-table:stream -->
old stream table
<!-- /lab-table:stream -->

<!-- lab-table:grid -->
old grid table
<!-- /lab-table:grid -->
"""


def test_readme_rewrites_both_tables_and_gives_results_md_the_stream_column(tmp_path: Path) -> None:
    results = tmp_path / "lab"
    write_results(
        [fake_evaluation("toy-badnets-cf-s0"), fake_evaluation("toy-ep-cf-s0", attack="ep")], results
    )
    (results / "stream.json").write_bytes(
        orjson.dumps([stream_cell(model="toy-badnets-cf-s0", cacc_stream=0.875).__dict__])
    )
    readme = tmp_path / "README.md"
    readme.write_text(README)

    result = CliRunner().invoke(app, ["lab", "readme", "--results", str(results), "--readme", str(readme)])

    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "old stream table" not in text and "old grid table" not in text
    grid = text[text.index("<!-- lab-table:grid -->") :]
    # the fake row is at the 99th percentile, not the shipped default: shown, and marked as such
    assert "stream ASR\\* / CACC" in grid and "| 0.040 / 0.88 (p99) |" in grid
    assert "1 of 1 models' stream rows are at the 99th percentile" in result.output
    md = (results / "results.md").read_text()
    assert "| 0.040 / 0.88 (p99) |" in md and "stream-level defense" in md
    again = CliRunner().invoke(app, ["lab", "readme", "--results", str(results), "--readme", str(readme)])
    assert again.exit_code == 0 and "already up to date" in again.output


def test_readme_without_stream_results_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lab", "readme", "--results", str(tmp_path), "--readme", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "stream.json" in lines[0]
