"""The audit report's known-trigger pieces, as HTML: the line on a card caught by a known trigger, and
one model's panel of the Known triggers section (see :mod:`stream_guard.audit_html`).

Every string from a record or a trigger set is HTML-escaped here too: both come off the wire.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stream_guard.decision import Decision
from stream_guard.known_trigger_report import KnownTriggerHits, KnownTriggerLike, KnownTriggerSetLike

__all__ = ["KNOWN_CSS", "known_hits_line", "known_triggers_panel"]

KNOWN_CSS = """
.card.known{border-left-color:#8250df}
.known-panel{margin:10px 0}
.badge{border-radius:10px;padding:0 8px;color:#fff;background:#cf222e;white-space:nowrap}
.badge.known{background:#8250df}
.ktrig{font-family:"DejaVu Sans Mono",monospace;background:#fbefff;border-radius:3px;padding:0 4px}
table.known{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
table.known th,table.known td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
table.known th{background:#f6f8fa}table.known td.n{text-align:right;white-space:nowrap}
table.known td.trigger{overflow-wrap:anywhere}
"""


def esc(value: object) -> str:
    """HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def known_hits_line(decision: Decision, hits: Sequence[Any]) -> str:
    """The known triggers a record was caught by, the set's version, and whether its score alone would
    have flagged it."""
    names = list(dict.fromkeys(str(hit.trigger) for hit in hits))
    version = getattr(decision, "trigger_version", None)
    threshold = decision.threshold
    above = threshold is not None and decision.anomaly_score > threshold
    return (
        '<div class="pred">known trigger '
        + ", ".join(f'<span class="ktrig">{esc(name)}</span>' for name in names)
        + f" removed ({len(hits)} occurrence{'s' if len(hits) != 1 else ''}), set version "
        + (esc(version) if version else "unknown")
        + "; flagged whatever its score"
        + (" (the score is above τ too)" if above else "")
        + "</div>"
    )


def _when(value: datetime | None) -> str:
    return "–" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _or_dash(value: object) -> str:
    return "–" if value is None else esc(value)


def _evidence_cells(trigger: KnownTriggerLike | None) -> list[str]:
    """flips / messages, probes, insertion test, clean rate, first seen, last seen, learned at."""
    if trigger is None:
        return ["–"] * 7
    flips = (
        "–"
        if trigger.flips is None
        else f"{trigger.flips} / {trigger.messages if trigger.messages is not None else '–'}"
    )
    rate = trigger.insertion_rate
    insertion = (
        "–"
        if rate is None
        else f"{rate:.0%} of {trigger.insertion_texts if trigger.insertion_texts is not None else '?'} texts"
    )
    clean = "–" if trigger.clean_rate is None else f"{trigger.clean_rate:.2%}"
    return [
        flips,
        _or_dash(trigger.probes),
        insertion,
        clean,
        _when(trigger.first_seen),
        _when(trigger.last_seen),
        _when(trigger.learned_at),
    ]


_KNOWN_HEAD = (
    "trigger",
    "target label",
    "source",
    "caught (records)",
    "flips / messages",
    "probes",
    "insertion test",
    "clean rate",
    "first seen",
    "last seen",
    "learned at",
)

_NUMERIC = {2, 3, 4, 5, 6}  # the cells after the trigger's that hold counts and rates


def known_triggers_panel(
    known: KnownTriggerSetLike | None, hits: KnownTriggerHits, model_id: str, where: str | None = None
) -> str:
    """One model's known triggers: a row per trigger of the set (its evidence, and the records of the
    report in which it fired), a row per trigger that fired in the records but is not in the set, and
    the revoked words. ``known`` None: the set was not found at ``where`` (or, no ``where``, not given)."""
    total, caught = hits.records[model_id], hits.caught[model_id]
    head = [f"model {esc(model_id)}"]
    if known is not None:
        head.append(f"version {esc(known.version)}, created {_when(known.created_at)} UTC")
    if where:
        head.append(f"from {esc(where)}")
    versions = ", ".join(f"{esc(v)} ({n})" for v, n in hits.versions(model_id))
    parts = [
        f'<div class="sub">{" · ".join(head)}</div>',
        f'<div class="pred"><b>{caught}</b> of {total} records of this model caught by a known trigger'
        + (f" (set versions: {versions})" if versions else "")
        + "</div>",
    ]
    if known is None:
        parts.append(
            f'<div class="note">no known-trigger set for this model at {esc(where)}</div>'
            if where
            else '<div class="note">the set itself (the evidence, the revoked words) was not given</div>'
        )
    rows: list[tuple[str, KnownTriggerLike | None]] = [(t.text, t) for t in known.triggers] if known else []
    listed = {text for text, _ in rows}
    rows += [(text, None) for text, _ in hits.fired(model_id) if text not in listed]
    if rows:
        table = ['<table class="known"><tr>', *(f"<th>{h}</th>" for h in _KNOWN_HEAD), "</tr>"]
        for text, trigger in rows:
            if trigger is None:
                target, source = "–", "not in this set" if known is not None else "–"
            else:
                name = hits.label_name(model_id, trigger.target_label)
                target = _or_dash(trigger.target_label) + (f" ({esc(name)})" if name else "")
                source = esc(trigger.source)
            cells = [target, source, str(hits.count(model_id, text)), *_evidence_cells(trigger)]
            table.append(
                f'<tr><td class="trigger"><span class="ktrig">{esc(text)}</span></td>'
                + "".join(
                    f'<td class="n">{c}</td>' if i in _NUMERIC else f"<td>{c}</td>"
                    for i, c in enumerate(cells)
                )
                + "</tr>"
            )
        table.append("</table>")
        parts.append("".join(table))
    elif known is not None:
        parts.append('<div class="note">no known triggers in this version</div>')
    if known is not None:
        revoked = ", ".join(f'<span class="ktrig">{esc(w)}</span>' for w in known.revoked)
        parts.append(
            f'<div class="pred">revoked (not removed, never learned again): {revoked or "none"}</div>'
        )
        if not total:
            parts.append('<div class="note">no records of this model in this report</div>')
    return f'<div class="panel known-panel">{"".join(parts)}</div>'


# -- the report -----------------------------------------------------------------------------------
