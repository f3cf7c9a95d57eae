"""What `stream-guard demo` shows: the live counts, the latest audit records, and the closing summary.

Everything is read from a :class:`~consumers.demo.traffic.Tally` snapshot (counted from the output
topics) plus the worker's own ``consumed`` counter; audit records are rendered straight from the wire
records with :func:`stream_guard.render.render_verdict`, trigger shaded red.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from consumers.demo.traffic import Tally
from schemas import ThresholdUpdate
from stream_guard.render import render_verdict


@dataclass(frozen=True)
class Learned:
    """A trigger the worker learned during the run (when it came in force: the records say, see
    :func:`learned_lines`)."""

    text: str
    target_name: str
    evidence: str  # what nominated it ("recurred in 4 messages", "5 flips from 5 messages")
    insertion_rate: float
    insertion_texts: int
    version: str


@dataclass(frozen=True)
class DemoFacts:
    """Fixed facts of one demo run, for the view and the summary."""

    sent_total: int
    triggered: int
    malformed: int
    trigger: str
    target_name: str
    threshold: str  # thresholds_text() of the published update
    percentile: float
    calibration_n: int
    dataset: str
    threshold_version: str
    model_dir: str
    model_note: str
    broker: str


def thresholds_text(update: ThresholdUpdate) -> str:
    """``7.068``, or per length: ``≤16 tokens 2.59 · ≤32 tokens 5.88 · longer 10.51``."""
    if not update.by_length:
        return f"{update.value:.3f}"
    parts = [f"≤{b.max_tokens} tokens {b.value:.2f}" for b in update.by_length]
    return " · ".join([*parts, f"longer {update.value:.2f}"])


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "     –"


def counts_table(tally: Tally, facts: DemoFacts, sent: int, consumed: int, elapsed: float) -> Table:
    trig, clean = tally.by_kind["triggered"], tally.by_kind["clean"]
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row("sent", f"{sent}/{facts.sent_total}", f"{facts.triggered} with trigger {facts.trigger!r}")
    table.add_row("consumed", str(consumed), f"{elapsed:5.1f} s")
    table.add_row("[green]clean[/green]", str(tally.clean), "predictions topic")
    table.add_row("[red]flagged[/red]", str(tally.flagged), "audit topic (neutralized, re-classified)")
    table.add_row("[yellow]dead letters[/yellow]", str(tally.dead_letters), "malformed input + reason")
    table.add_row("flagged rate", f"{_pct(trig.flagged, trig.seen)}", f"of {trig.seen} triggered messages")
    table.add_row("", f"{_pct(clean.flagged, clean.seen)}", f"of {clean.seen} clean messages")
    table.add_row(
        "attack success",
        f"{_pct(trig.target_before, trig.seen)} → {_pct(trig.target_after, trig.seen).strip()}",
        f"triggered → {facts.target_name!r}: without → with defense",
    )
    return table


def live_view(
    tally: Tally,
    facts: DemoFacts,
    sent: int,
    consumed: int,
    elapsed: float,
    learned: list[Learned] | None = None,
) -> RenderableType:
    """The live panel: counts, what the trigger memory learned, then the latest audit records."""
    parts: list[RenderableType] = [counts_table(tally, facts, sent, consumed, elapsed)]
    for line in learned_lines(tally, facts, learned or []):
        parts.append(Text(line.strip(), style="bold green" if learned else "dim"))
    if tally.audits:
        parts.append(Text("\nlatest audit records", style="bold"))
        for record in tally.audits:
            kind = (record.metadata or {}).get("kind", "?")
            parts.append(Text(f"— {kind} message", style="dim"))
            parts.append(render_verdict(record))
    title = f"stream-guard demo · threshold {facts.threshold}"
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def learned_lines(tally: Tally, facts: DemoFacts, learned: list[Learned]) -> list[str]:
    """What the trigger memory did: each learned trigger, and the attack before and after it."""
    if not learned:
        return ["  learned       no trigger yet"]
    before, after = tally.by_kind["before_learning"], tally.by_kind["after_learning"]
    # the records say when a learned set was in force: the triggered ones judged without one came first
    lines = [
        f"  learned       {t.text!r} -> {t.target_name!r}"
        + (
            f", in force after {before.seen} triggered message{'' if before.seen == 1 else 's'}"
            if k == 0
            else ""
        )
        + f" ({t.evidence}; inserted into clean texts it flipped {t.insertion_rate:.0%} of "
        f"{t.insertion_texts}); every worker follows version {t.version}"
        for k, t in enumerate(learned)
    ]
    lines.append(
        f"  memory        attack success (ASR*: triggered messages whose clean original the model gets "
        f"right) before learning {_pct(before.eligible_target_after, before.eligible).strip()} of "
        f"{before.eligible}, after {_pct(after.eligible_target_after, after.eligible).strip()} of "
        f"{after.eligible}"
    )
    return lines


def summary_lines(
    tally: Tally,
    facts: DemoFacts,
    sent: int,
    consumed: int,
    elapsed: float,
    *,
    finished: bool,
    learned: list[Learned] | None = None,
) -> list[str]:
    """The closing report, one fact per line (plain text, so it reads the same in a log)."""
    trig, clean = tally.by_kind["triggered"], tally.by_kind["clean"]
    accounted = tally.outputs
    status = "done" if finished else "stopped before the end"
    balance = (
        "every message accounted for"
        if finished and accounted == consumed == facts.sent_total
        else f"{sent - accounted} of those without an output yet"
    )
    sent_text = f"{sent}" if sent == facts.sent_total else f"{sent} of {facts.sent_total}"
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(tally.dead_reasons.items())) or "none"
    lines = [
        f"stream-guard demo: {status} in {elapsed:.1f} s",
        f"  messages      {sent_text} sent, {consumed} consumed = {tally.clean} clean + "
        f"{tally.flagged} flagged + {tally.dead_letters} dead letters ({balance})",
        f"  triggered     {trig.seen} with the trigger {facts.trigger!r}: {trig.flagged} flagged "
        f"({_pct(trig.flagged, trig.seen).strip()})",
        f"  attack        success rate (prediction = {facts.target_name!r}) without defense "
        f"{_pct(trig.target_before, trig.seen).strip()}, with stream-guard "
        f"{_pct(trig.target_after, trig.seen).strip()}",
        *learned_lines(tally, facts, learned or []),
        f"  clean         {clean.seen} without trigger: {clean.flagged} flagged "
        f"({_pct(clean.flagged, clean.seen).strip()}); accuracy "
        f"{_pct(clean.correct_before, clean.seen).strip()} without defense, "
        f"{_pct(clean.correct_after, clean.seen).strip()} with",
        f"  malformed     {facts.malformed} in the traffic -> {tally.dead_letters} dead letters ({reasons})",
        f"  threshold     {facts.threshold}: {facts.percentile:g}th percentile of "
        f"{facts.calibration_n:,} clean {facts.dataset} texts (version {facts.threshold_version})",
        f"  model         {facts.model_dir} ({facts.model_note})",
        f"  broker        {facts.broker}",
    ]
    if tally.other:
        lines.append(f"  other         {tally.other} records without the demo's metadata or unreadable")
    return lines
