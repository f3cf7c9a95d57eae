"""A self-contained HTML audit report: one file, inline CSS and SVG, no scripts, no external requests.

Sections: a summary (records, flagged rate, label changes), the anomaly-score distribution against the
threshold(s) (an SVG histogram), the top suspicious words across all flagged records (an SVG bar chart:
the paper's Fig. 5(b), which localizes a trigger across traffic) and one card per flagged decision (the
text as a token heatmap, the trigger candidate, both predictions, the score against the threshold; a
record caught by a known trigger is marked apart from one flagged by its score). With a known-trigger set
(``add_trigger_set``: a ``--triggers`` file or the triggers topic's newest update) or records caught by
one, a "Known triggers" section lists each trigger with its target label, source, the evidence that
promoted it, first / last seen, when it was learned and the records of the report in which it fired;
and the revoked words.

Records are untrusted: every string is HTML-escaped, and a Content-Security-Policy forbids scripts and
remote loads, so even a missed escape could not run code or leak the page. The output depends only on
the records added, in order (no clock), so the same input gives the same bytes.

Usage::

    builder = AuditHtmlBuilder(title="audit")
    for record in records:            # AuditRecord / Verdict (cards) or PredictionRecord (counts only)
        builder.add(record)
    builder.add_trigger_set(update, where="file triggers.json")  # optional: a TriggerUpdate
    Path("report.html").write_text(builder.render(), encoding="utf-8")
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from stream_guard.decision import Decision, label_changed, rank_value, trigger_candidate, valid_span
from stream_guard.known_trigger_html import KNOWN_CSS, known_hits_line, known_triggers_panel
from stream_guard.known_trigger_report import KnownTriggerHits, KnownTriggerSetLike
from stream_guard.trigger_report import TriggerCounter, TriggerReport

MAX_CARDS = 500
MAX_CHARS = 4000
HIST_BINS = 30
TOP_WORDS = 15

_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;background:#f6f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.sub{color:#57606a;font-size:13px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.stat{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px 14px}
.stat b{display:block;font-size:20px}.stat span{font-size:12px;color:#57606a}
.charts{display:flex;gap:16px;flex-wrap:wrap}
.panel{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px}
.card{background:#fff;border:1px solid #d0d7de;border-left:4px solid #cf222e;border-radius:6px;
padding:10px 14px;margin:10px 0}
.head{font-size:13px;color:#57606a;display:flex;gap:14px;flex-wrap:wrap}
.head .id{color:#1f2328;font-weight:bold;overflow-wrap:anywhere}
.text{white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate;line-height:1.7;margin:8px 0;
font-size:14px}
.t{border-radius:3px;padding:1px 0}
.neutral{white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate;color:#57606a;font-size:13px}
.pred{font-size:13px;margin-top:6px}.changed{color:#cf222e;font-weight:bold}
.trig{font-family:"DejaVu Sans Mono",monospace;background:#ffebe9;border-radius:3px;padding:0 4px}
.meter{display:inline-block;width:120px;height:8px;background:#eaeef2;border-radius:4px;
vertical-align:middle;position:relative}
.meter i{position:absolute;left:0;top:0;bottom:0;background:#cf222e;border-radius:4px}
.meter s{position:absolute;top:-3px;bottom:-3px;width:2px;background:#1f2328}
.note{color:#57606a;font-size:13px}
svg text{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:11px;fill:#1f2328}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def esc(value: object) -> str:
    """HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# -- pieces ---------------------------------------------------------------------------------------


def token_heatmap(decision: Decision, max_chars: int = MAX_CHARS) -> str:
    """The text as HTML with each scored token's span shaded by its share of the top score."""
    text = decision.text
    kept = min(len(text), max_chars)
    scored = sorted(
        (t for t in decision.tokens if rank_value(t) is not None and valid_span(t, text)),
        key=lambda t: (t.start, t.end),  # type: ignore[arg-type,return-value]
    )
    top = max((float(rank_value(t) or 0.0) for t in scored), default=0.0)
    out: list[str] = []
    pos = 0
    for token in scored if top > 0 else []:
        start, end = int(token.start), min(int(token.end), kept)  # type: ignore[arg-type]
        share = max(0.0, float(rank_value(token) or 0.0)) / top
        if start < pos or start >= end or share < 0.05:
            continue
        out.append(esc(text[pos:start]))
        out.append(
            f'<span class="t" style="background:rgba(207,34,46,{0.12 + 0.78 * share:.2f})'
            f'{";color:#fff" if share > 0.6 else ""}" title="{esc(token.token)} c={token.score:.3f}">'
            f"{esc(text[start:end])}</span>"
        )
        pos = end
    out.append(esc(text[pos:kept]))
    if kept < len(text):
        out.append(f'<span class="note"> … ({len(text) - kept} more characters not shown)</span>')
    return "".join(out)


def score_meter(score: float, threshold: float | None) -> str:
    """A small bar: the score with the threshold marked, scaled so both fit."""
    if threshold is None or threshold <= 0:
        return ""
    scale = max(score, threshold) * 1.1
    fill = max(0.0, min(1.0, score / scale)) * 100
    mark = threshold / scale * 100
    return f'<span class="meter"><i style="width:{fill:.1f}%"></i><s style="left:{mark:.1f}%"></s></span>'


def _prediction(name: str, probabilities: Sequence[float] | None) -> str:
    return f"{esc(name)} ({max(probabilities):.2f})" if probabilities else esc(name)


def decision_card(decision: Decision, max_chars: int = MAX_CHARS) -> str:
    """One flagged decision as an HTML card."""
    threshold = decision.threshold
    if threshold is None:
        over = " (no threshold)"
    else:  # a record caught by a known trigger is flagged whatever its score
        over = f" {'&gt;' if decision.anomaly_score > threshold else '≤'} {_num(threshold)}"
    version = getattr(decision, "schema_version", None)
    head = [
        f'<span class="id">{esc(decision.id)}</span>',
        f"<span>model {esc(decision.model_id)}</span>",
        f"<span>score {_num(decision.anomaly_score)}{over} {score_meter(decision.anomaly_score, threshold)}"
        "</span>",
    ]
    hits = getattr(decision, "known_triggers", None) or []
    if hits:
        head.insert(1, '<span class="badge known">caught by a known trigger</span>')
    elif decision.flagged:
        head.insert(1, '<span class="badge">flagged by its score</span>')
    if version is not None:
        head.append(f"<span>schema v{esc(version)}</span>")
    if decision.truncated:
        head.append("<span>truncated to the model's limit</span>")
    body = [f'<div class="head">{"".join(head)}</div>']
    if hits:
        body.append(known_hits_line(decision, hits))
    body.append(f'<div class="text">{token_heatmap(decision, max_chars)}</div>')
    candidate = trigger_candidate(decision)
    if candidate is not None:
        body.append(
            f'<div class="pred">trigger candidate <span class="trig">{esc(candidate.word)}</span> '
            f"(c = {candidate.score:.3f})</div>"
        )
    else:
        body.append('<div class="pred note">no token scores in this record</div>')
    changed = label_changed(decision)
    after = _prediction(decision.final_label_name, decision.neutralized_probabilities)
    body.append(
        f'<div class="pred">original {_prediction(decision.label_name, decision.probabilities)} → '
        f'neutralized <span class="{"changed" if changed else ""}">{after}</span>'
        f"{' (label changed)' if changed else ''}</div>"
    )
    if decision.neutralized_text is not None:
        shown = decision.neutralized_text[:max_chars]
        body.append(f'<div class="neutral">neutralized text: {esc(shown)}</div>')
    return f'<div class="card{" known" if hits else ""}">{"".join(body)}</div>'


def _symlog(v: float) -> float:
    return math.copysign(math.log10(1.0 + abs(v)), v)


def _symexp(v: float) -> float:
    return math.copysign(10.0 ** abs(v) - 1.0, v)


def histogram_svg(scores: Sequence[float], thresholds: Sequence[float], bins: int = HIST_BINS) -> str:
    """An SVG histogram of anomaly scores with the threshold(s) drawn as dashed lines.

    When the scores span more than two orders of magnitude around the threshold (a backdoor's scores
    dwarf clean ones), the axis is symmetric-logarithmic, so the clean mass stays readable.
    """
    width, height, left, bottom, top = 520, 220, 40, 28, 14
    scores = [s for s in scores if math.isfinite(s)]
    if not scores:
        return f'<svg width="{width}" height="60"><text x="10" y="30">no scores</text></svg>'
    values = [*scores, *thresholds]
    spread = max(abs(v) for v in values)
    reference = (
        abs(thresholds[0])
        if thresholds and thresholds[0]
        else sorted(abs(v) for v in scores)[len(scores) // 2]
    )
    log = spread > 100 * max(reference, 1e-9) and spread > 10
    fwd = _symlog if log else (lambda v: v)
    inv = _symexp if log else (lambda v: v)
    low, high = fwd(min(values)), fwd(max(values))
    if high <= low:
        high = low + 1.0
    step = (high - low) / bins
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, int((fwd(s) - low) / step))] += 1
    peak = max(counts)
    plot_w, plot_h = width - left - 10, height - top - bottom
    x = lambda v: left + (fwd(v) - low) / (high - low) * plot_w  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    main = thresholds[0] if thresholds else None
    for i, count in enumerate(counts):
        if not count:
            continue
        h = count / peak * plot_h
        flagged = main is not None and inv(low + (i + 0.5) * step) > main
        parts.append(
            f'<rect x="{x(inv(low + i * step)) + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{plot_w / bins - 1:.1f}" height="{h:.1f}" fill="{"#cf222e" if flagged else "#8c959f"}">'
            f"<title>{count}</title></rect>"
        )
    base = top + plot_h
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#57606a"/>')
    for i, tick in enumerate((low, (low + high) / 2, high)):
        anchor = ("start", "middle", "end")[i]
        parts.append(
            f'<text x="{left + (tick - low) / (high - low) * plot_w:.1f}" y="{base + 16}" '
            f'text-anchor="{anchor}">{inv(tick):.3g}</text>'
        )
    if log:
        parts.append(f'<text x="{left + plot_w}" y="{top - 3}" text-anchor="end">log scale</text>')
    parts.append(f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>')
    for t in thresholds:
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{base}" stroke="#1f2328" '
            f'stroke-dasharray="4 3"><title>threshold {t:.3f}</title></line>'
        )
        parts.append(f'<text x="{x(t) + 3:.1f}" y="{top + 22}">τ={t:.3g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def words_svg(report: TriggerReport, limit: int = TOP_WORDS) -> str:
    """A horizontal bar chart of the words that won the anomaly score most often."""
    rows = report.rows[:limit]
    width, bar, label_w = 520, 18, 150
    if not rows:
        return f'<svg width="{width}" height="60"><text x="10" y="30">no flagged records</text></svg>'
    height = len(rows) * (bar + 4) + 8
    peak = max(r.count for r in rows)
    plot_w = width - label_w - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, row in enumerate(rows):
        y = 4 + i * (bar + 4)
        w = max(1.0, row.count / peak * plot_w)
        word = row.word if len(row.word) <= 22 else row.word[:21] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{esc(word)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" '
            f'fill="{"#cf222e" if i == 0 else "#fa7970"}">'
            f"<title>{esc(row.word)}: {row.count} records, mean c {row.mean_score:.3f}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{row.count} ({row.share:.0%})</text>')
    parts.append("</svg>")
    return "".join(parts)


class AuditHtmlBuilder:
    """Collects records one at a time (bounded memory) and renders the report at the end."""

    def __init__(
        self,
        *,
        title: str = "stream-guard audit report",
        max_cards: int = MAX_CARDS,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.title = title
        self.max_cards = max_cards
        self.max_chars = max_chars
        self.scores: list[float] = []
        self.thresholds: Counter[float] = Counter()
        self.models: Counter[str] = Counter()
        self.triggers = TriggerCounter()
        self.known = KnownTriggerHits()
        self.trigger_sets: list[tuple[KnownTriggerSetLike | None, str, str | None]] = []
        self.cards: list[str] = []
        self.n_records = 0
        self.n_flagged = 0
        self.n_changed = 0

    def add(self, record: Any) -> None:
        """Add a decision. Flagged ones with a text (AuditRecord, Verdict) get a card; others count."""
        self.n_records += 1
        self.known.add(record)
        self.scores.append(float(record.anomaly_score))
        self.models[str(record.model_id)] += 1
        if record.threshold is not None:
            self.thresholds[float(record.threshold)] += 1
        if record.final_label != record.label:
            self.n_changed += 1
        if not record.flagged:
            return
        self.n_flagged += 1
        if not hasattr(record, "text"):
            return
        self.triggers.add(record)
        if len(self.cards) < self.max_cards:
            self.cards.append(decision_card(record, self.max_chars))

    def add_trigger_set(
        self, known: KnownTriggerSetLike | None, *, where: str | None = None, model_id: str | None = None
    ) -> None:
        """Show a known-trigger set (e.g. a ``schemas.TriggerUpdate``) read from ``where`` in the Known
        triggers section; None: there was none at ``where`` for ``model_id``."""
        if known is None and model_id is None:
            raise ValueError("name the model whose set was not found")
        self.trigger_sets.append((known, known.model_id if known is not None else str(model_id), where))

    def known_section(self) -> str:
        """The Known triggers section: one panel per set given, and one per model whose records were
        caught by a known trigger without its set given; "" when there is neither."""
        panels = [known_triggers_panel(k, self.known, m, w) for k, m, w in self.trigger_sets]
        shown = {m for _, m, _ in self.trigger_sets}
        panels += [
            known_triggers_panel(None, self.known, m)
            for m in self.known.models()
            if m not in shown and self.known.caught[m]
        ]
        if not panels:
            return ""
        return (
            "<h2>Known triggers</h2>"
            '<div class="note">what the trigger memory holds, the evidence that promoted each trigger, '
            "and the records of this report in which it fired (their known_triggers)</div>" + "".join(panels)
        )

    def render(self) -> str:
        report = self.triggers.report()
        thresholds = [t for t, _ in sorted(self.thresholds.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
        rate = self.n_flagged / self.n_records if self.n_records else 0.0
        top = report.top
        stats = [
            (str(self.n_records), "records"),
            (str(self.n_flagged), "flagged"),
            (f"{rate:.1%}", "flagged rate"),
            (str(self.n_changed), "label changes"),
            (esc(top.word) if top else "–", "top trigger candidate"),
        ]
        known = self.known_section()
        if known:
            stats.insert(2, (str(self.known.n_caught), "caught by a known trigger"))
        models = ", ".join(f"{esc(m)} ({n})" for m, n in sorted(self.models.items()))
        more = len(self.cards) < self.n_flagged
        body = [
            f"<h1>{esc(self.title)}</h1>",
            f'<div class="sub">models: {models or "–"}</div>',
            '<div class="summary">'
            + "".join(f'<div class="stat"><b>{v}</b><span>{k}</span></div>' for v, k in stats)
            + "</div>",
            '<div class="charts">',
            f'<div class="panel"><h2>Anomaly score distribution</h2>{histogram_svg(self.scores, thresholds)}'
            '<div class="note">red bars lie above the threshold τ</div></div>',
            f'<div class="panel"><h2>Top suspicious words</h2>{words_svg(report)}'
            '<div class="note">words holding the anomaly score in flagged records</div></div>',
            "</div>",
            known,
            f"<h2>Flagged decisions ({len(self.cards)}{f' of {self.n_flagged}' if more else ''})</h2>",
            *self.cards,
        ]
        if not self.cards:
            body.append('<div class="note">no flagged decisions</div>')
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{_CSS}{KNOWN_CSS}</style></head>\n<body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


def render_html(records: Sequence[Any], *, title: str = "stream-guard audit report") -> str:
    """The report for `records` in one call."""
    builder = AuditHtmlBuilder(title=title)
    for record in records:
        builder.add(record)
    return builder.render()
