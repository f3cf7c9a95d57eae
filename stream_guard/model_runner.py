"""Run the classifier on encoded texts: X-GRAAD scoring or a plain prediction, one `TextScores` per text.

The only place the defense calls the model. Texts are grouped into model calls by `batch_plan`, padded
(`encoding.pad_batch`), run under the settings' autocast, and their logits turned into probabilities,
each step written once for both kinds of call; the results come back trimmed to each text's tokens, in
input order. What to do with the scores (flag, neutralize, decide) is `stream_guard.defender`'s job.

The settings are passed per call, not held: a Defender's settings may be replaced between calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from stream_guard.anomaly import rank_tokens
from stream_guard.attribution import Attribution, attribute, classify
from stream_guard.batch_plan import plan_batches, resolve_call_cost
from stream_guard.encoding import EncodedText, TokenTables, encode_texts, pad_batch
from stream_guard.loading import LoadedClassifier
from stream_guard.scores import TextScores
from stream_guard.settings import DefenderSettings

__all__ = ["AUTOCAST", "ModelRunner", "finish_scores"]

AUTOCAST: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""`DefenderSettings.autocast` -> the dtype the model runs in (None: float32, no autocast)."""


class ModelRunner:
    """One classifier, its tokenizer's candidate tables, and a count of the X-GRAAD passes run."""

    def __init__(self, classifier: LoadedClassifier) -> None:
        self.classifier = classifier
        self.tables = TokenTables.build(classifier.tokenizer)
        self.forward_calls = 0  # scoring passes run so far (one forward + one backward each)

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Tokenize validated texts (special tokens, truncation at the classifier's max_length)."""
        return encode_texts(self.classifier.tokenizer, texts, self.classifier.max_length)

    def call_cost(self, settings: DefenderSettings) -> int | None:
        """The per-call cost, in padded tokens, that batching weighs against padding (`batch_plan`)."""
        return resolve_call_cost(settings.call_cost_tokens, self.classifier.device)

    def score(self, encoded: Sequence[EncodedText], settings: DefenderSettings) -> list[TextScores]:
        """X-GRAAD attributions of each text (one forward + one backward per batch), ranked under
        `settings` (`finish_scores`)."""
        return self._run(encoded, settings, attributions=True)

    def classify(self, encoded: Sequence[EncodedText], settings: DefenderSettings) -> list[TextScores]:
        """Predictions only (one forward per batch, `TextScores.prediction_only`): for rewrites whose
        label is all the decision needs."""
        return self._run(encoded, settings, attributions=False)

    def _run(
        self, encoded: Sequence[EncodedText], settings: DefenderSettings, *, attributions: bool
    ) -> list[TextScores]:
        """One model call per planned batch (`batch_plan`); results in input order."""
        results: list[TextScores | None] = [None] * len(encoded)
        for batch in plan_batches(
            [len(e) for e in encoded],
            batch_size=settings.batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            call_cost=self.call_cost(settings),
        ):
            texts = [encoded[i] for i in batch]
            for index, scored in zip(batch, self._run_batch(texts, settings, attributions), strict=True):
                results[index] = scored
        return results  # type: ignore[return-value]

    def _run_batch(
        self, encoded: Sequence[EncodedText], settings: DefenderSettings, attributions: bool
    ) -> list[TextScores]:
        """One model call on B texts, padded to the longest (L tokens)."""
        input_ids, attention_mask = self._pad(encoded)  # (B, L), (B, L)
        dtype = AUTOCAST[settings.autocast]
        result: Attribution | None = None
        if attributions:
            candidates = self.tables.candidates(input_ids, exclude_stopwords=settings.exclude_stopwords)
            self.forward_calls += 1
            model = self.classifier.model
            result = attribute(
                model, input_ids, attention_mask, candidates.to(input_ids.device), autocast_dtype=dtype
            )
            logits = result.logits  # (B, C) float32
        else:
            logits = classify(self.classifier.model, input_ids, attention_mask, autocast_dtype=dtype)
        probabilities = torch.softmax(logits, dim=-1).cpu().numpy()  # (B, C)
        if result is None:
            return [TextScores.prediction_only(enc, probabilities[row]) for row, enc in enumerate(encoded)]
        return _unpad(encoded, probabilities, result, settings)

    def _pad(self, encoded: Sequence[EncodedText]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids (B, L), attention_mask (B, L)) on the model's device, right-padded."""
        tokenizer = self.classifier.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return pad_batch(encoded, pad_id, self.classifier.device)


def _unpad(
    encoded: Sequence[EncodedText],
    probabilities: np.ndarray,
    result: Attribution,
    settings: DefenderSettings,
) -> list[TextScores]:
    """Each row of a batch's attributions trimmed to its text's n tokens and ranked.

    probabilities: (B, C); result: the batch's (B, L) attributions, L >= every n.
    """
    attention = result.attention.cpu().numpy()  # (B, L)
    gradient = result.gradient.cpu().numpy()  # (B, L)
    score = result.score.cpu().numpy()  # (B, L)
    candidates = result.candidates.cpu().numpy()  # (B, L) bool
    out = []
    for row, enc in enumerate(encoded):
        n = len(enc)
        out.append(
            finish_scores(
                enc,
                probabilities[row],
                attention[row, :n],
                gradient[row, :n],
                score[row, :n],
                candidates[row, :n],
                settings,
            )
        )
    return out


def finish_scores(
    encoded: EncodedText,
    probabilities: np.ndarray,
    attention: np.ndarray,
    gradient: np.ndarray,
    score: np.ndarray,
    candidates: np.ndarray,
    settings: DefenderSettings,
) -> TextScores:
    """One text's TextScores: the ranking and S under the settings' aggregation / normalization.

    probabilities: (C,); attention, gradient, score: (n,) float; candidates: (n,) bool.
    """
    ranking, anomaly = rank_tokens(
        score,
        candidates,
        encoded.word_ids,
        aggregation=settings.word_aggregation,
        normalization=settings.score_normalization,
    )
    return TextScores(
        encoded=encoded,
        probabilities=probabilities,
        attention=attention,
        gradient=gradient,
        score=score,
        candidates=candidates,
        anomaly=anomaly,
        ranking=ranking,
    )
