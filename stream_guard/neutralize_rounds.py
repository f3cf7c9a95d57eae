"""The neutralize loop over the flagged texts: rounds of pick the top word(s) not yet rewritten
(`selection`), rewrite them (`neutralize`), re-score the rewrites (`model_runner`), while the settings'
`continue_while` rule holds, for at most `max_rounds`.

Every rewritten word is reported with its offsets in the original text. The last round's rewrites are
only classified, unless `rescore_attributions` asks for their attributions too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream_guard.model_runner import ModelRunner
from stream_guard.neutralize import message_rng, neutralize_spans
from stream_guard.scores import Neutralization, TextScores
from stream_guard.selection import select_words, spans_after_edits, unshift_span
from stream_guard.settings import DefenderSettings, RoundRule
from stream_guard.verdict import SuspiciousWord

__all__ = ["FlaggedText", "keep_going", "neutralize_flagged"]


@dataclass(frozen=True)
class FlaggedText:
    """A text the defender flagged: its id (which seeds its rewrites), its validated text, its scores,
    and the threshold value its length got."""

    message_id: str
    text: str
    scores: TextScores
    limit: float | None


def neutralize_flagged(
    flagged: Mapping[int, FlaggedText], runner: ModelRunner, settings: DefenderSettings
) -> dict[int, Neutralization]:
    """Each flagged text's neutralization, under the same keys; all texts of a round share model calls."""
    tokenizer = runner.classifier.tokenizer
    mask_token = tokenizer.mask_token or tokenizer.unk_token or "[UNK]"
    state = {i: Neutralization(text=f.text, scores=f.scores) for i, f in flagged.items()}
    rngs = {i: message_rng(settings.seed, f.message_id, f.text) for i, f in flagged.items()}
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
        encoded = runner.encode(texts)
        final = round_index == settings.max_rounds - 1
        run = runner.score if settings.rescore_attributions or not final else runner.classify
        for i, new_scores in zip(rewritten, run(encoded, settings), strict=True):
            state[i].scores = new_scores
        active = [
            i
            for i in rewritten
            if keep_going(flagged[i].scores, state[i].scores, flagged[i].limit, settings.continue_while)
        ]
        if not active:
            break
    return state


def keep_going(original: TextScores, current: TextScores, limit: float | None, rule: RoundRule) -> bool:
    """Whether a rewritten text gets another round (`DefenderSettings.continue_while`)."""
    if not current.has_candidates:
        return False
    anomalous = current.anomaly > float(limit or 0.0)
    unchanged = current.label == original.label
    if rule == "anomalous":
        return anomalous
    if rule == "unchanged":
        return unchanged
    return anomalous and unchanged
