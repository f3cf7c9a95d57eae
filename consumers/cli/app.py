"""The `stream-guard` command: the typer app, every command registered on it, and the entry point.

Each command is a plain function in its own module of this package and imports nothing of the app;
this module is the only one that knows them all. The modules import torch, transformers and the model
inside the command functions, so ``stream-guard --help`` stays fast (tests/consumers/cli/test_app.py).
"""

from __future__ import annotations

import sys

import typer

from consumers.cli import (
    audit,
    bench,
    broker,
    calibrate,
    demo,
    lab,
    lab_choose,
    lab_stream,
    learn,
    replay,
    run,
    score,
    trigger_bar,
    trigger_check,
    triggers,
)
from stream_guard.errors import StreamGuardError

HELP = "X-GRAAD backdoor-trigger defense for transformer text classifiers."

app = typer.Typer(
    name="stream-guard",
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """X-GRAAD backdoor-trigger defense for transformer text classifiers."""


app.command("bench")(bench.bench_command)
app.command("score")(score.score_command)
app.command("audit")(audit.audit_command)
app.command("replay")(replay.replay_command)
app.command("run")(run.run_command)
app.command("calibrate")(calibrate.calibrate_command)
app.command("demo")(demo.demo_command)
app.command("broker")(broker.broker_command)

lab_app = typer.Typer(
    help="The backdoor lab: train backdoored models, evaluate defenses.", no_args_is_help=True
)
lab_app.command("train")(lab.train_command)
lab_app.command("eval")(lab.eval_command)
lab_app.command("grid")(lab.grid_command)
lab_app.command("stream")(lab_stream.stream_command)
lab_app.command("readme")(lab_stream.readme_command)
lab_app.command("stream-compare")(lab_stream.stream_compare_command)
lab_app.command("choose")(lab_choose.choose_command)
lab_app.command("compare")(lab_choose.compare_command)
app.add_typer(lab_app, name="lab")

triggers_app = typer.Typer(
    help="Known triggers: list a model's set, add or revoke a word or phrase, publish a learned set "
    "(every worker follows the triggers topic), check whether the learner would learn a word, "
    "scan how low its insertion bar may go on a model.",
    no_args_is_help=True,
)
triggers_app.command("list")(triggers.list_command)
triggers_app.command("add")(triggers.add_command)
triggers_app.command("revoke")(triggers.revoke_command)
triggers_app.command("publish")(triggers.publish_command)
triggers_app.command("learn")(learn.learn_command)
triggers_app.command("check")(trigger_check.check_command)
triggers_app.command("bar")(trigger_bar.bar_command)
app.add_typer(triggers_app, name="triggers")


def main() -> None:
    """The console script `stream-guard` (and `python -m consumers.cli`).

    The commands turn the errors they expect into one ``error:`` line and exit 2 themselves
    (:func:`consumers.cli.common.fail`); a :class:`StreamGuardError` that escapes one anyway (a model that
    does not load, Kafka refusing the credentials...) gets the same treatment here instead of a traceback.
    """
    try:
        app()
    except StreamGuardError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
