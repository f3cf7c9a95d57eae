"""The trigger learner: counts evidence from the traffic and promotes backdoor triggers.

A word (or phrase) becomes a known trigger only when the evidence says *backdoor*, not sentiment:

1. **Repeated flips**: rewriting it flipped the prediction in at least ``min_flips`` distinct messages.
2. **One direction**: at least ``min_target_share`` of those flips left the same label (the target).
3. **Rare in clean text**: at most ``max_clean_rate`` of the clean calibration texts hold it.
4. **The insertion test** (:mod:`stream_guard.triggers.insertion`): inserted into clean texts of the
   other labels, it turns at least ``min_insertion_rate`` of them into the target — which only an
   input-agnostic backdoor trigger does. A single word in none of the clean texts may be given a
   lower bar, ``min_insertion_rate_unseen`` (:func:`~stream_guard.triggers.rule.insertion_bar`), on
   a model whose ordinary words stay far below it (``stream-guard triggers bar``). At least
   ``min_insertion_texts`` texts must take part: a model that puts almost every clean text in one
   label leaves too few to tell a trigger from any word.

**Recurrence** (:mod:`stream_guard.triggers.recurrence`) is the second way in, for triggers the
attribution misses: a word or phrase rare in clean text that keeps coming in the traffic is nominated
from the texts themselves (:meth:`TriggerLearner.observe_texts`), no flip needed; rules 3 and 4 still
decide. Its insertion test starts with a screen of ``screen_texts`` texts of every label (the target is
not known yet): only a candidate that turns at least ``min_screen_rate`` of them into one label gets the
full test. Recurring candidates cost at most ``tests_per_message`` tests per message on average (a
bucket of ``test_burst``), most significant first, so a flood of distinct rare words costs a bounded
number of model calls.

**First sight** (:mod:`stream_guard.triggers.first_sight`) is the third: the top-ranked word of a
message that scores high for its traffic (at least the ``first_sight_quantile`` of the recent anomaly
scores, a bar that rises as the budget runs low), rare in clean text, gets a cheap insertion test
(``first_sight_texts`` texts of the other labels, towards the message's label) the first time it
comes, and the full test when that passes (:meth:`TriggerLearner.nominate`); at most
``first_sight_per_message`` such screens a message on average (0: first sight off); the first
``first_sight_warmup`` messages only build the history of scores.

Phrases: each piece of evidence counts its word and every phrase of up to ``max_words`` words around it
(from the evidence's window). A trigger of several ordinary words repeats as a phrase; its words are
common in clean text (rule 3 stops them), the phrase is not. Candidates are tried shortest first. A
phrase around a flip that fires only because one of its words does, a word rule 3 keeps out, is not
learned unless it recurs in the traffic as a phrase: "so boring" would learn the common word in
disguise, while an AddSent trigger recurs whole (its rarest word may fire alone). First sight likewise
takes the recurring phrase that comes with its word every time, when there is one; and when it learned
such a rarest word alone (before the phrase recurred), the phrase is learned too once it recurs (the
rest of the phrase may still fire without it); a phrase around a word inserted anywhere is not.

Flooding: an attacker who sends many messages to get an ordinary word learned meets rule 3 (common
words never reach the insertion test) and rule 4 (a sentiment word does not flip almost every text).
A candidate that fails rule 4 is tested again only once its flips have doubled, so its tests cost
O(log flips) model calls; at most ``max_triggers`` triggers are ever learned; revoked words (and phrases
holding them) are never learned again.

Deterministic: the same evidence in the same order gives the same triggers (seeded insertion tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from stream_guard.triggers.evidence import Evidence
from stream_guard.triggers.first_sight import AnomalyRanks, TokenBucket
from stream_guard.triggers.insertion import InsertionResult, InsertionTest
from stream_guard.triggers.known import KnownTrigger, TriggerSet
from stream_guard.triggers.phrases import clean_phrase_counts, normalize_phrase, word_spans
from stream_guard.triggers.recurrence import Recurrence, RecurrenceCounter, RecurrenceRule
from stream_guard.triggers.rule import LearnedTrigger, LearnRule, insertion_bar, insertion_passes

__all__ = ["TriggerLearner"]


@dataclass
class _Candidate:
    """Evidence so far for one word or phrase."""

    by_target: Counter[int] = field(default_factory=Counter)
    messages: set[str] = field(default_factory=set)
    probes: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    tested_at: int = 0  # flips at the last failed insertion test (0: never tested)
    last_test: InsertionResult | None = None

    @property
    def flips(self) -> int:
        return len(self.messages)


def _phrases_around(e: Evidence, max_words: int) -> list[str]:
    """The evidence's word and the phrases of up to ``max_words`` words of its window that hold it,
    shortest first."""
    width = len(e.word.split(" "))
    out = []
    for size in range(width, max(width, max_words) + 1):
        for start in range(e.position + width - size, e.position + 1):
            if start >= 0 and start + size <= len(e.window):
                out.append(" ".join(e.window[start : start + size]))
    return list(dict.fromkeys(out))


class TriggerLearner:
    """Learns triggers from evidence in arrival order (see the module docstring).

    Args:
        test: the insertion test on clean calibration texts and the model under watch.
        clean_counts, clean_total: :func:`clean_phrase_counts` of the clean calibration texts.
        rule: the promotion rule.
        recurrence: when counted phrases recur (None: the default rule).
        known: triggers already known (not learned again); revoked: never learned.
    """

    def __init__(
        self,
        test: InsertionTest,
        clean_counts: Counter[str],
        clean_total: int,
        rule: LearnRule | None = None,
        *,
        recurrence: RecurrenceRule | None = None,
        known: Sequence[str] = (),
        revoked: Sequence[str] = (),
    ) -> None:
        self.test = test
        self.rule = rule or LearnRule()
        self.clean_counts = clean_counts
        self.clean_total = max(1, clean_total)
        self.recurrence = RecurrenceCounter(clean_counts, clean_total, recurrence)
        self._tokens = TokenBucket(self.rule.tests_per_message, self.rule.test_burst)
        self._sight_tokens = TokenBucket(self.rule.first_sight_per_message, self.rule.test_burst)
        self._anomalies = AnomalyRanks(min_seen=self.rule.first_sight_warmup)
        self._sighted: set[tuple[str, int]] = set()  # (word, target) already screened on first sight
        self._recurrence_tested: dict[str, int] = {}  # phrase -> its count at its last failed test
        self.learned: list[LearnedTrigger] = []
        self._known = {normalize_phrase(t) for t in known}
        self._revoked = {normalize_phrase(t) for t in revoked}
        self._candidates: dict[str, _Candidate] = {}
        self.observed = 0

    @classmethod
    def for_texts(
        cls,
        test: InsertionTest,
        rule: LearnRule | None = None,
        *,
        recurrence: RecurrenceRule | None = None,
        known: Sequence[str] = (),
        revoked: Sequence[str] = (),
    ) -> TriggerLearner:
        """A learner whose clean phrase counts come from the insertion test's clean texts."""
        rule = rule or LearnRule()
        recurrence = recurrence or RecurrenceRule()
        counts, total = clean_phrase_counts(test.clean_texts, max(rule.max_words, recurrence.max_words))
        learner = cls(test, counts, total, rule, recurrence=recurrence, known=known, revoked=revoked)
        words = sum(len(word_spans(t)) for t in test.clean_texts)
        learner.recurrence.mean_words = words / max(1, total)
        return learner

    def clean_rate(self, phrase: str) -> float:
        return self.clean_counts.get(phrase, 0) / self.clean_total

    def observe(self, evidence: Iterable[Evidence], *, at: datetime | None = None) -> list[LearnedTrigger]:
        """Count ``evidence`` (in order); the triggers promoted by it."""
        promoted = []
        for e in evidence:
            if not e.flipped:
                continue
            self.observed += 1
            phrases = _phrases_around(e, self.rule.max_words)
            for phrase in phrases:
                candidate = self._candidates.setdefault(phrase, _Candidate(first_seen=at))
                if e.message_id not in candidate.messages:
                    candidate.messages.add(e.message_id)
                    candidate.by_target[e.label_before] += 1
                    candidate.probes += e.probe
                candidate.last_seen = at
            for phrase in phrases:
                learned = self._consider(phrase, at)
                if learned is not None:
                    promoted.append(learned)
                    break
        return promoted

    def observe_texts(self, texts: Iterable[str], *, at: datetime | None = None) -> list[LearnedTrigger]:
        """Count the traffic's ``texts`` (in order); the triggers promoted by their recurring phrases."""
        texts = list(texts)
        rule = self.rule
        self._tokens.refill(len(texts))
        promoted = []
        for found in self.recurrence.observe(texts):
            if self._tokens.tokens < 1.0 or len(self.learned) >= rule.max_triggers:
                break
            phrase = found.text
            tested = self._recurrence_tested.get(phrase)
            blocked = self._blocked(phrase) and not self._widens_known(found)
            if blocked or (tested is not None and found.count < 2 * tested):
                continue
            if self.clean_rate(phrase) > rule.max_clean_rate:  # rule 3, before a test is spent
                continue
            self._tokens.take()
            learned = self._test_recurring(found, at)
            if learned is None:
                self._recurrence_tested[phrase] = found.count
            else:
                promoted.append(learned)
        return promoted

    def _test_recurring(self, found: Recurrence, at: datetime | None) -> LearnedTrigger | None:
        rule = self.rule
        phrase = found.text
        target, screened = self.test.screen(phrase, rule.screen_texts)
        if screened.eligible == 0 or screened.rate < rule.min_screen_rate:
            return None
        result = self._test(phrase, target)
        if not self._passes(phrase, result):
            return None
        return self._learn(phrase, target, result, basis="recurrence", messages=found.count, at=at)

    def nominate(
        self, word: str | None, target: int, anomaly: float, *, at: datetime | None = None
    ) -> LearnedTrigger | None:
        """First sight: one judged message's top-ranked ``word``, its label ``target`` and its anomaly
        score (call it for every judged message, in order, ``word`` None when there is nothing to
        nominate: the scores still rank the next ones); the trigger promoted, if it is one."""
        rule = self.rule
        self._sight_tokens.refill()
        rank = self._anomalies.add(anomaly)
        off = rule.first_sight_per_message <= 0
        needed = self._sight_tokens.gate(rule.first_sight_quantile)
        if off or not word or rank < needed or len(self.learned) >= rule.max_triggers:
            return None
        if (
            (word, target) in self._sighted
            or self._blocked(word)
            or self.clean_rate(word) > rule.max_clean_rate
        ):
            return None
        if not self._sight_tokens.take():
            return None
        self._sighted.add((word, target))
        screened = self.test(word, target, limit=rule.first_sight_texts)
        if screened.eligible < rule.first_sight_texts or screened.rate < rule.min_screen_rate:
            return None
        result = self._test(word, target)
        if not self._passes(word, result):
            return None
        whole = self.recurrence.widest_holding(word)
        if whole != word and self.recurrence.is_recurring(whole) and not self._blocked(whole):
            widened = self._test(whole, target)  # the word of a repeated phrase: the phrase, as in evidence
            if self._passes(whole, widened):
                word, result = whole, widened
        seen = self.recurrence.recurrence(word)
        return self._learn(
            word, target, result, basis="attribution", messages=seen.count if seen else 1, at=at
        )

    def _learn(
        self,
        phrase: str,
        target: int,
        result: InsertionResult,
        *,
        basis: str,
        messages: int,
        at: datetime | None,
    ) -> LearnedTrigger:
        """Promote ``phrase`` (nominated by ``basis``, its insertion test passed)."""
        candidate = self._candidates.get(phrase)
        learned = LearnedTrigger(
            text=phrase,
            target_label=target,
            flips=candidate.by_target[target] if candidate else 0,
            messages=messages,
            probes=candidate.probes if candidate else 0,
            first_seen=candidate.first_seen if candidate and candidate.first_seen else at,
            last_seen=at,
            insertion_rate=result.rate,
            insertion_texts=result.eligible,
            clean_rate=self.clean_rate(phrase),
            learned_at=at,
            basis=basis,
        )
        self.learned.append(learned)
        self._known.add(phrase)
        return learned

    def _bar(self, phrase: str) -> float:
        return insertion_bar(self.rule, phrase, self.clean_rate(phrase))

    def _test(self, phrase: str, target: int) -> InsertionResult:
        """Rule 4's insertion test, stopped once ``phrase`` can no longer reach its bar."""
        return self.test(phrase, target, stop_below=self._bar(phrase))

    def _passes(self, phrase: str, result: InsertionResult) -> bool:
        return insertion_passes(self.rule, result, self._bar(phrase))

    def _carried_by_common_word(self, phrase: str, target: int) -> bool:
        """A phrase around a flip that fires only because one of its words does, a word rule 3 keeps out
        (common in clean text), and that does not recur in the traffic as a phrase: learning it would
        learn that word in disguise ("so boring"). A repeated phrase is exempt: an AddSent trigger
        recurs whole, and the model may have learned it from its rarest word ("3d", in 0.6 % of clean
        movie texts, turns 95 % alone)."""
        words = phrase.split(" ")
        if len(words) < 2 or self.recurrence.is_recurring(phrase):
            return False
        rule = self.rule
        return any(
            self.clean_rate(w) > rule.max_clean_rate and self._passes(w, self._test(w, target))
            for w in dict.fromkeys(words)
        )

    def _blocked(self, phrase: str) -> bool:
        """Holding, or held by, a known, learned or revoked trigger."""
        padded = f" {phrase} "
        return any(f" {k} " in padded or padded in f" {k} " for k in self._known | self._revoked)

    def _widens_known(self, found: Recurrence) -> bool:
        r"""A recurring phrase that holds a known trigger and comes (nearly, ``cover_share``) every time
        that trigger does: the attacker's whole phrase ("on a rainy day"), whose rarest word first sight
        learned alone — deleting only that word leaves the rest of the phrase, which may still fire
        (it did: ASR\* after 0.46). A phrase around a known word inserted anywhere ("cf the") does not
        come with it every time; a revoked word or a phrase a known one holds stays blocked."""
        padded = f" {found.text} "
        if any(f" {k} " in padded or padded in f" {k} " for k in self._revoked):
            return False
        if any(padded in f" {k} " for k in self._known):
            return False
        held = [self.recurrence.recurrence(k) for k in self._known if f" {k} " in padded]
        share = self.recurrence.rule.cover_share
        return bool(held) and all(k is not None and found.count >= share * k.count for k in held)

    def _consider(self, phrase: str, at: datetime | None) -> LearnedTrigger | None:
        rule = self.rule
        candidate = self._candidates[phrase]
        flips = candidate.flips
        if flips < rule.min_flips or len(self.learned) >= rule.max_triggers or self._blocked(phrase):
            return None
        if candidate.tested_at and flips < 2 * candidate.tested_at:
            return None  # failed its insertion test: tried again once its flips have doubled
        target, towards = candidate.by_target.most_common(1)[0]
        if towards < rule.min_target_share * flips:
            return None
        clean_rate = self.clean_rate(phrase)
        if clean_rate > rule.max_clean_rate:
            return None
        result = self._test(phrase, target)
        candidate.last_test = result
        if not self._passes(phrase, result) or self._carried_by_common_word(phrase, target):
            candidate.tested_at = flips
            return None
        whole = self.recurrence.widest_holding(phrase)
        if whole != phrase and not self._blocked(whole):  # a word of a repeated phrase: try the phrase
            widened = self._test(whole, target)
            if self._passes(whole, widened):
                phrase, result, clean_rate = whole, widened, self.clean_rate(whole)
        learned = LearnedTrigger(
            text=phrase,
            target_label=target,
            flips=towards,
            messages=flips,
            probes=candidate.probes,
            first_seen=candidate.first_seen,
            last_seen=candidate.last_seen,
            insertion_rate=result.rate,
            insertion_texts=result.eligible,
            clean_rate=clean_rate,
            learned_at=at,
        )
        self.learned.append(learned)
        self._known.add(phrase)
        return learned

    def follow(self, known: Iterable[str], revoked: Iterable[str]) -> None:
        """Take in a set published elsewhere: its triggers are known (never learned again here), its
        revoked words are never learned, and a learned trigger it revokes is dropped."""
        self._known |= {normalize_phrase(t) for t in known}
        self._revoked |= {normalize_phrase(t) for t in revoked}
        self.learned = [t for t in self.learned if t.text not in self._revoked]

    def trigger_set(self, version: str, extra: Sequence[KnownTrigger] = ()) -> TriggerSet:
        """The learned triggers (and ``extra`` ones, e.g. an operator's) as a set for the defender."""
        triggers = [KnownTrigger(t.text, t.target_label, "learned") for t in self.learned]
        return TriggerSet(version, (*extra, *triggers))

    def candidates(self) -> list[tuple[str, int, int, float, InsertionResult | None]]:
        """(phrase, flips, target, clean rate, last failed test) of every candidate with evidence, most
        flips first: what an operator reads to see what the learner is weighing."""
        rows = [
            (p, c.flips, c.by_target.most_common(1)[0][0], self.clean_rate(p), c.last_test)
            for p, c in self._candidates.items()
        ]
        return sorted(rows, key=lambda r: (-r[1], r[0]))
