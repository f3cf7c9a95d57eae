"""Two percentiles' stream rows side by side: which rows pair, which count, and the means."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.lab.stream_compare import compare_markdown, pair_means, stream_pairs
from tests.consumers.lab.fakes import stream_cell


def _cells() -> list:
    return [
        stream_cell(),  # movies cf at p99: cost 0.5 points
        stream_cell(percentile=95.0, asr_stream=0.02, asr_message=0.3, cacc_stream=0.795),  # cost 1.5
        stream_cell(
            model="spam-badnets-zqv-s0", dataset="spam", asr_stream=0.05, cacc_none=0.97, cacc_stream=0.97
        ),
        stream_cell(
            model="spam-badnets-zqv-s0",
            dataset="spam",
            percentile=95.0,
            asr_stream=0.0,
            cacc_none=0.97,
            cacc_stream=0.975,
        ),
        # retrained between the two runs: another undefended outcome, shown but not counted
        stream_cell(model="movies-ep-bb-s0", asr_none=1.0, cacc_none=0.80),
        stream_cell(model="movies-ep-bb-s0", percentile=95.0, asr_none=0.98, cacc_none=0.80, asr_stream=0.5),
        # a backdoor that did not take: not counted either
        stream_cell(model="movies-lws-s0", asr_none=0.4),
        stream_cell(model="movies-lws-s0", percentile=95.0, asr_none=0.4, asr_stream=0.4),
        # rows that do not pair: only one percentile, another split, a scanned bar
        stream_cell(model="only-p99"),
        stream_cell(model="only-p99", percentile=95.0, split="validation"),
        stream_cell(model="only-p99", percentile=95.0, scanned_bar=0.6),
    ]


def test_rows_pair_by_model_and_only_same_weights_with_a_working_backdoor_count() -> None:
    pairs = stream_pairs(_cells(), base=99.0, other=95.0)
    assert [p.model for p in pairs] == [
        "movies-badnets-cf-s0",
        "movies-ep-bb-s0",
        "movies-lws-s0",
        "spam-badnets-zqv-s0",
    ]
    assert [p.counted for p in pairs] == [True, False, False, True]
    means = pair_means(pairs)
    assert means is not None and means.models == 2
    assert means.asr_stream == pytest.approx((0.045, 0.01))
    assert means.cacc_cost == pytest.approx((0.25, 0.5))  # (0.5 + 0) / 2, (1.5 - 0.5) / 2 points
    assert means.over_cacc_target == (0, 1) and means.learned_differs == 0
    movies = pair_means(pairs, "movies")
    assert movies is not None and movies.models == 1 and movies.cacc_cost == pytest.approx((0.5, 1.5))
    assert pair_means(pairs, "bbc") is None


def test_the_markdown_says_why_a_pair_is_not_counted_and_gives_means_per_dataset() -> None:
    text = compare_markdown(stream_pairs(_cells(), base=99.0, other=95.0), base=99.0, other=95.0)
    assert "| movies-ep-bb-s0 | no: other weights |" in text
    assert "| movies-lws-s0 | no: no working backdoor |" in text
    assert "| all: 2 | 0.045 → 0.010 |" in text and "| movies: 1 |" in text and "| spam: 1 |" in text
    assert "`cf` (2) (same)" in text


def test_the_command_prints_and_writes_the_comparison(tmp_path: Path) -> None:
    (tmp_path / "stream.json").write_bytes(orjson.dumps([c.to_dict() for c in _cells()]))
    out = tmp_path / "compare.md"
    args = ["lab", "stream-compare", "--results", str(tmp_path), "--percentile", "99", "--against", "95"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| all: 2 |" in result.output and "| all: 2 |" in out.read_text()
    assert out.read_text().startswith("Made by `stream-guard lab stream-compare")
    none = CliRunner().invoke(app, ["lab", "stream-compare", "--results", str(tmp_path), "--against", "90"])
    assert none.exit_code != 0 and "no model has test rows at both" in none.output
    missing = CliRunner().invoke(app, ["lab", "stream-compare", "--results", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "missing" in missing.output
