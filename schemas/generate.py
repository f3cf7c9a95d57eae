"""Generate the JSON Schema files in ``schemas/json/`` from the models.

``python -m schemas.generate`` rewrites them; ``python -m schemas.generate --check`` exits 1 when the
files on disk differ from the models (run it in CI). Output is deterministic: sorted keys, two-space
indent, trailing newline.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas.base import SCHEMA_VERSION
from schemas.dead_letter import DeadLetterRecord
from schemas.input import InputMessage
from schemas.outputs import AuditRecord, PredictionRecord
from schemas.threshold import ThresholdUpdate
from schemas.triggers import TriggerUpdate

JSON_DIR = Path(__file__).resolve().parent / "json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

RECORDS: dict[str, type[BaseModel]] = {
    "input_message": InputMessage,
    "prediction": PredictionRecord,
    "audit": AuditRecord,
    "dead_letter": DeadLetterRecord,
    "threshold_update": ThresholdUpdate,
    "trigger_update": TriggerUpdate,
}
"""Top-level records by file stem: ``schemas/json/<stem>.schema.json``."""


def schema_filename(name: str) -> str:
    return f"{name}.schema.json"


def build_json_schema(model: type[BaseModel]) -> dict[str, object]:
    """The JSON Schema (draft 2020-12) of what ``model`` accepts, tagged with ``x-schema-version``."""
    schema: dict[str, object] = model.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["x-schema-version"] = SCHEMA_VERSION
    return schema


def render_json_schemas() -> dict[str, bytes]:
    """File name → file content for every top-level record."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    return {
        schema_filename(name): orjson.dumps(build_json_schema(model), option=option)
        for name, model in RECORDS.items()
    }


def write_json_schemas(out_dir: Path | str = JSON_DIR) -> list[Path]:
    """Write every record's JSON Schema into ``out_dir`` (created if needed); return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, content in render_json_schemas().items():
        path = out / filename
        path.write_bytes(content)
        paths.append(path)
    return paths


def stale_json_schemas(out_dir: Path | str = JSON_DIR) -> list[str]:
    """Names of the files in ``out_dir`` that are missing or differ from the models."""
    out = Path(out_dir)
    stale = []
    for filename, content in render_json_schemas().items():
        path = out / filename
        if not path.is_file() or path.read_bytes() != content:
            stale.append(filename)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=JSON_DIR, help="where the files go")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ from the models")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_json_schemas(args.out_dir)
        for filename in stale:
            print(f"out of date: {args.out_dir / filename}", file=sys.stderr)
        if stale:
            print("run `python -m schemas.generate` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(RECORDS)} JSON Schema files are up to date")
        return 0
    for path in write_json_schemas(args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
