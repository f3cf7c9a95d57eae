"""scripts/gpu_lab/onion_lm.sh: ONION's language model split in two halves (one per device call) and
joined again on the GPU machine, checked byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_lab" / "onion_lm.sh"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False)


def test_the_halves_join_into_the_same_file(tmp_path: Path) -> None:
    lm = tmp_path / "lm.gguf"
    lm.write_bytes(bytes(range(256)) * 41 + b"odd")  # an odd size: the halves differ by one byte
    one, two, joined = tmp_path / "lm1", tmp_path / "lm2", tmp_path / "there" / "lm.gguf"
    assert _run("split", lm, one, two).returncode == 0
    sizes = sorted(p.stat().st_size for p in (one / "part", two / "part"))
    assert sum(sizes) == lm.stat().st_size and sizes[1] - sizes[0] <= 1
    joined.parent.mkdir()
    assert _run("join", one, two, joined).returncode == 0
    assert joined.read_bytes() == lm.read_bytes()


def test_a_missing_or_foreign_half_is_refused(tmp_path: Path) -> None:
    lm = tmp_path / "lm.gguf"
    lm.write_bytes(b"a" * 1000)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"b" * 1000)
    _run("split", lm, tmp_path / "a1", tmp_path / "a2")
    _run("split", other, tmp_path / "b1", tmp_path / "b2")
    out = tmp_path / "joined.gguf"

    missing = _run("join", tmp_path / "a1", tmp_path / "nowhere", out)
    assert missing.returncode == 1 and "missing" in missing.stdout and not out.exists()
    mixed = _run("join", tmp_path / "a1", tmp_path / "b2", out)
    assert mixed.returncode == 1 and "does not match" in mixed.stdout and not out.exists()
