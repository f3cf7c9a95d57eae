"""The checked-in JSON Schema files match the models, and non-Python validators accept our records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from schemas import SCHEMA_VERSION, encode
from schemas.generate import (
    JSON_DIR,
    RECORDS,
    main,
    render_json_schemas,
    stale_json_schemas,
    write_json_schemas,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_FOR = {
    "input_message": "input_message",
    "prediction": "prediction",
    "audit": "audit",
    "dead_letter": "dead_letter",
    "threshold_update": "threshold_update",
    "trigger_update": "trigger_update",
}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((JSON_DIR / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors_of(name: str, payload: dict[str, Any]) -> list[str]:
    return [e.message for e in validator(name).iter_errors(payload)]


def test_one_file_per_top_level_record() -> None:
    assert set(RECORDS) == set(FIXTURE_FOR)
    assert sorted(p.name for p in JSON_DIR.glob("*.schema.json")) == sorted(
        f"{name}.schema.json" for name in RECORDS
    )


def test_checked_in_files_match_models(tmp_path: Path) -> None:
    written = write_json_schemas(tmp_path)
    assert len(written) == len(RECORDS)
    for path in written:
        checked_in = JSON_DIR / path.name
        assert checked_in.read_bytes() == path.read_bytes(), (
            f"{checked_in} is stale: run `python -m schemas.generate`"
        )


def test_output_is_deterministic_sorted_and_newline_terminated() -> None:
    first, second = render_json_schemas(), render_json_schemas()
    assert first == second
    for content in first.values():
        assert content.endswith(b"}\n") and not content.endswith(b"\n\n")
        parsed = orjson.loads(content)
        assert list(parsed) == sorted(parsed)
        assert parsed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert parsed["x-schema-version"] == SCHEMA_VERSION


def test_check_mode_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out-dir", str(tmp_path)]) == 0
    assert main(["--out-dir", str(tmp_path), "--check"]) == 0
    target = tmp_path / "audit.schema.json"
    target.write_bytes(target.read_bytes().replace(b'"text"', b'"txt"', 1))
    (tmp_path / "dead_letter.schema.json").unlink()
    assert stale_json_schemas(tmp_path) == ["audit.schema.json", "dead_letter.schema.json"]
    assert main(["--out-dir", str(tmp_path), "--check"]) == 1
    assert "audit.schema.json" in capsys.readouterr().err


def test_module_entry_point_checks_the_repository_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "schemas.generate", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(FIXTURE_FOR))
def test_records_validate_against_json_schema(request: pytest.FixtureRequest, name: str) -> None:
    record: BaseModel = request.getfixturevalue(FIXTURE_FOR[name])
    assert errors_of(name, orjson.loads(encode(record))) == []


def test_output_json_schemas_require_schema_version() -> None:
    for name in ("prediction", "audit", "dead_letter", "threshold_update", "trigger_update"):
        assert "schema_version" in json.loads((JSON_DIR / f"{name}.schema.json").read_text())["required"]
    assert (
        "schema_version" not in json.loads((JSON_DIR / "input_message.schema.json").read_text())["required"]
    )


def test_old_audit_record_validates(old_audit_dict: dict[str, Any]) -> None:
    assert errors_of("audit", old_audit_dict) == []


@pytest.mark.parametrize(
    ("payload", "ok"),
    [
        ({"id": "a", "text": "hello"}, True),
        ({"id": 5, "text": "hello", "extra": 1}, True),
        ({"id": "a", "text": "hi", "timestamp": "2025-03-01T12:00:00Z", "metadata": {"k": [1]}}, True),
        ({"id": "a", "text": "hi", "timestamp": 1740830400}, True),
        ({"id": 5, "text": ["a"]}, False),
        ({"id": [1], "text": "a"}, False),
        ({"id": True, "text": "a"}, False),
        ({"id": "", "text": "a"}, False),
        ({"id": "x" * 257, "text": "a"}, False),
        ({"id": "a", "text": ""}, False),
        ({"id": "a", "text": " \n "}, False),
        ({"text": "a"}, False),
        ({"id": "a", "text": "a", "metadata": [1]}, False),
    ],
)
def test_input_json_schema_agrees_with_the_model(payload: dict[str, Any], ok: bool) -> None:
    from schemas import InputMessage, SchemaError, decode

    schema_ok = errors_of("input_message", payload) == []
    try:
        decode(InputMessage, orjson.dumps(payload))
        model_ok = True
    except SchemaError:
        model_ok = False
    assert (schema_ok, model_ok) == (ok, ok)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"percentile": 100}, "percentile"),
        ({"percentile": 0}, "percentile"),
        ({"value": "2.0"}, "value"),
        ({"by_length": [{"max_tokens": 0, "value": 1.0}]}, "by_length"),
    ],
)
def test_threshold_json_schema_rejects_bad_updates(
    threshold_update: BaseModel, change: dict[str, Any], path: str
) -> None:
    payload = orjson.loads(encode(threshold_update)) | change
    errors = list(validator("threshold_update").iter_errors(payload))
    assert errors and errors[0].absolute_path[0] == path


def test_audit_json_schema_rejects_wrong_types(audit: BaseModel) -> None:
    payload = orjson.loads(encode(audit))
    payload["tokens"][0]["attention"] = "high"
    payload["probabilities"] = [0.5, 1.5]
    del payload["schema_version"]
    messages = errors_of("audit", payload)
    assert len(messages) == 3


def test_trigger_json_schema_rejects_bad_updates(trigger_update: BaseModel) -> None:
    payload = orjson.loads(encode(trigger_update))
    bad = [
        {**payload, "triggers": [{"text": ""}]},
        {**payload, "triggers": [{"text": "cf", "source": "guessed"}]},
        {**payload, "triggers": [{"text": "cf", "insertion_rate": 1.5}]},
        {**payload, "revoked": ["..."]},
        {k: v for k, v in payload.items() if k != "model_id"},
    ]
    for changed in bad:
        assert errors_of("trigger_update", changed), changed
    assert errors_of("trigger_update", {**payload, "triggers": [{"text": "CF"}], "revoked": []}) == []


def test_old_prediction_without_trigger_fields_validates(prediction: BaseModel) -> None:
    payload = orjson.loads(encode(prediction))
    for field in ("known_triggers", "trigger_version", "evidence"):
        del payload[field]
    assert errors_of("prediction", payload) == []
