"""Tokenize texts once, keep what maps tokens back to words, and pad batches (`stream_guard.batch_plan`
chooses them).

The vocabulary-level tables (`TokenTables`) are built once per tokenizer, so deciding which tokens are
candidates is a tensor lookup, not a per-token Python loop.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

SUBWORD_MARKS = ("##", "▁", "Ġ")

# A small English stopword list (function words); used only when `exclude_stopwords` is on.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "don",
        "should",
        "now",
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "you",
        "your",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "would",
        "could",
    ]
)


def _is_punctuation(piece: str) -> bool:
    return bool(piece) and all(unicodedata.category(ch)[0] in "PS" for ch in piece)


@dataclass(frozen=True)
class TokenTables:
    """Per-vocabulary boolean tables, indexed by token id."""

    special: torch.Tensor
    punctuation: torch.Tensor
    stopword: torch.Tensor

    @classmethod
    def build(cls, tokenizer: PreTrainedTokenizerFast) -> TokenTables:
        size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
        special = np.zeros(size, dtype=bool)
        punctuation = np.zeros(size, dtype=bool)
        stopword = np.zeros(size, dtype=bool)
        keep = {tokenizer.unk_token_id}  # an unknown word is still a word of the text
        for token_id in tokenizer.all_special_ids:
            if token_id not in keep:
                special[token_id] = True
        for piece, token_id in tokenizer.get_vocab().items():
            bare = piece
            for mark in SUBWORD_MARKS:
                bare = bare.removeprefix(mark)
            punctuation[token_id] = _is_punctuation(bare)
            stopword[token_id] = not piece.startswith("##") and bare.lower() in STOPWORDS
        return cls(torch.from_numpy(special), torch.from_numpy(punctuation), torch.from_numpy(stopword))

    def candidates(self, input_ids: torch.Tensor, *, exclude_stopwords: bool = False) -> torch.Tensor:
        """(B, L) bool: tokens that are words of the text (not special, not pure punctuation)."""
        ids = input_ids.cpu().clamp(max=self.special.numel() - 1)
        mask = ~(self.special[ids] | self.punctuation[ids])
        if exclude_stopwords:
            mask &= ~self.stopword[ids]
        return mask


@dataclass(frozen=True)
class EncodedText:
    """One tokenized text. offsets: (n, 2) char spans, (0, 0) for special tokens; word_ids per token."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    tokens: list[str]
    truncated: bool

    def __len__(self) -> int:
        return len(self.ids)


def encode_texts(
    tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], max_length: int
) -> list[EncodedText]:
    """Tokenize with special tokens and truncation; a truncated text says so."""
    batch = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        add_special_tokens=True,
    )
    # the tokenizer's own lists (fresh per access), kept as they are: no per-token Python work
    return [
        EncodedText(
            ids=enc.ids,
            offsets=enc.offsets,
            word_ids=enc.word_ids,
            tokens=enc.tokens,
            truncated=bool(enc.overflowing),
        )
        for enc in batch.encodings
    ]


def pad_batch(
    encoded: Sequence[EncodedText], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest text: (input_ids (B, L), attention_mask (B, L))."""
    width = max(len(e) for e in encoded)
    ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encoded), width), dtype=np.int64)
    for row, enc in enumerate(encoded):
        ids[row, : len(enc)] = enc.ids
        mask[row, : len(enc)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
