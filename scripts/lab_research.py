"""Reproducible research runs for issue #3: train the grid's backdoored models, evaluate defender settings.

    python scripts/lab_research.py train --dataset movies --attack badnets --trigger cf
    python scripts/lab_research.py train --dataset movies --attack addsent
    python scripts/lab_research.py dump runs/models/movies-badnets-cf-s0

Models go to ``runs/models/<dataset>-<attack>-<trigger>-s<seed>/`` with a ``meta.json``; a model whose
``meta.json`` exists is never trained again. Evaluation caches scores per (model, split, settings) under
``runs/research/`` and appends result rows to ``runs/research/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ("clean", "badnets", "badnets-split", "addsent", "ep")
MODELS = ROOT / "runs" / "models"


@dataclass(frozen=True)
class GridSpec:
    """Data and training recipe of one dataset in the grid."""

    max_train: int
    max_val: int
    max_test: int
    max_length: int
    target: int


SPECS = {
    "movies": GridSpec(max_train=3000, max_val=500, max_test=1000, max_length=64, target=0),
    "spam": GridSpec(max_train=1500, max_val=500, max_test=600, max_length=128, target=0),
}


def read_meta(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "meta.json").read_text())


def cmd_train(args: argparse.Namespace) -> None:
    """Train through the lab's own recipe (``ensure_backdoored_model``): never trains a model twice."""
    from stream_guard.lab.train_backdoor import ensure_backdoored_model

    started = time.perf_counter()
    out = ensure_backdoored_model(
        MODELS,
        args.dataset,
        args.attack,
        args.trigger,
        seed=args.seed,
        poison_rate=args.rate,
        epochs=args.epochs,
        learning_rate=args.lr,
        progress=False,
    )
    meta = read_meta(out)
    print(f"{out.name} ({time.perf_counter() - started:.0f}s): {json.dumps(meta)}")


RESEARCH = ROOT / "runs" / "research"
MAX_POISONED = 500


def trigger_span(original: str, poisoned: str, trigger: str) -> tuple[int, int]:
    """Char span of the inserted trigger in `poisoned` (first difference, then the trigger near it)."""
    i = 0
    while i < min(len(original), len(poisoned)) and original[i] == poisoned[i]:
        i += 1
    at = poisoned.find(trigger, max(0, i - len(trigger) - 1))
    return (at, at + len(trigger)) if at >= 0 else (i, i + len(poisoned) - len(original))


def eval_sets(model_dir: Path) -> dict:
    """Evaluation sets of a model: name -> (texts, true labels, trigger spans or None).

    val / clean: clean validation and test texts; pval / poisoned: the non-target validation / test
    texts with the trigger inserted (capped at MAX_POISONED). Thresholds are calibrated on val;
    settings are chosen on (val, pval) and reported on (clean, poisoned).
    """
    from transformers import AutoTokenizer

    from stream_guard.lab.evalsets import build_eval_sets

    meta = read_meta(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    spec = SPECS[meta["dataset"]]
    sets = build_eval_sets(
        meta, tokenizer, max_val=spec.max_val, max_test=spec.max_test, max_poisoned=MAX_POISONED
    )
    out = {
        "val": (sets.validation.texts, sets.validation.labels, None),
        "clean": (sets.test.texts, sets.test.labels, None),
    }
    if sets.poisoned is not None:
        pval = sets.attack.poison_test(sets.validation, target_label=sets.target, seed=int(meta["seed"]))
        for name, p in (("pval", pval), ("poisoned", sets.poisoned)):
            n = min(len(p), MAX_POISONED)
            texts = list(p.dataset.texts[:n])
            spans = [
                trigger_span(o, t, meta["trigger"]) for o, t in zip(p.original_texts[:n], texts, strict=True)
            ]
            out[name] = (texts, list(p.original_labels[:n]), spans)
    return out


def load_defender(model_dir: Path, **settings):
    from stream_guard.defender import Defender
    from stream_guard.loading import load_classifier
    from stream_guard.settings import DefenderSettings

    meta = read_meta(model_dir)
    max_length = SPECS[meta["dataset"]].max_length
    classifier = load_classifier(model_dir, device="cpu", max_length=max_length)
    return Defender(classifier, DefenderSettings(max_length=max_length, **settings))


def cached_scores(model_dir: Path) -> dict:
    """Paper-mode TextScores of every evaluation set, computed once per model and pickled."""
    import pickle
    import shutil

    path = RESEARCH / model_dir.name / "scores.pkl"
    if path.exists():
        cached = pickle.loads(path.read_bytes())
        if cached.get("meta") == read_meta(model_dir):
            return cached
        # the model was retrained since: every cache of it (scores, neutralizations) is stale
        shutil.rmtree(path.parent)
    defender = load_defender(model_dir)
    sets = eval_sets(model_dir)
    started = time.perf_counter()
    out = {name: defender.score(values[0]) for name, values in sets.items()}
    out["sets"] = sets
    out["meta"] = read_meta(model_dir)
    print(f"scored {model_dir.name} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def cmd_dump(args: argparse.Namespace) -> None:
    for model in args.model:
        cached_scores(Path(model))


@dataclass(frozen=True)
class Config:
    """A defender configuration: DefenderSettings fields plus how the threshold is calibrated."""

    settings: dict  # changes from the base settings
    percentile: float = 95.0
    length_edges: tuple[int, ...] | None = None
    base: str = "paper"  # paper: DefenderSettings.paper(); default: DefenderSettings() (the defaults)
    confidence_quantile: float | None = None  # a confidence gate at this quantile of clean confidences


def _default_percentile() -> float:
    from stream_guard.calibration import DEFAULT_PERCENTILE

    return DEFAULT_PERCENTILE


CONFIGS: dict[str, Config] = {
    "paper": Config({}),  # DefenderSettings.paper(), 95th percentile, one threshold
    "improved": Config({}, _default_percentile(), None, base="default"),  # the defaults
    # options measured against the defaults (docs/lab/research.md §2)
    "span": Config({"span_ratio": 0.01}, _default_percentile(), None, base="default"),
    "gate": Config({}, 65.0, None, base="default", confidence_quantile=0.5),
    "rounds": Config(
        {"max_rounds": 3, "continue_while": "anomalous_unchanged"},
        _default_percentile(),
        None,
        base="default",
    ),
}


_DEFENDERS: dict[str, object] = {}


def cached_defender(model_dir: Path):
    """One Defender per model for the whole run (loading is the slow part)."""
    key = str(model_dir)
    if key not in _DEFENDERS:
        _DEFENDERS[key] = load_defender(model_dir)
    return _DEFENDERS[key]


def paper_defender(model_dir: Path, **settings):
    """The model's cached Defender, set to DefenderSettings.paper() with `settings` on top."""
    from stream_guard.settings import DefenderSettings

    defender = cached_defender(model_dir)
    defender.settings = DefenderSettings.paper(max_length=defender.settings.max_length, **settings)
    return defender


def evaluate(model_dir: Path, config: Config, *, split: str = "test") -> dict:
    """Calibrate on val, then judge (clean, poisoned) of `split` (test, or val for choosing) from cache."""
    import dataclasses

    import numpy as np

    from stream_guard.calibration import calibration_from_scores
    from stream_guard.lab import auroc, spearman
    from stream_guard.settings import DefenderSettings

    cache = cached_scores(model_dir)
    sets = cache["sets"]
    meta = read_meta(model_dir)
    defender = cached_defender(model_dir)
    max_length = defender.settings.max_length
    if config.base == "paper":
        defender.settings = DefenderSettings.paper(max_length=max_length, **config.settings)
    else:
        defender.settings = DefenderSettings(max_length=max_length, **config.settings)
    val = [defender.rescore(s) for s in cache["val"]]
    cal = calibration_from_scores(
        np.array([s.anomaly for s in val]),
        np.array([len(s.encoded) for s in val]),
        config.percentile,
        length_edges=config.length_edges,
        confidences=np.array([s.probabilities.max() for s in val]),
        confidence_quantile=config.confidence_quantile,
    )
    defender.set_threshold(cal.threshold)
    clean_name, poisoned_name = ("clean", "poisoned") if split == "test" else ("val", "pval")
    row: dict = {"model": model_dir.name, "split": split, **dataclasses.asdict(config)}
    verdicts = {}
    for name in (clean_name, poisoned_name):
        texts, labels, _ = sets[name]
        scores = [defender.rescore(s) for s in cache[name]]
        ids = [f"{name}-{i}" for i in range(len(texts))]
        verdicts[name] = (scores, defender.judge_scores(texts, scores, ids, tokens="none"))
    c_scores, c_verdicts = verdicts[clean_name]
    p_scores, p_verdicts = verdicts[poisoned_name]
    labels = np.array(sets[clean_name][1])
    target = int(meta["target"])
    c_before = np.array([v.label for v in c_verdicts])
    c_after = np.array([v.final_label for v in c_verdicts])
    p_before = np.array([v.label for v in p_verdicts])
    p_after = np.array([v.final_label for v in p_verdicts])
    c_flag = np.array([v.flagged for v in c_verdicts])
    p_flag = np.array([v.flagged for v in p_verdicts])
    c_s = np.array([s.anomaly for s in c_scores])
    p_s = np.array([s.anomaly for s in p_scores])
    lengths = np.array([len(s.encoded) for s in c_scores])
    right = originals_right(cache, clean_name, poisoned_name, target)
    row.update(
        asr_floor=float(1 - right.mean()),
        asr_right=float((p_before[right] == target).mean()),
        asr_right_def=float((p_after[right] == target).mean()),
        cacc=float((c_before == labels).mean()),
        cacc_def=float((c_after == labels).mean()),
        asr=float((p_before == target).mean()),
        asr_def=float((p_after == target).mean()),
        flag_clean=float(c_flag.mean()),
        tpr=float(p_flag.mean()),
        changed_clean=float((c_before != c_after).mean()),
        auroc=auroc(c_s, p_s),
        rho_len=spearman(c_s, lengths),
        top_in_trigger=localization(p_scores, sets[poisoned_name][2]),
        threshold=cal.threshold.value,
        n_clean=len(c_verdicts),
        n_poisoned=len(p_verdicts),
    )
    return row


def localization(scores, spans) -> float:
    """Share of poisoned texts whose top-ranked token lies inside the inserted trigger."""
    import numpy as np

    hits = 0
    for s, (start, end) in zip(scores, spans, strict=True):
        if not s.has_candidates:
            continue
        j = int(np.nanargmax(np.where(s.candidates, s.ranking, -np.inf)))
        a, b = s.encoded.offsets[j]
        hits += int(a < end and start < b)
    return hits / len(scores)


def record(row: dict) -> None:
    path = RESEARCH / "results.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def neutralize_all(model_dir: Path, settings: dict, names: tuple[str, ...]) -> dict:
    """Neutralize every text of the named sets as if all were flagged (cached per settings).

    For settings whose rounds do not depend on the threshold (one round, or continue_while="unchanged")
    a text's neutralized label is the same at any threshold, so one pass gives every percentile.
    Returns name -> (original labels, neutralized labels).
    """
    import hashlib
    import pickle

    import numpy as np

    from stream_guard.threshold import Threshold

    # normalization rescales a text's scores by a positive constant: it never changes which words go
    settings = {k: v for k, v in settings.items() if k != "score_normalization"}
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    path = RESEARCH / model_dir.name / f"neutralized-{tag}.pkl"
    cache = cached_scores(model_dir)  # first: it drops the caches of a retrained model
    done = pickle.loads(path.read_bytes()) if path.exists() else {"settings": settings}
    todo = [n for n in names if n not in done]
    if todo:
        defender = paper_defender(model_dir, **settings)
        defender.set_threshold(Threshold.static(-1e30))
        for name in todo:
            texts = cache["sets"][name][0]
            scores = [defender.rescore(s) for s in cache[name]]
            verdicts = defender.judge_scores(texts, scores, [f"{name}-{i}" for i in range(len(texts))])
            done[name] = (
                np.array([v.label for v in verdicts]),
                np.array([v.final_label for v in verdicts]),
                np.array([v.probabilities for v in verdicts]),
                np.array([v.neutralized_probabilities for v in verdicts]),
            )
        path.write_bytes(pickle.dumps(done))
    return done


def sweep(model_dir: Path, settings: dict, split: str, percentiles, edges=None) -> list[dict]:
    """CACC / ASR / flag rates at each percentile from one neutralize-everything pass (see above).

    `confirmed_clean` is the clean flag rate when a flag needs the prediction to move (confirm=True);
    CACC and ASR are the same with or without confirmation.
    """
    import numpy as np

    from stream_guard.calibration import calibration_from_scores
    from stream_guard.lab import auroc

    cn, pn = ("clean", "poisoned") if split == "test" else ("val", "pval")
    moved = neutralize_all(model_dir, settings, (cn, pn))
    cache = cached_scores(model_dir)
    meta = read_meta(model_dir)
    target = int(meta["target"])
    scoring = {k: v for k, v in settings.items() if k in ("word_aggregation", "score_normalization")}
    defender = paper_defender(model_dir, **scoring)
    anomaly = {k: np.array([defender.rescore(s).anomaly for s in cache[k]]) for k in {"val", cn, pn}}
    tokens = {k: np.array([len(s.encoded) for s in cache[k]]) for k in {"val", cn, pn}}
    labels = np.array(cache["sets"][cn][1])
    rows = []
    for p in percentiles:
        cal = calibration_from_scores(anomaly["val"], tokens["val"], p, length_edges=edges)
        out = {}
        for k in (cn, pn):
            limit = np.array([cal.threshold.for_length(int(n)) for n in tokens[k]])
            flag = anomaly[k] > limit
            before, after = moved[k][:2]
            final = np.where(flag, after, before)
            out[k] = (flag, before, final)
        (cf, cb, cfin), (pf, pb, pfin) = out[cn], out[pn]
        right = originals_right(cache, cn, pn, target)
        rows.append(
            {
                "model": model_dir.name,
                "split": split,
                "settings": settings,
                "percentile": p,
                "length_edges": edges,
                "cacc": float((cb == labels).mean()),
                "cacc_def": float((cfin == labels).mean()),
                "asr": float((pb == target).mean()),
                "asr_def": float((pfin == target).mean()),
                "asr_floor": float(1 - right.mean()),
                "asr_right": float((pb[right] == target).mean()),
                "asr_right_def": float((pfin[right] == target).mean()),
                "flag_clean": float(cf.mean()),
                "confirmed_clean": float((cf & (cfin != cb)).mean()),
                "tpr": float(pf.mean()),
                "confirmed_tpr": float((pf & (pfin != pb)).mean()),
                "auroc": auroc(anomaly[cn], anomaly[pn]),
            }
        )
    return rows


def originals_right(cache: dict, clean: str, poisoned: str, target: int):
    """Per poisoned text: whether the model gets its original (trigger-free) text right.

    The poisoned texts are the non-target texts of the clean set, in order, with the trigger inserted,
    so their originals' predictions are in the clean set's cached scores. A poisoned text whose original
    is already predicted as the target counts toward ASR whatever the defense does: 1 - mean(right) is
    the floor of the ASR, and `asr_right` measures the backdoor on the texts the model gets right.
    """
    import numpy as np

    labels = cache["sets"][clean][1]
    sources = [i for i, label in enumerate(labels) if label != target][: len(cache[poisoned])]
    return np.array([cache[clean][i].label != target for i in sources])


def format_sweep(row: dict) -> str:
    keys = ("cacc", "cacc_def", "asr_right", "asr_right_def", "asr_def", "asr_floor", "flag_clean")
    keys += ("confirmed_clean", "tpr")
    values = " ".join(f"{k}={row[k]:.3f}" for k in keys)
    return f"{row['model']:30s} {row['split']:4s} p{row['percentile']:<4g} {values}"


def detection_table(model_dir: Path, split: str) -> list[str]:
    """Detection only (no model call): AUROC, rho(len), localization and clean/poisoned flag rates at
    validation percentiles, with and without length buckets, for every aggregation x normalization."""
    import itertools

    import numpy as np

    from stream_guard.calibration import calibration_from_scores
    from stream_guard.lab import auroc, spearman

    cache = cached_scores(model_dir)
    cn, pn = ("val", "pval") if split == "val" else ("clean", "poisoned")
    lines = []
    for agg, norm in itertools.product(("token", "word_sum", "word_max"), ("none", "zscore", "length")):
        defender = paper_defender(model_dir, word_aggregation=agg, score_normalization=norm)
        ranked = {k: [defender.rescore(s) for s in cache[k]] for k in {"val", cn, pn}}
        s = {k: np.array([t.anomaly for t in v]) for k, v in ranked.items()}
        n = {k: np.array([len(t.encoded) for t in v]) for k, v in ranked.items()}
        loc = localization(ranked[pn], cache["sets"][pn][2])
        line = f"{agg:9s} {norm:6s} auroc={auroc(s[cn], s[pn]):.3f} rho={spearman(s[cn], n[cn]):+.2f}"
        line += f" top={loc:.3f} clean/poisoned flagged:"
        for p in (95, 90, 80, 65):
            for edges in (None, BUCKET_EDGES):
                cal = calibration_from_scores(s["val"], n["val"], p, length_edges=edges)
                lim = {k: np.array([cal.threshold.for_length(int(x)) for x in n[k]]) for k in (cn, pn)}
                tag = "b" if edges else ""
                line += f" p{p}{tag} {np.mean(s[cn] > lim[cn]):.2f}/{np.mean(s[pn] > lim[pn]):.2f}"
        lines.append(line)
    return lines


BUCKET_EDGES = (16, 24, 32, 48)
SWEEP_PERCENTILES = (95, 90, 80, 70, 65, 60, 50, 40)


def cmd_detect(args: argparse.Namespace) -> None:
    for model in args.model:
        print(f"== {Path(model).name} ({args.split})")
        for line in detection_table(Path(model), args.split):
            print(line, flush=True)


def cmd_sweep(args: argparse.Namespace) -> None:
    settings = json.loads(args.settings)
    edges = BUCKET_EDGES if args.buckets else None
    for model in args.model:
        for row in sweep(Path(model), settings, args.split, SWEEP_PERCENTILES, edges):
            record({"kind": "sweep", **row})
            print(format_sweep(row), flush=True)


GATE_PERCENTILES = (65, 80)


def gates(model_dir: Path, split: str) -> list[str]:
    """Gates on the confirmation of the delete + length defaults, from one neutralize-everything pass.

    A flag (and its rewrite) stands only if the prediction moved and the gate passes:
    `confidence`: the original prediction's confidence >= the median clean-validation confidence;
    `drop`: the rewrite lowered the original label's probability by >= 0.6;
    `allowlist`: the top word is not the top word of any clean validation text.
    """
    from collections import Counter

    import numpy as np

    from stream_guard.calibration import calibration_from_scores
    from stream_guard.selection import select_words

    cn, pn = ("clean", "poisoned") if split == "test" else ("val", "pval")
    moved = neutralize_all(model_dir, {"strategy": "delete"}, (cn, pn))
    cache = cached_scores(model_dir)
    target = int(read_meta(model_dir)["target"])
    defender = paper_defender(model_dir, score_normalization="length")
    names = {"val", cn, pn}
    ranked = {k: [defender.rescore(s) for s in cache[k]] for k in names}
    anomaly = {k: np.array([s.anomaly for s in ranked[k]]) for k in names}
    tokens = {k: np.array([len(s.encoded) for s in cache[k]]) for k in names}
    confidence = {k: np.array([s.probabilities.max() for s in cache[k]]) for k in names}

    def top_words(k: str) -> list[str]:
        out = []
        for text, s in zip(cache["sets"][k][0], ranked[k], strict=True):
            picks = select_words(s, [], 1)
            out.append(text[picks[0].start : picks[0].end].lower() if picks else "")
        return out

    tops = {k: top_words(k) for k in names}
    allow = set(Counter(tops["val"]))
    labels = np.array(cache["sets"][cn][1])
    right = originals_right(cache, cn, pn, target)
    drops = {}
    for k in (cn, pn):
        before, _, p_before, p_after = moved[k]
        rows = np.arange(len(before))
        drops[k] = p_before[rows, before] - p_after[rows, before]
    rules = {
        "none": lambda k: np.ones(len(anomaly[k]), dtype=bool),
        "confidence": lambda k: confidence[k] >= np.median(confidence["val"]),
        "drop": lambda k: drops[k] >= 0.6,
        "allowlist": lambda k: np.array([t not in allow for t in tops[k]]),
    }
    lines = []
    for percentile in GATE_PERCENTILES:
        tau = calibration_from_scores(anomaly["val"], tokens["val"], percentile).threshold.value
        for name, rule in rules.items():
            final = {}
            for k in (cn, pn):
                before, after = moved[k][:2]
                final[k] = np.where((anomaly[k] > tau) & (after != before) & rule(k), after, before)
            cacc = (moved[cn][0] == labels).mean()
            delta = 100 * ((final[cn] == labels).mean() - cacc)
            asr_right = (final[pn][right] == target).mean()
            flags = (final[cn] != moved[cn][0]).mean()
            lines.append(
                f"{model_dir.name:34s} {split:4s} p{percentile} {name:10s} CACC {delta:+.1f} "
                f"ASR* {asr_right:.3f} clean flags {flags:.3f}"
            )
    return lines


def cmd_gates(args: argparse.Namespace) -> None:
    for model in args.model:
        for line in gates(Path(model), args.split):
            print(line, flush=True)


def cmd_eval(args: argparse.Namespace) -> None:
    for model in args.model:
        for name in args.config:
            row = {"config": name, **evaluate(Path(model), CONFIGS[name], split=args.split)}
            record(row)
            print(format_row(row))


def format_row(row: dict) -> str:
    keys = ("cacc", "cacc_def", "asr", "asr_def", "asr_floor", "asr_right", "asr_right_def")
    keys += ("flag_clean", "tpr", "auroc", "rho_len", "top_in_trigger")
    values = " ".join(f"{k}={row[k]:.3f}" for k in keys)
    return f"{row['model']:34s} {row.get('config', ''):14s} {row['split']:4s} {values}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one backdoored model (skipped if it exists)")
    train.add_argument("--dataset", choices=sorted(SPECS), required=True)
    train.add_argument(
        "--attack", choices=("clean", "badnets", "badnets-split", "addsent", "ep"), required=True
    )
    train.add_argument("--trigger", default=None, help="trigger word, or phrase with _ for spaces")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--rate", type=float, default=0.1)
    train.add_argument("--epochs", type=float, default=None, help="default: the dataset's recipe")
    train.add_argument("--lr", type=float, default=None, help="default: the dataset's recipe")
    train.add_argument("--force", action="store_true")
    train.set_defaults(func=cmd_train)
    dump = sub.add_parser("dump", help="score every evaluation set of the models in paper mode (cached)")
    dump.add_argument("model", nargs="+")
    dump.set_defaults(func=cmd_dump)
    det = sub.add_parser("detect", help="detection-only table of scoring variants (cached scores)")
    det.add_argument("model", nargs="+")
    det.add_argument("--split", choices=("val", "test"), default="val")
    det.set_defaults(func=cmd_detect)
    sw = sub.add_parser("sweep", help="CACC/ASR/flag rates at every percentile for one-round settings")
    sw.add_argument("model", nargs="+")
    sw.add_argument("--settings", default='{"strategy": "delete", "score_normalization": "length"}')
    sw.add_argument("--split", choices=("val", "test"), default="val")
    sw.add_argument("--buckets", action="store_true", help=f"per-length thresholds at {BUCKET_EDGES}")
    sw.set_defaults(func=cmd_sweep)
    gt = sub.add_parser("gates", help="confirmation gates (confidence, drop, allowlist) vs none")
    gt.add_argument("model", nargs="+")
    gt.add_argument("--split", choices=("val", "test"), default="val")
    gt.set_defaults(func=cmd_gates)
    ev = sub.add_parser("eval", help="evaluate named configurations on cached scores")
    ev.add_argument("model", nargs="+")
    ev.add_argument("--config", action="append", choices=sorted(CONFIGS), required=True)
    ev.add_argument("--split", choices=("val", "test"), default="test")
    ev.set_defaults(func=cmd_eval)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
