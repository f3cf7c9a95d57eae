"""The Defender: score -> flag against a threshold -> neutralize -> re-classify -> verdict.

Stateless with respect to its inputs: it holds the model, its settings and the current threshold
(swapped atomically by `set_threshold`, which is how workers hot-reload thresholds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from stream_guard.anomaly import rank_tokens
from stream_guard.attribution import attribute
from stream_guard.batch_plan import plan_batches, resolve_call_cost
from stream_guard.encoding import EncodedText, TokenTables, encode_texts, pad_batch
from stream_guard.loading import LoadedClassifier, load_classifier
from stream_guard.neutralize import message_rng, neutralize_spans
from stream_guard.scores import Neutralization, TextScores
from stream_guard.selection import select_words, spans_after_edits, unshift_span
from stream_guard.settings import DefenderSettings
from stream_guard.textcheck import clean_text
from stream_guard.threshold import Threshold
from stream_guard.verdict import SuspiciousWord, Verdict
from stream_guard.verdict_builder import build_verdict

TokenDetail = Literal["all", "flagged", "none"]
_AUTOCAST = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Defender:
    """X-GRAAD defense around one classifier."""

    def __init__(
        self,
        classifier: LoadedClassifier,
        settings: DefenderSettings | None = None,
        threshold: Threshold | None = None,
    ) -> None:
        self.classifier = classifier
        self.settings = settings or DefenderSettings()
        self.tables = TokenTables.build(classifier.tokenizer)
        if threshold is None and self.settings.threshold is not None:
            threshold = Threshold.static(self.settings.threshold)
        self._threshold = threshold
        self.forward_calls = 0  # scoring passes run so far (one forward + one backward each)

    @classmethod
    def from_settings(cls, settings: DefenderSettings | None = None) -> Defender:
        settings = settings or DefenderSettings()
        classifier = load_classifier(settings.model, device=settings.device, max_length=settings.max_length)
        return cls(classifier, settings)

    @property
    def model_id(self) -> str:
        return self.classifier.model_id

    @property
    def call_cost(self) -> int | None:
        """The per-call cost, in padded tokens, that batching weighs against padding (`batch_plan`)."""
        return resolve_call_cost(self.settings.call_cost_tokens, self.classifier.device)

    @property
    def threshold(self) -> Threshold | None:
        return self._threshold

    def set_threshold(self, threshold: Threshold | None) -> None:
        self._threshold = threshold

    def clean(self, text: object) -> str:
        """Validated text (raises InvalidTextError with a one-line reason)."""
        return clean_text(text, max_chars=self.settings.max_text_chars)

    # -- scoring -------------------------------------------------------------------------------------

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        """X-GRAAD attributions for each text, in input order, batched by length."""
        cleaned = [self.clean(t) for t in texts]
        encoded = encode_texts(self.classifier.tokenizer, cleaned, self.classifier.max_length)
        return self._score_encoded(encoded)

    def _score_encoded(self, encoded: Sequence[EncodedText]) -> list[TextScores]:
        return self._by_length(encoded, self._score_batch)

    def _classify(self, encoded: Sequence[EncodedText]) -> list[TextScores]:
        """Predictions only (one forward pass per batch, no attributions), for final rewrites, whose
        label is all the decision needs."""
        return self._by_length(encoded, self._classify_batch)

    def _by_length(
        self,
        encoded: Sequence[EncodedText],
        run_batch: Callable[[Sequence[EncodedText]], list[TextScores]],
    ) -> list[TextScores]:
        """`run_batch` over the planned batches (`batch_plan`); results in input order."""
        results: list[TextScores | None] = [None] * len(encoded)
        lengths = [len(e) for e in encoded]
        settings = self.settings
        for batch in plan_batches(
            lengths,
            batch_size=settings.batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            call_cost=self.call_cost,
        ):
            for index, scored in zip(batch, run_batch([encoded[i] for i in batch]), strict=True):
                results[index] = scored
        return results  # type: ignore[return-value]

    def _pad(self, encoded: Sequence[EncodedText]) -> tuple[torch.Tensor, torch.Tensor]:
        tokenizer = self.classifier.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return pad_batch(encoded, pad_id, self.classifier.device)

    def _score_batch(self, encoded: Sequence[EncodedText]) -> list[TextScores]:
        input_ids, attention_mask = self._pad(encoded)
        candidates = self.tables.candidates(input_ids, exclude_stopwords=self.settings.exclude_stopwords)
        self.forward_calls += 1
        result = attribute(
            self.classifier.model,
            input_ids,
            attention_mask,
            candidates.to(input_ids.device),
            autocast_dtype=_AUTOCAST[self.settings.autocast],
        )
        probabilities = torch.softmax(result.logits, dim=-1).cpu().numpy()
        attention = result.attention.cpu().numpy()
        gradient = result.gradient.cpu().numpy()
        score = result.score.cpu().numpy()
        cands = result.candidates.cpu().numpy()
        out = []
        for row, enc in enumerate(encoded):
            n = len(enc)
            out.append(
                self.finish_scores(
                    enc,
                    probabilities[row],
                    attention[row, :n],
                    gradient[row, :n],
                    score[row, :n],
                    cands[row, :n],
                )
            )
        return out

    def finish_scores(
        self,
        encoded: EncodedText,
        probabilities: np.ndarray,
        attention: np.ndarray,
        gradient: np.ndarray,
        score: np.ndarray,
        candidates: np.ndarray,
    ) -> TextScores:
        """One text's TextScores: the ranking and S under the settings' aggregation / normalization."""
        settings = self.settings
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

    def _classify_batch(self, encoded: Sequence[EncodedText]) -> list[TextScores]:
        """TextScores with the prediction only: NaN anomaly and attributions, no candidates."""
        input_ids, attention_mask = self._pad(encoded)
        dtype = _AUTOCAST[self.settings.autocast]
        with (
            torch.inference_mode(),
            torch.autocast(input_ids.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            logits = self.classifier.model(input_ids=input_ids, attention_mask=attention_mask).logits
        probabilities = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        out = []
        for row, enc in enumerate(encoded):
            nothing = np.full(len(enc), np.nan)
            out.append(
                TextScores(
                    encoded=enc,
                    probabilities=probabilities[row],
                    attention=nothing,
                    gradient=nothing,
                    score=nothing,
                    candidates=np.zeros(len(enc), dtype=bool),
                    anomaly=float("nan"),
                    ranking=nothing,
                )
            )
        return out

    def rescore(self, scores: TextScores) -> TextScores:
        """The same attributions ranked under this defender's settings (no model call)."""
        return self.finish_scores(
            scores.encoded,
            scores.probabilities,
            scores.attention,
            scores.gradient,
            scores.score,
            scores.candidates,
        )

    # -- judging -------------------------------------------------------------------------------------

    def judge(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        tokens: TokenDetail = "all",
    ) -> list[Verdict]:
        """A verdict per text, in input order. Texts must pass `clean` (InvalidTextError otherwise).

        `tokens` chooses which verdicts carry per-token attributions (all, flagged only, none).
        """
        ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        cleaned = [self.clean(t) for t in texts]
        encoded = encode_texts(self.classifier.tokenizer, cleaned, self.classifier.max_length)
        return self.judge_scores(cleaned, self._score_encoded(encoded), ids, tokens=tokens)

    def judge_scores(
        self,
        texts: Sequence[str],
        scores: Sequence[TextScores],
        ids: Sequence[str],
        *,
        tokens: TokenDetail = "all",
    ) -> list[Verdict]:
        """Verdicts for validated `texts` whose `scores` are already computed (by `score`): flag,
        neutralize, re-score. `judge` is `score` followed by this; the lab calls it on cached scores."""
        cleaned = list(texts)
        encoded = [s.encoded for s in scores]
        threshold = self._threshold  # one consistent threshold for the whole call
        limits = [threshold.for_length(len(e)) if threshold else None for e in encoded]
        flagged = [
            threshold is not None
            and limit is not None
            and s.has_candidates
            and s.anomaly > limit
            and threshold.passes_gate(float(s.probabilities.max()))
            for s, limit in zip(scores, limits, strict=True)
        ]
        neutralized = self._neutralize(
            {i: (ids[i], cleaned[i], scores[i], limits[i]) for i, f in enumerate(flagged) if f}
        )
        if self.settings.confirm:
            # a flag stands only if rewriting the suspicious words moved the prediction
            for i, fixed in list(neutralized.items()):
                if fixed.scores.label == scores[i].label:
                    flagged[i] = False
                    del neutralized[i]
        verdicts = []
        for i, s in enumerate(scores):
            fixed = neutralized.get(i)
            with_tokens = tokens == "all" or (tokens == "flagged" and flagged[i])
            verdicts.append(
                build_verdict(
                    ids[i],
                    cleaned[i],
                    s,
                    model_id=self.model_id,
                    label_names=self.classifier.label_names,
                    limit=limits[i],
                    threshold=threshold,
                    flagged=flagged[i],
                    fixed=fixed,
                    with_tokens=with_tokens,
                )
            )
        return verdicts

    def _neutralize(
        self, todo: dict[int, tuple[str, str, TextScores, float | None]]
    ) -> dict[int, Neutralization]:
        """Rounds of: pick the top word(s) not yet rewritten, rewrite them, re-score the new texts."""
        settings = self.settings
        tokenizer = self.classifier.tokenizer
        mask_token = tokenizer.mask_token or tokenizer.unk_token or "[UNK]"
        state = {i: Neutralization(text=text, scores=s) for i, (_, text, s, _) in todo.items()}
        rngs = {i: message_rng(settings.seed, mid, text) for i, (mid, text, _, _) in todo.items()}
        active = list(state)
        for round_index in range(settings.max_rounds):
            rewritten = []
            for i in active:
                item = state[i]
                picks = select_words(
                    item.scores, item.excluded, settings.words_per_round, span_ratio=settings.span_ratio
                )
                if not picks:
                    continue
                new_text, edits = neutralize_spans(
                    item.text, [p.span for p in picks], settings.strategy, rngs[i], mask_token=mask_token
                )
                for p in picks:
                    start, end = unshift_span(p.span, item.history)
                    item.words.append(
                        SuspiciousWord(item.text[p.start : p.end], start, end, p.score, round_index)
                    )
                item.history.append(edits)
                item.excluded = spans_after_edits(item.excluded, edits)
                item.text = new_text
                rewritten.append(i)
            if not rewritten:
                break
            texts = [state[i].text if state[i].text.strip() else " " for i in rewritten]
            encoded = encode_texts(tokenizer, texts, self.classifier.max_length)
            final = round_index == settings.max_rounds - 1
            rescore = self._score_encoded if settings.rescore_attributions or not final else self._classify
            for i, new_scores in zip(rewritten, rescore(encoded), strict=True):
                state[i].scores = new_scores
            active = [i for i in rewritten if self._keep_going(todo[i][2], state[i].scores, todo[i][3])]
            if not active:
                break
        return state

    def _keep_going(self, original: TextScores, current: TextScores, limit: float | None) -> bool:
        """Whether a rewritten text gets another round (settings.continue_while)."""
        if not current.has_candidates:
            return False
        anomalous = current.anomaly > float(limit or 0.0)
        unchanged = current.label == original.label
        rule = self.settings.continue_while
        if rule == "anomalous":
            return anomalous
        if rule == "unchanged":
            return unchanged
        return anomalous and unchanged
