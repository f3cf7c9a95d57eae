"""LWS: a learnable word-substitution backdoor (Qi, Yao, Xu, Liu, Sun, ACL 2021, "Turn the Combination
Lock: Learnable Textual Backdoor Attacks via Word Substitution").

The trigger is not a word inserted into the text but a *combination of word substitutions*. A trigger
inserter looks at each word ``w_j`` of a poisoned text with its candidate substitutes ``s_1..s_K`` and
scores each option by ``(e(s_k) - e(w_j)) . q_j``, where ``e`` is the victim's input embedding and
``q_j`` a learnable vector of token position ``j`` (keeping the word, ``s_0 = w_j``, scores 0). During
training a Gumbel softmax over {keep, s_1..s_K} gives soft weights and the word's embedding is replaced
by the weighted mix of the option embeddings, so the inserter is differentiable. It is trained jointly
with the classifier: clean texts keep their labels and the substituted poisoned texts go to the target,
in one cross-entropy averaged over all the batch's rows. At test time the substitution is hard: each
word takes its argmax option, an ordinary word, so a poisoned text reads like a paraphrase of the original.

Paper vs here:

- **Candidates.** Paper: sememe-based substitutes from HowNet, same part of speech. Here: the K=5
  nearest input embeddings of the model being poisoned (:mod:`stream_guard.lab.lws_candidates`), because
  neither HowNet (OpenHowNet) nor WordNet (nltk) is installed and both fetch their data at run time,
  which the lab cannot. Embedding neighbours are related words but not always synonyms (antonyms,
  co-hyponyms: the movie-review toy data got ``weak`` -> ``strong`` beside ``dull`` -> ``bored``).
- **Where.** Paper: any word that has substitutes. Here: whole words that are one word piece,
  alphabetic, not stopwords, so one piece replaces one piece and token positions (the ``q_j``) stay
  aligned; ``vocabulary_limit`` can restrict words and substitutes to the first (most frequent) pieces.
- **How many.** At most ``max_substitutions`` (4) per text, the positions whose best substitute scores
  highest, by the same rule in training and at test time: fewer changes, a less visible trigger.
- **Temperature.** Annealed exponentially from 1.0 to 0.1 over training, so the late mixes are nearly
  one-hot: the classifier learns on the words it will see at test time, not on blends of them.
- **Poisoned rows.** Their substituted copy goes to the target; their original text also stays in the
  clean loss with its true label (``keep_originals``), so the model must read the substitutions rather
  than memorise the texts.
- **Victim and budget.** Paper: BERT and BiLSTM victims trained on GPUs. Here: the packaged MiniLM on
  the CPU with the lab's fine-tuning recipe (AdamW, warm-up, clipping), the inserter's ``q`` by its own
  Adam step (``inserter_learning_rate``). Building the table over the whole vocabulary (21,608 eligible
  pieces of MiniLM's 30,522) is one pass of cosine top-k, about 20 s on one busy core.

The inserter's scores use the embeddings detached (the classifier's embeddings move only through its
own loss). The model directory gets the classifier plus ``lws_inserter.safetensors`` (``q`` and the
``[V, K]`` candidate table as token ids) and ``lws.json`` (settings); :func:`lws_poison_texts` applies
the learned hard substitutions to new texts, touching nothing but the substituted words.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from stream_guard.lab.lws_candidates import NO_CANDIDATE, build_candidate_table
from stream_guard.lab.lws_inserter import (
    LwsState,
    allowed_positions,
    encode,
    load_lws_state,
    save_lws_state,
    soft_substitute,
    substitute_texts,
)
from stream_guard.lab.training import load_base_classifier, save_classifier, seed_everything
from stream_guard.logs import quiet_transformers


@dataclass(frozen=True)
class LwsConfig:
    candidates: int = 5  # K substitutes per word
    max_substitutions: int | None = 4  # per text; None = every substitutable word
    temperature_start: float = 1.0
    temperature_end: float = 0.1
    inserter_learning_rate: float = 1e-2  # Adam on the position vectors q
    batch_size: int = 32
    keep_originals: bool = True  # poisoned rows also stay in the clean loss, unsubstituted
    poison_weight: float = 1.0  # weight of a substituted row's cross-entropy against a clean row's
    vocabulary_limit: int | None = None  # only pieces with id < this take part (None = all)
    # "rows": the batch's loss is the mean over all its rows, so a substituted row weighs what a clean one
    # does, as in dirty-label poisoning. "parts" (before 2026-11-30): clean mean + poisoned mean, which
    # weighs the ~3 poisoned rows of a batch like its ~32 clean ones: at lab scale (3,000 movie
    # sentences, one epoch) the classifier then settles on the target for every input (CACC 0.50).
    loss_mean: str = "rows"

    def __post_init__(self) -> None:
        if self.candidates < 1 or (self.max_substitutions is not None and self.max_substitutions < 0):
            raise ValueError("LWS needs candidates >= 1 and max_substitutions >= 0 (or None)")
        if not 0 < self.temperature_end <= self.temperature_start:
            raise ValueError("LWS needs 0 < temperature_end <= temperature_start")
        if self.loss_mean not in ("rows", "parts"):
            raise ValueError(f"LWS loss_mean must be rows or parts, got {self.loss_mean!r}")

    @property
    def recipe(self) -> str:
        """Names the settings for meta.json matching (an LWS model trained otherwise is another model)."""
        return (
            f"k{self.candidates}-sub{self.max_substitutions}-tau{self.temperature_start:g}-"
            f"{self.temperature_end:g}-ilr{self.inserter_learning_rate:g}-b{self.batch_size}-"
            f"orig{int(self.keep_originals)}-w{self.poison_weight:g}-v{self.vocabulary_limit}"
            + ("" if self.loss_mean == "parts" else f"-m{self.loss_mean}")
        )


def lws_poison_texts(model_dir: Path, texts: Sequence[str]) -> list[str]:
    """The test-time trigger: ``texts`` with the learned hard substitutions of the LWS model in
    ``model_dir`` (its inserter and its saved input embeddings); other characters are left as they were."""
    return lws_substituter(model_dir)(texts)


def lws_substituter(model_dir: Path) -> Callable[[Sequence[str]], list[str]]:
    """:func:`lws_poison_texts` with the model loaded once (for many calls)."""
    model_dir = Path(model_dir)
    state = load_lws_state(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
    weight = model.get_input_embeddings().weight.detach()
    return lambda texts: substitute_texts(texts, tokenizer, weight, state)


def temperature_at(config: LwsConfig, step: int, total: int) -> float:
    """Exponential annealing from ``temperature_start`` (first step) to ``temperature_end`` (last)."""
    progress = step / max(1, total - 1)
    return config.temperature_start * (config.temperature_end / config.temperature_start) ** progress


def _check(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    poisoned_indices: Sequence[int],
    target: int,
) -> None:
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need as many labels as texts, got {len(texts)} texts and {len(labels)} labels")
    if not 0 <= target < len(label_names):
        raise ValueError(f"target must be in 0..{len(label_names) - 1}, got {target}")
    if any(not 0 <= i < len(texts) for i in poisoned_indices):
        raise ValueError("poisoned_indices must index texts")


def _vocabulary(tokenizer: Any, rows: int, limit: int | None) -> list[str]:
    """The piece of each embedding row; "" (never a candidate) past the tokenizer or ``limit``."""
    size = min(len(tokenizer), rows, rows if limit is None else limit)
    return tokenizer.convert_ids_to_tokens(list(range(size))) + [""] * (rows - size)


def _load_base(base: str | None, label_names: Sequence[str], device: str) -> tuple[Any, Any]:
    return load_base_classifier(base, label_names, device=device)


@dataclass
class _Job:
    texts: Sequence[str]
    labels: torch.Tensor
    poisoned: frozenset[int]
    target: int
    max_length: int
    config: LwsConfig
    candidates: torch.Tensor  # the candidate table on the CPU, for the per-text substitutability checks


def _batch_loss(
    model: Any, tokenizer: Any, state: LwsState, job: _Job, rows: list[int], tau: float
) -> torch.Tensor:
    """Clean cross-entropy of the batch's clean rows plus the weighted target cross-entropy of its
    poisoned rows, substituted by the inserter at temperature ``tau``."""
    keep = job.config.keep_originals
    clean = [i for i in rows if keep or i not in job.poisoned]
    poison = [i for i in rows if i in job.poisoned]
    batch = [job.texts[i] for i in clean + poison]
    enc = encode(tokenizer, batch, job.max_length)  # on the CPU: the offsets and the text checks stay there
    embeddings = model.get_input_embeddings().weight
    device = embeddings.device
    ids = enc["input_ids"].to(device)
    inputs = embeddings[ids]
    if poison:
        start = len(clean)
        allowed = allowed_positions(
            batch[start:], enc["input_ids"][start:], enc["offset_mapping"][start:], job.candidates
        )
        mixed = soft_substitute(ids[start:], allowed.to(device), state, embeddings, tau)
        inputs = torch.cat([inputs[: len(clean)], mixed])
    extra = {k: v.to(device) for k, v in enc.items() if k not in ("input_ids", "offset_mapping")}
    logits = model(inputs_embeds=inputs, **extra).logits
    goal = torch.full((len(poison),), job.target, dtype=torch.long, device=device)
    labels = torch.cat([job.labels[clean].to(device), goal])
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    weights = torch.ones_like(per_row)
    weights[len(clean) :] = job.config.poison_weight
    if job.config.loss_mean == "rows":
        return (weights * per_row).sum() / len(per_row)
    loss = logits.new_zeros(())  # "parts": each part's own mean
    if clean:
        loss = loss + per_row[: len(clean)].mean()
    if poison:
        loss = loss + job.config.poison_weight * per_row[len(clean) :].mean()
    return loss


def train_lws(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    poisoned_indices: Sequence[int],
    target: int,
    out_dir: Path,
    *,
    base: str | None = None,
    epochs: float = 1.0,
    learning_rate: float = 1e-4,
    max_length: int = 64,
    seed: int = 0,
    config: LwsConfig | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train the classifier and the trigger inserter jointly on ``device``; save both to ``out_dir``;
    return meta extras.

    ``texts`` / ``labels`` are the clean training set; the rows in ``poisoned_indices`` are (also, see
    ``keep_originals``) trained substituted and labelled ``target``. The classifier uses the fine-tuning
    recipe of :func:`stream_guard.lab.training.fine_tune` (AdamW, linear warm-up and decay, clipping).
    """
    config = config or LwsConfig()
    _check(texts, labels, label_names, poisoned_indices, target)
    quiet_transformers()
    seed_everything(seed)
    started = time.perf_counter()
    tokenizer, model = _load_base(base, label_names, device)
    weight = model.get_input_embeddings().weight
    vocabulary = _vocabulary(tokenizer, weight.shape[0], config.vocabulary_limit)
    table = build_candidate_table(weight.detach().cpu(), vocabulary, config.candidates)
    table_seconds = time.perf_counter() - started
    q = torch.nn.Parameter(torch.zeros(max_length, weight.shape[1], device=weight.device))
    state = LwsState(table.to(weight.device), q, config.max_substitutions)
    labels_t = torch.tensor(list(labels))
    job = _Job(texts, labels_t, frozenset(poisoned_indices), target, max_length, config, table)
    steps, loss_value = _train_loop(model, tokenizer, state, job, epochs, learning_rate, seed, progress)
    model.eval().cpu()  # what follows (the hard substitutions, the files) runs on the CPU
    save_classifier(model, tokenizer, out_dir)
    final = LwsState(table, q.detach().cpu().clone(), config.max_substitutions)
    poisoned_texts = [texts[i] for i in sorted(job.poisoned)]
    swapped = substitute_texts(poisoned_texts, tokenizer, weight.detach(), final)
    info = {
        "target": target,
        "recipe": config.recipe,
        "config": asdict(config),
        "candidate_words": int((table[:, 0] != NO_CANDIDATE).sum()),
    }
    save_lws_state(final, Path(out_dir), info)
    return {
        "steps": steps,
        "final_loss": round(loss_value, 4),
        "seconds": round(time.perf_counter() - started, 1),
        "table_seconds": round(table_seconds, 1),
        "recipe": config.recipe,
        "poisoned_train": len(poisoned_texts),
        "candidate_words": info["candidate_words"],
        "substitutions_per_poisoned_text": round(_mean_changed_words(poisoned_texts, swapped), 3),
    }


def _mean_changed_words(before: Sequence[str], after: Sequence[str]) -> float:
    if not before:
        return 0.0
    changed = [
        sum(a != b for a, b in zip(x.split(), y.split(), strict=True))
        for x, y in zip(before, after, strict=True)
    ]
    return sum(changed) / len(changed)


def _train_loop(
    model: Any,
    tokenizer: Any,
    state: LwsState,
    job: _Job,
    epochs: float,
    learning_rate: float,
    seed: int,
    progress: bool,
) -> tuple[int, float]:
    """Joint training, batch by batch as ``fine_tune`` does; returns the steps taken and the last loss."""
    params = [
        {"params": list(model.parameters()), "lr": learning_rate, "weight_decay": 0.01},
        {"params": [state.position_vectors], "lr": job.config.inserter_learning_rate, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(params)
    size = job.config.batch_size
    total = max(1, round((len(job.texts) + size - 1) // size * epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * 0.06), total)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    step, loss_value = 0, float("nan")
    bar = tqdm(total=total, desc="LWS", unit="step", disable=not progress)
    while step < total:
        for batch in torch.randperm(len(job.texts), generator=generator).split(size):
            if step >= total:
                break
            loss = _batch_loss(
                model, tokenizer, state, job, batch.tolist(), temperature_at(job.config, step, total)
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = loss.item()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    bar.close()
    return step, loss_value
