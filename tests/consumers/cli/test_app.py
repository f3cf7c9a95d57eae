"""The `stream-guard` app starts without importing torch or transformers (`--help`, `broker` and the audit
reader should not wait seconds for a model stack they never use), and it is built in one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import consumers.cli

HEAVY = ("torch", "transformers")
CLI = Path(consumers.cli.__file__).parent


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def test_the_app_and_its_help_import_no_model_stack():
    loaded = _modules_after(
        "from typer.testing import CliRunner\n"
        "from consumers.cli.app import app\n"
        "for args in (['--help'], ['bench', '--help'], ['calibrate', '--help'], ['replay', '--help'],\n"
        "             ['score', '--help'], ['lab', 'eval', '--help'], ['triggers', 'list', '--help'],\n"
        "             ['triggers', 'add', '--help'], ['run', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args"
    )
    assert "consumers" in loaded and "typer" in loaded  # the probe did import the app
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_python_m_consumers_cli_is_the_app():
    result = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    commands = ("score", "replay", "run", "calibrate", "audit", "bench", "demo", "broker", "lab", "triggers")
    for command in commands:
        assert f" {command} " in result.stdout, command


def test_command_modules_know_nothing_of_the_app():
    """Imports go one way: `consumers.cli.app` imports the command modules, never the reverse, and
    nothing registers itself on an app as a side effect of being imported."""
    for module in sorted(CLI.glob("*.py")):
        if module.name in ("app.py", "__main__.py"):
            continue
        tree = ast.parse(module.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert not {m for m in imported if m and m.startswith("consumers.cli.app")}, module.name
        decorated = [d for node in ast.walk(tree) for d in getattr(node, "decorator_list", [])]
        assert not [ast.unparse(d) for d in decorated if ".command" in ast.unparse(d)], module.name
        assert "noqa: E402" not in module.read_text(), module.name
