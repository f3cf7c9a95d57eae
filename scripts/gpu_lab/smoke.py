"""A quick pass over every training loop and defense on the GPU before the long run: each attack trained
on 64 movie sentences for a few steps with ``--device cuda``, one model evaluated with every defense
(tiny sets) and streamed. Prints one OK / FAILED line per step (a traceback on failure) and the attacks
that passed on the last line, for run.sh to keep. Exit 0 even when steps fail: the caller decides.

    python scripts/gpu_lab/smoke.py [--device cuda] [--work /tmp/smoke]
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path

ATTACKS = ("badnets", "ep", "ripples", "adaptive", "lws")  # one of each training loop (fine_tune: badnets)


def _invoke(args: list[str]) -> None:
    from typer.testing import CliRunner

    from consumers.cli.app import app

    result = CliRunner().invoke(app, args, catch_exceptions=True)
    if result.exit_code != 0:
        detail = "".join(traceback.format_exception(result.exc_info[1])) if result.exc_info else ""
        raise RuntimeError(f"exit {result.exit_code}: {result.output[-2000:]}\n{detail[-4000:]}")


def _step(name: str, args: list[str]) -> bool:
    started = time.perf_counter()
    try:
        _invoke(args)
    except Exception as err:  # a smoke run reports every failure and goes on
        print(f"FAILED {name} ({time.perf_counter() - started:.1f} s): {err}", flush=True)
        return False
    print(f"OK {name} ({time.perf_counter() - started:.1f} s)", flush=True)
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", type=Path, default=Path("/tmp/smoke"))
    opts = parser.parse_args()
    passed = []
    for attack in ATTACKS:
        out = opts.work / "models" / attack
        args = ["lab", "train", "--dataset", "movies", "--attack", attack, "--max-train", "64"]
        args += ["--epochs", "0.5", "--out", str(out), "--device", opts.device, "--force"]
        if _step(f"train {attack}", args):
            passed.append(attack)
    model = str(opts.work / "models" / "badnets")
    sizes = ["--max-val", "24", "--max-test", "24", "--max-poisoned", "12", "--device", opts.device]
    _step("eval", ["lab", "eval", "--model", model, *sizes, "--out", str(opts.work / "eval")])
    stream = ["lab", "stream", "--model", model, "--max-test", "80", "--device", opts.device]
    _step("stream", [*stream, "--out", str(opts.work / "stream"), "--work", str(opts.work / "work")])
    print("PASSED " + ",".join(passed), flush=True)


if __name__ == "__main__":
    main()
