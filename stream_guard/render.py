"""Terminal rendering of a verdict: the decision, the score against the threshold, shaded tokens."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from stream_guard.verdict import Verdict


def shaded_text(verdict: Verdict) -> Text:
    """The text with each candidate token's span shaded by its score c_j (red = suspicious)."""
    text = Text(verdict.text)
    scored = [t for t in verdict.tokens if t.score is not None and t.start is not None]
    top = max((t.score for t in scored if t.score and t.score > 0), default=0.0)
    if top <= 0:
        return text
    for token in scored:
        share = max(0.0, token.score or 0.0) / top
        if share < 0.05:
            continue
        level = int(80 + 175 * share)
        text.stylize(
            f"bold white on rgb({level},0,0)" if share > 0.5 else f"on rgb({level},40,40)",
            token.start,
            token.end,
        )
    return text


def render_verdict(verdict: Verdict) -> Group:
    threshold = "none (not calibrated)" if verdict.threshold is None else f"{verdict.threshold:.3f}"
    status = Text("FLAGGED", style="bold red") if verdict.flagged else Text("clean", style="bold green")
    head = Text.assemble(
        (f"[{verdict.id}] ", "dim"),
        status,
        f"  label={verdict.label_name} ({max(verdict.probabilities):.2f})",
        f"  score={verdict.anomaly_score:.3f} vs threshold {threshold}",
    )
    if verdict.truncated:
        head.append("  (truncated to model limit)", style="yellow")
    parts = [head, shaded_text(verdict)]
    if verdict.flagged and verdict.neutralized_text is not None:
        words = ", ".join(f"{w.word!r} ({w.score:.2f})" for w in verdict.suspicious_words) or "none"
        parts.append(Text(f"  suspicious: {words}", style="yellow"))
        parts.append(Text(f"  neutralized: {verdict.neutralized_text}", style="dim"))
        parts.append(
            Text(
                f"  final label: {verdict.final_label_name}"
                + ("  (changed)" if verdict.label_changed else ""),
                style="bold",
            )
        )
    return Group(*parts)
