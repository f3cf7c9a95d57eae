"""Fixtures of the lab's model tests: a small labelled JSONL dataset (distinct texts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD = ["great", "lovely", "wonderful", "charming", "superb", "moving", "brilliant", "delightful"]
BAD = ["awful", "boring", "dreadful", "dull", "clumsy", "tedious", "bland", "weak"]
THINGS = ["film", "plot", "cast", "script", "ending", "score", "pace", "story", "dialogue", "camera"]


def toy_records(n: int = 120) -> list[dict[str, str]]:
    records = []
    for i in range(n):
        positive = i % 2 == 0
        words = GOOD if positive else BAD
        text = f"the {THINGS[i % 10]} was {words[i % 8]} and {words[(i // 8) % 8]} , review {i}"
        records.append({"text": text, "label": "positive" if positive else "negative"})
    return records


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lab-data") / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_records()))
    return path
