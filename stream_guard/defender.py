"""The Defender: score -> flag against a threshold -> neutralize -> re-classify -> confirm -> verdict.

It owns the flagging policy (threshold per length, confidence gate, confirmation) and the order of the
steps; the model calls are `model_runner`'s, the rewriting rounds `neutralize_rounds`', the verdict
`verdict_builder`'s. Stateless with respect to its inputs: it holds the model, its settings and the
current threshold (swapped atomically by `set_threshold`, which is how workers hot-reload thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from stream_guard.encoding import EncodedText, TokenTables
from stream_guard.loading import LoadedClassifier, load_classifier
from stream_guard.model_runner import ModelRunner, finish_scores
from stream_guard.neutralize_rounds import FlaggedText, neutralize_flagged
from stream_guard.scores import TextScores
from stream_guard.settings import DefenderSettings
from stream_guard.textcheck import clean_text
from stream_guard.threshold import Threshold
from stream_guard.trigger_memory import flip_evidence, neutralize_known, probe_evidence, probe_selected
from stream_guard.triggers.evidence import Evidence
from stream_guard.triggers.known import TriggerSet
from stream_guard.verdict import Verdict
from stream_guard.verdict_builder import build_verdict

TokenDetail = Literal["all", "flagged", "none"]


class Defender:
    """X-GRAAD defense around one classifier."""

    def __init__(
        self,
        classifier: LoadedClassifier,
        settings: DefenderSettings | None = None,
        threshold: Threshold | None = None,
    ) -> None:
        self.runner = ModelRunner(classifier)
        self.settings = settings or DefenderSettings()
        if threshold is None and self.settings.threshold is not None:
            threshold = Threshold.static(self.settings.threshold)
        self._threshold = threshold
        self._triggers: TriggerSet | None = None

    @classmethod
    def from_settings(cls, settings: DefenderSettings | None = None) -> Defender:
        settings = settings or DefenderSettings()
        classifier = load_classifier(settings.model, device=settings.device, max_length=settings.max_length)
        return cls(classifier, settings)

    @property
    def classifier(self) -> LoadedClassifier:
        return self.runner.classifier

    @property
    def tables(self) -> TokenTables:
        return self.runner.tables

    @property
    def forward_calls(self) -> int:
        """X-GRAAD passes run so far (one forward + one backward each)."""
        return self.runner.forward_calls

    @property
    def model_id(self) -> str:
        return self.classifier.model_id

    @property
    def call_cost(self) -> int | None:
        """The per-call cost, in padded tokens, that batching weighs against padding (`batch_plan`)."""
        return self.runner.call_cost(self.settings)

    @property
    def threshold(self) -> Threshold | None:
        return self._threshold

    def set_threshold(self, threshold: Threshold | None) -> None:
        self._threshold = threshold

    @property
    def triggers(self) -> TriggerSet | None:
        """The known triggers removed from every text (None: none)."""
        return self._triggers

    def set_triggers(self, triggers: TriggerSet | None) -> None:
        """Swap the known-trigger set (atomic, like `set_threshold`: each judge call reads it once)."""
        self._triggers = triggers

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, C) class probabilities of validated texts: plain forwards, no attributions."""
        if not texts:
            return np.zeros((0, len(self.classifier.label_names)))
        results = self.runner.classify(self.encode(list(texts)), self.settings)
        return np.stack([r.probabilities for r in results])

    def clean(self, text: object) -> str:
        """Validated text (raises InvalidTextError with a one-line reason)."""
        return clean_text(text, max_chars=self.settings.max_text_chars)

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Tokenize texts that passed `clean`, exactly as `judge` does (truncated at the model's
        max_length): a caller that needs the token counts anyway hands the result to
        `judge(..., encoded=...)`, and nothing is tokenized twice."""
        return self.runner.encode(texts)

    # -- scoring -------------------------------------------------------------------------------------

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        """X-GRAAD attributions for each text, in input order, batched by length."""
        cleaned = [self.clean(t) for t in texts]
        return self.runner.score(self.encode(cleaned), self.settings)

    def rescore(self, scores: TextScores) -> TextScores:
        """The same attributions ranked under this defender's settings (no model call)."""
        return finish_scores(
            scores.encoded,
            scores.probabilities,
            scores.attention,
            scores.gradient,
            scores.score,
            scores.candidates,
            self.settings,
        )

    # -- judging -------------------------------------------------------------------------------------

    def judge(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        tokens: TokenDetail = "all",
        cleaned: bool = False,
        encoded: Sequence[EncodedText] | None = None,
    ) -> list[Verdict]:
        """A verdict per text, in input order. Texts must pass `clean` (InvalidTextError otherwise).

        `tokens` chooses which verdicts carry per-token attributions (all, flagged only, none).
        A caller that has done part of the work says so, and it is not done again: `cleaned=True`
        means `texts` are already `clean`'s output; `encoded` (from `encode` on those cleaned texts,
        one per text, in order) means they are tokenized too, and implies `cleaned`. The verdicts are
        the same either way; a text that was not in fact cleaned is then not validated.
        """
        ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if encoded is not None and len(encoded) != len(texts):
            raise ValueError(f"{len(encoded)} encoded texts for {len(texts)} texts")
        done = cleaned or encoded is not None
        valid = list(texts) if done else [self.clean(t) for t in texts]
        scores = self.runner.score(encoded if encoded is not None else self.encode(valid), self.settings)
        return self.judge_scores(valid, scores, ids, tokens=tokens)

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
        settings = self.settings
        encoded = [s.encoded for s in scores]
        threshold = self._threshold  # one consistent threshold (and trigger set) for the whole call
        triggers = self._triggers
        hits = [triggers.find(text) for text in cleaned] if triggers else [[] for _ in cleaned]
        limits = [threshold.for_length(len(e)) if threshold else None for e in encoded]
        flagged = [
            threshold is not None
            and limit is not None
            and not found
            and s.has_candidates
            and s.anomaly > limit
            and threshold.passes_gate(float(s.probabilities.max()))
            for s, limit, found in zip(scores, limits, hits, strict=True)
        ]
        probed = [
            not f
            and not found
            and s.has_candidates
            and probe_selected(settings.probe_rate, settings.seed, mid, text)
            for f, found, s, mid, text in zip(flagged, hits, scores, ids, cleaned, strict=True)
        ]
        neutralized = neutralize_flagged(
            {i: FlaggedText(ids[i], cleaned[i], scores[i], limits[i]) for i, f in enumerate(flagged) if f},
            self.runner,
            settings,
        )
        known = neutralize_known(
            {i: (ids[i], cleaned[i], scores[i], found) for i, found in enumerate(hits) if found},
            self.runner,
            settings,
        )
        evidence: dict[int, list[Evidence]] = {}
        for i, fixed in list(neutralized.items()):
            evidence[i] = flip_evidence(ids[i], cleaned[i], scores[i], fixed, probe=False)
            if fixed.scores.label == scores[i].label:
                # the flag's own rewrite moved nothing: with probing on, look at its other top words
                probed[i] = settings.probe_rate > 0
                if settings.confirm:  # a flag stands only if the rewrite moved the prediction
                    flagged[i] = False
                    del neutralized[i]
        if any(probed):
            probes = probe_evidence(
                {i: (ids[i], cleaned[i], scores[i]) for i, p in enumerate(probed) if p}, self.runner, settings
            )
            for i, more in probes.items():
                evidence[i] = evidence.get(i, []) + [
                    e for e in more if e.word not in {x.word for x in evidence.get(i, [])}
                ]
        neutralized.update(known)
        version = triggers.version if triggers else None
        verdicts = []
        for i, s in enumerate(scores):
            fixed = neutralized.get(i)
            is_flagged = flagged[i] or bool(hits[i])
            with_tokens = tokens == "all" or (tokens == "flagged" and is_flagged)
            verdicts.append(
                build_verdict(
                    ids[i],
                    cleaned[i],
                    s,
                    model_id=self.model_id,
                    label_names=self.classifier.label_names,
                    limit=limits[i],
                    threshold=threshold,
                    flagged=is_flagged,
                    fixed=fixed,
                    with_tokens=with_tokens,
                    known_triggers=hits[i],
                    trigger_version=version,
                    evidence=evidence.get(i, []),
                )
            )
        return verdicts
