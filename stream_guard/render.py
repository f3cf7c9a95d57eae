"""Terminal rendering of a decision: the verdict, the score against the threshold, shaded tokens, the
trigger candidate and both predictions.

The one terminal renderer: it reads the fields of a :class:`~stream_guard.decision.Decision`, so it
renders a core ``Verdict`` (the ``score`` command) and a wire ``AuditRecord`` (the ``audit`` command,
any schema version) alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.text import Text

from stream_guard.decision import Decision, label_changed, rank_value, trigger_candidate, valid_span

ELLIPSIS = "…"


def _clip(text: str, max_chars: int | None) -> tuple[str, int]:
    """The text cut to `max_chars` (with a marker saying how much was cut) and the kept length."""
    if max_chars is None or len(text) <= max_chars:
        return text, len(text)
    return f"{text[:max_chars]}{ELLIPSIS} (+{len(text) - max_chars} chars)", max_chars


def shaded_text(decision: Decision, max_chars: int | None = None) -> Text:
    """The text with each candidate token's span shaded by its score c_j (red = suspicious)."""
    shown, kept = _clip(decision.text, max_chars)
    text = Text(shown)
    scored = [t for t in decision.tokens if rank_value(t) is not None and valid_span(t, decision.text)]
    top = max((rank_value(t) or 0.0 for t in scored), default=0.0)
    if top <= 0:
        return text
    for token in scored:
        share = max(0.0, rank_value(token) or 0.0) / top
        start, end = token.start or 0, min(token.end or 0, kept)
        if share < 0.05 or start >= end:
            continue
        level = int(80 + 175 * share)
        text.stylize(
            f"bold white on rgb({level},0,0)" if share > 0.5 else f"on rgb({level},40,40)", start, end
        )
    return text


def _prediction(name: str, probabilities: Sequence[float] | None) -> str:
    return f"{name} ({max(probabilities):.2f})" if probabilities else name


def render_verdict(decision: Decision, max_chars: int | None = None) -> Group:
    """A block of lines for one decision; `max_chars` cuts long texts for display."""
    threshold = "none (not calibrated)" if decision.threshold is None else f"{decision.threshold:.3f}"
    status = Text("FLAGGED", style="bold red") if decision.flagged else Text("clean", style="bold green")
    head = Text.assemble(
        (f"[{decision.id}] ", "dim"),
        status,
        f"  label={_prediction(decision.label_name, decision.probabilities)}",
        f"  score={decision.anomaly_score:.3f} vs threshold {threshold}",
    )
    if decision.truncated:
        head.append("  (truncated to model limit)", style="yellow")
    parts = [head, shaded_text(decision, max_chars)]
    if decision.flagged:
        hits = getattr(decision, "known_triggers", None) or []  # Verdict and AuditRecord carry them
        if hits:
            names = ", ".join(dict.fromkeys(repr(h.trigger) for h in hits))
            version = getattr(decision, "trigger_version", None)
            parts.append(Text(f"  known trigger: {names} removed (set {version})", style="bold yellow"))
        candidate = trigger_candidate(decision)
        if candidate is not None:
            parts.append(Text(f"  trigger candidate: {candidate.word!r} (c={candidate.score:.2f})", "yellow"))
        if decision.suspicious_words:
            words = ", ".join(f"{w.word!r} ({w.score:.2f})" for w in decision.suspicious_words)
            parts.append(Text(f"  suspicious: {words}", style="yellow"))
        if decision.neutralized_text is not None:
            shown, _ = _clip(decision.neutralized_text, max_chars)
            parts.append(Text(f"  neutralized: {shown}", style="dim"))
        after = _prediction(decision.final_label_name, decision.neutralized_probabilities)
        parts.append(
            Text(
                f"  prediction: {_prediction(decision.label_name, decision.probabilities)} -> {after}"
                + ("  (changed)" if label_changed(decision) else ""),
                style="bold",
            )
        )
    return Group(*parts)


render_decision = render_verdict
"""Alias that reads better for wire records: ``render_decision(audit_record)``."""
