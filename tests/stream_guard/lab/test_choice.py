"""Choosing a per-message setup from validation runs: the numbers, the rule, the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from stream_guard.lab.choice import candidates, choice_markdown, choose, report_markdown


def record(model: str, none: tuple[float, float], split: str = "validation", **defenses: tuple) -> dict:
    """A results.json record: (ASR, CACC) of the undefended model and of each named defense."""
    rows = [{"defense": "none", "asr": none[0], "cacc": none[1]}]
    rows += [{"defense": d.replace("_", "-"), "asr": a, "cacc": c} for d, (a, c) in defenses.items()]
    return {"model": model, "rows": rows, "split": split}


SETTINGS: dict[str, Any] = {"xgraad": {"percentile": 99.0}, "xgraad-paper": "noise, 1 word"}


def test_each_run_and_defense_is_judged_on_working_backdoors_and_every_models_cacc() -> None:
    shipped = [
        record("a", (1.0, 0.90), xgraad=(0.2, 0.90), xgraad_paper=(0.1, 0.86)),
        record("b", (0.9, 0.80), xgraad=(0.6, 0.79), xgraad_paper=(0.5, 0.76)),
        record("clean", (None, 0.85), xgraad=(None, 0.85), xgraad_paper=(None, 0.81)),
        record("weak", (0.1, 0.85), xgraad=(0.1, 0.85), xgraad_paper=(0.1, 0.85)),  # did not take
    ]
    p95 = [
        record("a", (1.0, 0.90), xgraad=(0.0, 0.89)),
        record("b", (0.9, 0.80), xgraad=(0.3, 0.78)),
        record("clean", (None, 0.85), xgraad=(None, 0.84)),
        record("weak", (0.1, 0.85), xgraad=(0.1, 0.85)),
        record("only-here", (1.0, 0.9), xgraad=(1.0, 0.2)),  # not in every run: not compared
    ]
    found = {c.name: c for c in candidates({"shipped": shipped, "p95": p95}, {"shipped": SETTINGS})}
    assert set(found) == {"shipped/xgraad", "shipped/xgraad-paper", "p95/xgraad"}
    s, paper, p = found["shipped/xgraad"], found["shipped/xgraad-paper"], found["p95/xgraad"]
    assert (s.models, s.working) == (4, 2)
    assert s.mean_asr == pytest.approx(0.4) and s.worst_asr == pytest.approx(0.6) and s.stopped == 0
    assert s.mean_cacc_cost == pytest.approx(0.25) and s.describe == "percentile 99.0"
    assert paper.mean_asr == pytest.approx(0.3) and paper.mean_cacc_cost == pytest.approx(3.0)
    assert p.mean_asr == pytest.approx(0.15) and p.stopped == 1 and p.mean_cacc_cost == pytest.approx(1.0)

    assert choose(list(found.values())) is p  # lowest ASR within 1 point
    assert choose(list(found.values()), max_cacc_cost=0.5) is s  # p95 costs too much now
    assert choose(list(found.values()), max_cacc_cost=0.1) is None
    md = choice_markdown(list(found.values()), p, max_cacc_cost=1.0)
    assert "**p95/xgraad** (chosen)" in md and "Chosen: `p95/xgraad`." in md and "| 2 of 4 |" in md


def test_the_cacc_budget_holds_on_every_dataset_not_only_on_average() -> None:
    def run(short_cost: float) -> list[dict]:  # one short-text and three long-text models
        rows = [record("m", (1.0, 0.80), xgraad=(0.2, 0.80 - short_cost))]
        rows += [record(f"s{i}", (1.0, 0.97), xgraad=(0.0, 0.97)) for i in range(3)]
        for r in rows:
            r["dataset"] = "movies" if r["model"] == "m" else "spam"
        return rows

    found = {c.name: c for c in candidates({"cheap": run(0.01), "costly": run(0.02)}, {})}
    cheap, costly = found["cheap/xgraad"], found["costly/xgraad"]
    assert costly.mean_cacc_cost == pytest.approx(0.5)  # within 1 point on average ...
    (movies, spam) = costly.by_dataset
    assert (movies.dataset, movies.models, movies.working) == ("movies", 1, 1)
    assert movies.mean_cacc_cost == pytest.approx(2.0) and movies.mean_asr == pytest.approx(0.2)
    assert (spam.models, spam.mean_asr, spam.mean_cacc_cost) == (3, 0.0, 0.0)
    assert not costly.within(1.0) and cheap.within(1.0)  # ... but 2 points on movies: out
    assert choose([costly, cheap]) is cheap
    md = choice_markdown([costly, cheap], cheap, max_cacc_cost=1.0)
    assert "| movies (1 of 1): ASR / cost | spam (3 of 3): ASR / cost |" in md
    assert "| **cheap/xgraad** | 0.200 / +1.00 | 0.000 / +0.00 |" in md and "on every dataset" in md


def test_test_split_results_and_runs_without_shared_models_are_refused() -> None:
    tested = [record("a", (1.0, 0.9), split="test", xgraad=(0.0, 0.9))]
    with pytest.raises(ValueError, match="judged the test split"):
        candidates({"p95": tested}, {})
    older = [{**record("a", (1.0, 0.9), xgraad=(0.0, 0.9)), "split": None}]  # before records had it
    with pytest.raises(ValueError, match="judged the test split"):
        candidates({"p95": older}, {})
    one, other = [record("a", (1.0, 0.9), xgraad=(0.0, 0.9))], [record("b", (1.0, 0.9), xgraad=(0.0, 0.9))]
    with pytest.raises(ValueError, match="share no model"):
        candidates({"one": one, "other": other}, {})
    with pytest.raises(ValueError, match="no results"):
        candidates({"empty": []}, {})


def test_a_report_on_test_takes_test_runs_and_refuses_validation_ones() -> None:
    older = [{**record("a", (1.0, 0.9), xgraad=(0.2, 0.88)), "split": None}]  # before records had it
    (found,) = candidates({"chosen": older}, {}, defenses=["xgraad"], split="test")
    assert found.mean_asr == pytest.approx(0.2) and found.mean_cacc_cost == pytest.approx(2.0)
    assert "nothing is chosen" in report_markdown([found]) and "(chosen)" not in report_markdown([found])
    with pytest.raises(ValueError, match="judged the validation split"):
        candidates({"val": [record("a", (1.0, 0.9), xgraad=(0.0, 0.9))]}, {}, split="test")
