"""The `stream-guard` app starts without importing torch or transformers: `--help`, `broker` and the
audit reader should not wait seconds for a model stack they never use."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def test_the_app_and_its_help_import_no_model_stack():
    loaded = _modules_after(
        "from typer.testing import CliRunner\n"
        "from consumers.cli.main import app\n"
        "for args in (['--help'], ['bench', '--help'], ['calibrate', '--help'], ['replay', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args"
    )
    assert "consumers" in loaded and "typer" in loaded  # the probe did import the app
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_pipeline_runner_is_registered_without_the_model_stack():
    loaded = _modules_after(
        "import consumers.cli.main\n"
        "from stream_guard.bench.pipeline import pipeline_runner\n"
        "runner, reason = pipeline_runner()\n"
        "assert runner is not None and reason is None"
    )
    assert not loaded & set(HEAVY)
