"""Which words win the anomaly score across traffic: the signal that names a backdoor trigger.

For every flagged decision, the word holding the sentence score ``S = max_j c_j`` (paper Eq. 8; its
sub-word pieces merged into the word, see :func:`stream_guard.decision.word_of`) gets one count. Words
are grouped case-insensitively (``casefold``) unless ``case_sensitive``; each row keeps the most common
spelling. Rows are sorted by count, then mean score, then the word, so the report is deterministic.

A backdoor trigger is inserted into many texts and wins their scores, so it rises to the top even when
each flagged record on its own is ambiguous (the paper's Fig. 5(b)). ``top_k > 1`` counts the `k` best
words of each record instead of only the winner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from stream_guard.decision import Decision, ranked_candidates

MAX_EXAMPLES = 3


@dataclass
class TriggerRow:
    """One word: how many flagged records it won, with its scores and a few example record ids."""

    word: str
    count: int
    share: float  # of the flagged records with evidence
    mean_score: float
    max_score: float
    examples: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "count": self.count,
            "share": self.share,
            "mean_score": self.mean_score,
            "max_score": self.max_score,
            "examples": list(self.examples),
        }


@dataclass
class TriggerReport:
    """The ranking, plus the counts needed to read it."""

    rows: list[TriggerRow]
    n_records: int  # decisions seen
    n_flagged: int  # of which flagged
    n_without_evidence: int  # flagged records with neither token scores nor suspicious words

    @property
    def top(self) -> TriggerRow | None:
        return self.rows[0] if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_records": self.n_records,
            "n_flagged": self.n_flagged,
            "n_without_evidence": self.n_without_evidence,
            "rows": [row.to_dict() for row in self.rows],
        }


@dataclass
class _Tally:
    count: int = 0
    total: float = 0.0
    best: float = float("-inf")
    spellings: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


class TriggerCounter:
    """Incremental :func:`trigger_report` for streams: ``add`` each decision, ``report`` at any time."""

    def __init__(self, *, top_k: int = 1, flagged_only: bool = True, case_sensitive: bool = False) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k
        self.flagged_only = flagged_only
        self.case_sensitive = case_sensitive
        self._tallies: dict[str, _Tally] = {}
        self.n_records = 0
        self.n_flagged = 0
        self.n_without_evidence = 0

    def add(self, decision: Decision) -> None:
        self.n_records += 1
        if decision.flagged:
            self.n_flagged += 1
        elif self.flagged_only:
            return
        candidates = ranked_candidates(decision, self.top_k)
        if not candidates:
            self.n_without_evidence += 1
            return
        for cand in candidates:
            word = " ".join(cand.word.split())  # a word never spans lines in the report
            key = word if self.case_sensitive else word.casefold()
            tally = self._tallies.setdefault(key, _Tally())
            tally.count += 1
            tally.total += cand.score
            tally.best = max(tally.best, cand.score)
            tally.spellings[word] += 1
            if len(tally.examples) < MAX_EXAMPLES:
                tally.examples.append(decision.id)

    def report(self, limit: int | None = None) -> TriggerReport:
        considered = (self.n_flagged if self.flagged_only else self.n_records) - self.n_without_evidence
        rows = [
            TriggerRow(
                word=min(t.spellings.items(), key=lambda kv: (-kv[1], kv[0]))[0],
                count=t.count,
                share=t.count / considered if considered else 0.0,
                mean_score=t.total / t.count,
                max_score=t.best,
                examples=list(t.examples),
            )
            for t in self._tallies.values()
        ]
        rows.sort(key=lambda r: (-r.count, -r.mean_score, r.word))
        return TriggerReport(
            rows=rows[:limit] if limit is not None else rows,
            n_records=self.n_records,
            n_flagged=self.n_flagged,
            n_without_evidence=self.n_without_evidence,
        )


def trigger_report(
    decisions: Iterable[Decision],
    *,
    top_k: int = 1,
    limit: int | None = None,
    flagged_only: bool = True,
    case_sensitive: bool = False,
) -> TriggerReport:
    """Rank the words that win the anomaly score across `decisions` (see the module docstring)."""
    counter = TriggerCounter(top_k=top_k, flagged_only=flagged_only, case_sensitive=case_sensitive)
    for decision in decisions:
        counter.add(decision)
    return counter.report(limit)


def report_table(report: TriggerReport, limit: int = 15) -> Table:
    """The report as a rich table (top `limit` rows)."""
    title = (
        f"Trigger candidates: words winning the anomaly score in {report.n_flagged} flagged "
        f"of {report.n_records} records"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("word", style="bold red")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column("mean c", justify="right")
    table.add_column("max c", justify="right")
    table.add_column("examples", style="dim")
    for rank, row in enumerate(report.rows[:limit], start=1):
        table.add_row(
            str(rank),
            repr(row.word),
            str(row.count),
            f"{row.share:.0%}",
            f"{row.mean_score:.2f}",
            f"{row.max_score:.2f}",
            ", ".join(row.examples),
        )
    if report.n_without_evidence:
        table.caption = f"{report.n_without_evidence} flagged records carried no token scores"
    return table
