"""The stream evaluation's files: rows merged by model, and a header that says where the traffic came from."""

from __future__ import annotations

from pathlib import Path

import orjson

from consumers.lab.stream_report import write_stream_results
from tests.consumers.lab.fakes import stream_cell


def test_the_header_names_the_split_the_traffic_came_from(tmp_path: Path) -> None:
    """Validation rows (choosing settings) are not described as test traffic, and merging keeps both."""
    chosen = [stream_cell(split="validation")]
    md, js = write_stream_results(chosen, tmp_path, "lab stream --split validation")
    head = md.read_text().split("| model")[0]
    assert "halves of the model's validation split" in head and "test split in a" not in head
    write_stream_results([stream_cell(model="movies-badnets-bb-s0", trigger="bb")], tmp_path, "lab stream")
    head = md.read_text().split("| model")[0]
    assert "each model's test split in a seeded random order" in head
    assert "rows marked `validation`" in head
    models = [r["model"] for r in orjson.loads(js.read_bytes())]
    assert models == ["movies-badnets-bb-s0", "movies-badnets-cf-s0"]
    assert "`cf` → negative" in md.read_text()
