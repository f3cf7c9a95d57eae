"""`stream-guard lab ...`: train backdoored models, evaluate defenses on them, run the whole grid.

stream-guard lab train --dataset movies --attack badnets [--trigger cf] [--target 0] --out DIR
stream-guard lab eval --model DIR [--dataset D] --defenses none,xgraad-paper,xgraad,strip,rap
stream-guard lab grid --out docs/lab

`lab stream` and `lab readme` live in :mod:`consumers.cli.lab_stream`.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from consumers.cli.common import fail

DefensesOpt = typer.Option(
    "none,xgraad-paper,xgraad,strip,rap",
    "--defenses",
    help="comma-separated: none,xgraad-paper,xgraad,strip,rap,onion (onion needs the lab-onion extra)",
)
XGraadConfigOpt = typer.Option(
    None,
    "--xgraad-config",
    help="JSON with the 'improved' X-GRAAD setup {percentile, length_edges, settings}; "
    "default docs/lab/xgraad-improved.json if present, else the DefenderSettings defaults",
)
DEFAULT_IMPROVED = Path("docs/lab/xgraad-improved.json")
GRID_TITLE = "Backdoor lab: X-GRAAD vs baselines"
VALIDATION_OUT = Path("docs/lab/validation")
StripCopiesOpt = typer.Option(20, "--strip-copies", help="STRIP: perturbed copies per input")
SplitOpt = typer.Option(
    "test",
    "--split",
    help="test, or validation to choose settings: calibrate as a test run does, judge the rest of the "
    "validation split instead of the test split",
)
DeviceOpt = typer.Option(
    "auto", "--device", help="auto (CUDA when available), cpu or cuda[:N]: training, scoring, the LM"
)


def _options(
    defenses: str,
    max_val: int,
    max_test: int,
    max_poisoned: int,
    xgraad_config: Path | None,
    sweep: bool,
    strip_copies: int,
    device: str = "auto",
    split: str = "test",
):
    from stream_guard.lab.defenses.strip import StripConfig
    from stream_guard.lab.defenses.xgraad import XGraadConfig
    from stream_guard.lab.evaluate import EvalOptions

    path = xgraad_config or (DEFAULT_IMPROVED if DEFAULT_IMPROVED.is_file() else None)
    try:
        improved = XGraadConfig.load(path) if path is not None else None
        return EvalOptions(
            defenses=tuple(d.strip() for d in defenses.split(",") if d.strip()),
            max_val=max_val,
            max_test=max_test,
            max_poisoned=max_poisoned,
            improved=improved,
            sweep=sweep,
            strip=StripConfig(copies=strip_copies),
            device=checked_device(device),
            split=split,
        )
    except (OSError, ValueError) as err:
        fail(str(err).splitlines()[0])


def _setups(options) -> dict[str, object]:
    """What the two X-GRAAD defenses of a run were, for its settings (and `lab choose`'s table)."""
    from stream_guard.lab.defenses.xgraad import XGraadConfig

    return {
        "xgraad-paper": "noise, 1 word, 1 round, 95th percentile, no length buckets",
        "xgraad": (options.improved or XGraadConfig()).describe(),
    }


def checked_device(device: str) -> str:
    """``device`` checked and resolved (auto -> cuda or cpu); one line and exit 2 when unusable."""
    from stream_guard.errors import ModelLoadError
    from stream_guard.loading import resolve_device

    try:
        return str(resolve_device(device))
    except ModelLoadError as err:
        fail(str(err))


def train_command(
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="movies | spam | bbc | tweets | a .csv/.tsv/.jsonl"
    ),
    attack: str = typer.Option(
        ...,
        "--attack",
        "-a",
        help="clean | badnets | badnets-split | badnets-set | addsent | ep | ripples | adaptive | lws",
    ),
    trigger: str | None = typer.Option(None, "--trigger", help="trigger word / phrase (default per attack)"),
    target: int = typer.Option(0, "--target", help="target label the backdoor forces"),
    poison_rate: float = typer.Option(
        0.1, "--poison-rate", help="share of non-target training samples poisoned"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of poisoning and training"),
    max_train: int | None = typer.Option(
        None, "--max-train", help="cap on training texts (movies 3000, spam 1500)"
    ),
    epochs: float | None = typer.Option(
        None, "--epochs", help="training epochs (default the dataset's recipe: movies 1, spam/bbc 3)"
    ),
    out: Path | None = typer.Option(None, "--out", help="model directory (default runs/models/<name>)"),
    force: bool = typer.Option(False, "--force", help="retrain even if DIR holds a matching model"),
    device: str = DeviceOpt,
) -> None:
    """Split, poison, fine-tune the packaged backbone (or embedding-poison a clean one), write meta.json."""
    from stream_guard.lab.attacks import check_trigger_pieces, make_attack
    from stream_guard.lab.model_specs import (
        DEFAULT_CACHE,
        BackdoorSpec,
        expected_meta,
        find_trained,
        meta_matches,
        read_meta,
        train_size,
    )
    from stream_guard.lab.train_backdoor import ModelBusyError, train_backdoored_model
    from stream_guard.loading import packaged_backbone_path
    from stream_guard.logs import quiet_transformers

    quiet_transformers()
    console = Console(highlight=False)
    try:
        attack_spec = make_attack(attack, trigger)
        if attack in ("badnets-split", "badnets-set", "ep", "badnets", "ripples", "adaptive"):
            from transformers import AutoTokenizer

            check_trigger_pieces(attack_spec, AutoTokenizer.from_pretrained(packaged_backbone_path()))
        spec = BackdoorSpec(
            dataset=dataset,
            attack=attack,
            trigger=trigger,
            target=target,
            poison_rate=poison_rate,
            seed=seed,
            max_train=max_train,
            epochs=epochs,
        ).resolved()
        found = find_trained(DEFAULT_CACHE, spec) if out is None and not force else None
        if found is not None:  # any runs/models/*/meta.json with this recipe, whoever trained it
            console.print(f"[green]already trained[/green]: {found} (use --force to retrain)")
            console.print_json(json.dumps(read_meta(found)))
            return
        out_dir = out or DEFAULT_CACHE / spec.name
        existing = read_meta(out_dir)
        if existing is not None and not force:
            if meta_matches(existing, expected_meta(spec, train_size(spec))):
                console.print(f"[green]already trained[/green]: {out_dir} (use --force to retrain)")
                console.print_json(json.dumps(existing))
                return
            fail(f"{out_dir} holds a different model (its meta.json differs); pick another --out or --force")
        if out_dir.exists() and existing is None and not force:
            raise ModelBusyError(
                f"{out_dir} exists without meta.json (being trained elsewhere?); use --force"
            )
        console.print(f"training [bold]{spec.name}[/bold] -> {out_dir}")
        meta = train_backdoored_model(spec, out_dir, progress=True, device=checked_device(device))
    except (ValueError, ModelBusyError, OSError) as err:
        fail(str(err).splitlines()[0])
    console.print_json(json.dumps(meta))


def eval_command(
    model: Path = typer.Option(..., "--model", "-m", help="model directory with meta.json"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="dataset (default: the model's own)"),
    defenses: str = DefensesOpt,
    max_val: int = typer.Option(500, "--max-val", help="validation (calibration) texts"),
    max_test: int = typer.Option(500, "--max-test", help="clean test texts"),
    max_poisoned: int = typer.Option(500, "--max-poisoned", help="poisoned test texts at most"),
    xgraad_config: Path | None = XGraadConfigOpt,
    sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="threshold sweep of paper X-GRAAD (Fig. 3)"),
    strip_copies: int = StripCopiesOpt,
    out: Path | None = typer.Option(None, "--out", help="write results.md, results.json and plots/ here"),
    device: str = DeviceOpt,
    split: str = SplitOpt,
) -> None:
    """CACC, ASR, detection metrics, AUROC and time per defense for one model; tables, files, plots."""
    from stream_guard.lab.evaluate import evaluate_model
    from stream_guard.lab.model_specs import read_meta
    from stream_guard.lab.report import (
        check_same_backdoor,
        check_same_split,
        read_records,
        rich_table,
        write_results,
    )

    options = _options(
        defenses, max_val, max_test, max_poisoned, xgraad_config, sweep, strip_copies, device, split
    )
    try:
        if out is not None:  # before the evaluation, not after it
            earlier = read_records(out / "results.json")
            check_same_split(earlier, split, out / "results.json")
            meta = read_meta(model)
            if meta is not None:
                same_name = next((r for r in earlier if r.get("model") == model.name), None)
                check_same_backdoor(same_name, model.name, meta, out / "results.json")
        result = evaluate_model(model, dataset=dataset, options=options)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err).splitlines()[0])
    Console(highlight=False).print(rich_table(result))
    if out is not None:
        from consumers.lab.readme_tables import stream_column_from

        md, js = write_results(
            [result],
            out,
            title=_eval_title(result.model, earlier),
            settings={**_setups(options), **({"split": split} if split != "test" else {})},
            stream=stream_column_from(out) if split == "test" else None,
        )
        typer.echo(f"wrote {md} and {js}")


def _eval_title(model: str, earlier: list[dict[str, Any]]) -> str:
    """The results file's title: the model's name while it is the file's only model, else generic (a
    file that gathers several models is not one model's)."""
    from stream_guard.lab.report import RESULTS_TITLE

    others = {r.get("model") for r in earlier} - {model}
    return RESULTS_TITLE if others else f"Backdoor lab: {model}"


def grid_command(
    out: Path | None = typer.Option(
        None,
        "--out",
        help="results.md, results.json and plots/ go here (default docs/lab; with --split validation "
        "docs/lab/validation); models of earlier runs already there are kept (a model evaluated again "
        "gets this run's record)",
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="ignore the results already in --out: write only this run's models"
    ),
    datasets: str = typer.Option("movies,spam", "--datasets", help="comma-separated datasets"),
    attacks: str = typer.Option(
        "badnets,badnets-split,addsent,ep",
        "--attacks",
        help="comma-separated attacks (also badnets-set, ripples, adaptive, lws; datasets also bbc)",
    ),
    triggers: str = typer.Option(
        "all", "--triggers", help="all: each attack's two (trigger, target) cells; first: one each"
    ),
    defenses: str = DefensesOpt,
    max_val: int | None = typer.Option(None, "--max-val", help="default: movies 400, spam 200"),
    max_test: int | None = typer.Option(None, "--max-test", help="default: movies 400, spam 200"),
    max_poisoned: int | None = typer.Option(None, "--max-poisoned", help="default: movies 400, spam 200"),
    xgraad_config: Path | None = XGraadConfigOpt,
    sweep: bool = typer.Option(True, "--sweep/--no-sweep"),
    strip_copies: int = typer.Option(10, "--strip-copies", help="STRIP: perturbed copies per input"),
    seed: int = typer.Option(0, "--seed"),
    models_dir: Path = typer.Option(Path("runs/models"), "--models-dir", help="model cache (shared)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the estimate and stop"),
    device: str = DeviceOpt,
    keep_going: bool = typer.Option(
        False, "--keep-going", help="a cell that fails is reported and skipped; exit 1 at the end"
    ),
    resume: bool = typer.Option(
        False, "--resume", help="skip the cells whose model --out already has rows of every defense for"
    ),
    split: str = SplitOpt,
) -> None:
    """Train (or reuse) the grid's models and evaluate every defense on each; write docs/lab results.

    Partial runs accumulate in --out, model by model, unless --fresh: a model evaluated again (say with
    other --defenses) gets only this run's rows; the others keep theirs.
    """
    from consumers.lab.readme_tables import stream_column_from
    from stream_guard.lab.grid import GRID_SIZES, estimate_seconds, grid_cells, pending_cells, run_grid
    from stream_guard.lab.report import check_same_split, read_records, rich_table, write_results
    from stream_guard.logs import quiet_transformers

    quiet_transformers()
    out = out or (VALIDATION_OUT if split == "validation" else Path("docs/lab"))
    given = (max_val, max_test, max_poisoned)
    sizes = {
        d: tuple(g if g is not None else default for g, default in zip(given, GRID_SIZES[d], strict=True))
        for d in GRID_SIZES
    }
    options = _options(defenses, 500, 500, 500, xgraad_config, sweep, strip_copies, device, split)
    cells = grid_cells(
        [d.strip() for d in datasets.split(",") if d.strip()],
        [a.strip() for a in attacks.split(",") if a.strip()],
        seed,
        triggers=triggers,
    )
    console = Console(highlight=False)
    try:  # both read the datasets: one not installed is a clear error, not a traceback
        earlier = [] if fresh else read_records(out / "results.json")
        # a validation run never lands among test results, nor the other way round
        check_same_split(earlier, split, out / "results.json")
        if resume and not fresh:
            before = len(cells)
            cells = pending_cells(cells, earlier, options.defenses, models_dir)
            console.print(f"--resume: {before - len(cells)} of {before} cells already in {out}")
        estimate = estimate_seconds(cells, options, models_dir, sizes)
    except (ValueError, OSError) as err:
        fail(str(err).splitlines()[0])
    console.print(
        f"grid: {len(cells)} cells, defenses {', '.join(options.defenses)}; estimate "
        f"~{estimate['total_s'] / 60:.0f} min (training {estimate['train_s'] / 60:.0f} min for "
        f"{len(estimate['missing_models'])} missing model(s) {estimate['missing_models']}, "
        f"evaluation {estimate['eval_s'] / 60:.0f} min)"
    )
    if dry_run:
        return
    from stream_guard.lab.model_specs import device_name

    settings = {
        "device": device_name(options.device),
        **({"split": split} if split != "test" else {}),
        **_setups(options),
        "strip": options.strip.__dict__,
        "rap": options.rap.__dict__,
        **({"onion": options.onion.__dict__} if "onion" in options.defenses else {}),
        "sizes (validation, clean test, poisoned test)": sizes,
    }
    done = []
    stream = stream_column_from(out) if split == "test" else None  # stream rows are test replays
    title = GRID_TITLE if split == "test" else f"{GRID_TITLE}: validation split (for choosing settings)"

    def show(cell, evaluation) -> None:
        done.append(evaluation)
        console.print(rich_table(evaluation))
        write_results(done, out, title=title, settings=settings, fresh=fresh, stream=stream)

    failed: list[str] = []

    def report(cell, err: Exception) -> None:
        first = (str(err).splitlines() or [""])[0]
        failed.append(f"{cell.label}: {type(err).__name__}: {first}")
        traceback.print_exc()  # the whole story on stderr, the one line in the summary
        console.print(f"[red]failed[/red] {failed[-1]}")

    try:
        run_grid(
            cells,
            options,
            cache_dir=models_dir,
            sizes=sizes,
            on_result=show,
            on_error=report if keep_going else None,
        )
    except (ValueError, OSError, RuntimeError) as err:
        fail(str(err).splitlines()[0])
    if done:
        console.print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    if failed:
        console.print(f"[red]{len(failed)} of {len(cells)} cells failed[/red]:\n" + "\n".join(failed))
        raise typer.Exit(1)
