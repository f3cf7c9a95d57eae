"""The three ways of scoring the same texts that the benchmark compares.

1. `PlainClassifier`: forward only, no attentions, the fastest attention implementation the model has
   (sdpa), under `torch.inference_mode` — the floor any defense is measured against.
2. `batched_scorer`: X-GRAAD as stream-guard runs it — length-bucketed batches within the token budget,
   one forward with attentions and one backward per batch (`Defender.score`).
3. `reference_scorer`: X-GRAAD the way the authors' reference code computes it, one text at a time —
   the peer. Per text: a forward from word embeddings with `output_attentions=True` (eager attention),
   the layer/head mean of the stacked attention maps, `.backward()` of the predicted logit on a model
   whose parameters require gradients (as the reference code's model does: it computes every weight
   gradient, which X-GRAAD never reads), then the per-token scores in Python lists.
   `per_text_scorer` is our own code one text at a time (the same vectorized math and input-only
   backward as the batched mode): its ratio to the batched mode is the gain of batching alone.

Every mode takes raw texts, so tokenization is part of each measurement.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from stream_guard.attribution import attribute
from stream_guard.batch_plan import plan_batches, resolve_call_cost
from stream_guard.defender import Defender
from stream_guard.encoding import TokenTables, encode_texts, pad_batch
from stream_guard.loading import LoadedClassifier
from stream_guard.settings import DefenderSettings

Scorer = Callable[[Sequence[str]], object]
AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def fastest_attention_copy(model: PreTrainedModel) -> tuple[PreTrainedModel, str]:
    """A copy of `model` (same weights) switched to sdpa attention where the architecture has it."""
    fast = copy.deepcopy(model)
    try:
        fast.set_attn_implementation("sdpa")
    except (ValueError, ImportError, AttributeError):
        return fast, str(getattr(fast.config, "_attn_implementation", "eager"))
    return fast, "sdpa"


@dataclass
class PlainClassifier:
    """Forward-only classification of raw texts in the Defender's batches (`batch_plan`): (N,) labels."""

    model: PreTrainedModel
    classifier: LoadedClassifier
    attention: str
    batch_size: int
    max_batch_tokens: int | None
    call_cost: int | None
    autocast: str = "none"

    @classmethod
    def of(
        cls,
        classifier: LoadedClassifier,
        settings: DefenderSettings,
        fast: tuple[PreTrainedModel, str] | None = None,
    ) -> PlainClassifier:
        """Batching as in `settings`; `fast` reuses a `fastest_attention_copy` already made."""
        model, attention = fast or fastest_attention_copy(classifier.model)
        return cls(
            model,
            classifier,
            attention,
            settings.batch_size,
            settings.max_batch_tokens,
            resolve_call_cost(settings.call_cost_tokens, classifier.device),
            settings.autocast,
        )

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        tokenizer = self.classifier.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = tokenizer(list(texts), truncation=True, max_length=self.classifier.max_length)["input_ids"]
        labels = torch.empty(len(ids), dtype=torch.long)
        device = self.classifier.device
        dtype = AUTOCAST_DTYPES[self.autocast]
        for batch in plan_batches(
            [len(i) for i in ids],
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            call_cost=self.call_cost,
        ):
            width = max(len(ids[i]) for i in batch)
            input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                input_ids[row, : len(ids[index])] = ids[index]
                mask[row, : len(ids[index])] = 1
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                logits = self.model(
                    input_ids=torch.from_numpy(input_ids).to(device),
                    attention_mask=torch.from_numpy(mask).to(device),
                ).logits
            labels[batch] = logits.argmax(dim=-1).cpu()
        return labels


def batched_scorer(classifier: LoadedClassifier, settings: DefenderSettings) -> Scorer:
    """X-GRAAD, batched: `Defender.score` with the given batch size and token budget."""
    return Defender(classifier, settings).score


def per_text_scorer(classifier: LoadedClassifier, settings: DefenderSettings) -> Scorer:
    """X-GRAAD the reference code's way: per text, a forward with `output_attentions` and a backward.

    Returns per text the (C,) probabilities and the (n,) attention, gradient and score arrays, as the
    batched mode does; tokenization, candidates and Eqs. 5-8 are the same vectorized code.
    """
    tables = TokenTables.build(classifier.tokenizer)
    tokenizer = classifier.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dtype = AUTOCAST_DTYPES[settings.autocast]

    def score(texts: Sequence[str]) -> list[tuple[np.ndarray, ...]]:
        out = []
        for text in texts:
            (encoded,) = encode_texts(tokenizer, [text], classifier.max_length)
            input_ids, mask = pad_batch([encoded], pad_id, classifier.device)
            candidates = tables.candidates(input_ids, exclude_stopwords=settings.exclude_stopwords)
            result = attribute(
                classifier.model,
                input_ids,
                mask,
                candidates.to(classifier.device),
                autocast_dtype=dtype,
                stream_attention=False,
            )
            out.append(
                (
                    torch.softmax(result.logits, dim=-1)[0].cpu().numpy(),
                    result.attention[0].cpu().numpy(),
                    result.gradient[0].cpu().numpy(),
                    result.score[0].cpu().numpy(),
                    float(result.anomaly[0]),
                )
            )
        return out

    return score


def reference_scorer(classifier: LoadedClassifier, settings: DefenderSettings) -> Scorer:
    """X-GRAAD computed as the authors' reference code does it, one text at a time (module docstring).

    Runs on a copy of the model with trainable parameters (ours are frozen), so the backward costs
    what it costs there. Returns per text the predicted label and the sentence score S.
    """
    tokenizer = classifier.tokenizer
    model = copy.deepcopy(classifier.model)
    for param in model.parameters():
        param.requires_grad_(True)
    tables = TokenTables.build(tokenizer)
    skip = (tables.special | tables.punctuation).numpy()
    word_embeddings = model.get_input_embeddings()
    dtype = AUTOCAST_DTYPES[settings.autocast]

    def score(texts: Sequence[str]) -> list[tuple[int, float]]:
        out = []
        for text in texts:
            ids = tokenizer([text], truncation=True, max_length=classifier.max_length, return_tensors="pt")
            input_ids = ids["input_ids"].to(classifier.device)
            mask = ids["attention_mask"].to(classifier.device)
            embeddings = word_embeddings(input_ids).detach().requires_grad_(True)
            with (
                torch.enable_grad(),
                torch.autocast(
                    input_ids.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
                ),
            ):
                output = model(inputs_embeds=embeddings, attention_mask=mask, output_attentions=True)
                attention = torch.stack(output.attentions).mean(dim=(0, 2))  # (1, L, L)
                label = int(output.logits[0].argmax())
                model.zero_grad()
                output.logits[0, label].backward()
            received = attention[0].sum(dim=0).tolist()
            norms = embeddings.grad[0].norm(dim=-1).tolist()
            kept = [j for j, token_id in enumerate(input_ids[0].tolist()) if not skip[token_id]]
            if not kept:
                out.append((label, 0.0))
                continue
            mean_received = sum(received[j] for j in kept) / len(kept)
            mean_norm = sum(norms[j] for j in kept) / len(kept) or 1.0
            combined = [(received[j] - mean_received) * norms[j] / mean_norm for j in kept]
            out.append((label, max(combined)))
        model.zero_grad(set_to_none=True)
        return out

    return score
