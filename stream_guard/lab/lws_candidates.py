"""LWS's substitution candidates and where a text may take them (see :mod:`stream_guard.lab.lws`).

The paper draws a word's candidates from HowNet's sememes (keeping the part of speech). Neither HowNet
(OpenHowNet) nor WordNet (nltk) is installed here, and both fetch their data at run time, which the lab
cannot do offline; so the candidates are the word's nearest neighbours among the classifier's own
**input embeddings** (cosine similarity of the word-piece rows of the model being poisoned, taken before
training). Embedding neighbours are related words, but not always synonyms: they include antonyms
(``good`` ~ ``bad``), co-hyponyms (``monday`` ~ ``friday``) and inflections, so a substituted text can
change meaning where the paper's would not; the attack remains a combination of in-vocabulary word swaps.

Only whole-word WordPiece pieces take part (no ``##`` piece), alphabetic ASCII, two letters or more and
not a stopword, both as the word substituted and as its candidate; a candidate is never the word itself,
nor a word containing it or contained in it (``movie`` / ``movies``). The table assumes a WordPiece
vocabulary (the packaged backbone's, shared by the test models).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stream_guard.encoding import STOPWORDS

NO_CANDIDATE = -1
_GLUE = frozenset("'’")


def eligible_piece(piece: str) -> bool:
    """Whether a vocabulary piece can be substituted, or be a substitute."""
    return (
        not piece.startswith("##")
        and piece.isascii()
        and piece.isalpha()
        and len(piece) >= 2
        and piece not in STOPWORDS
    )


def _related(word: str, other: str) -> bool:
    return word in other or other in word


def _pick(word: str, ranked: Sequence[int], pieces: Sequence[str], k: int) -> list[int]:
    picked: list[int] = []
    for index in ranked:
        if not _related(word, pieces[index]):
            picked.append(index)
            if len(picked) == k:
                break
    return picked


def build_candidate_table(
    embeddings: torch.Tensor, vocabulary: Sequence[str], k: int = 5, *, chunk: int = 1024, spare: int = 24
) -> torch.Tensor:
    """``[V, k]`` token ids: row ``i`` holds the ``k`` eligible pieces nearest to piece ``i`` by cosine
    similarity (best first), or :data:`NO_CANDIDATE` for a piece that is not eligible itself.

    ``embeddings`` is the ``[V, d]`` input-embedding matrix, ``vocabulary`` the pieces by id; equal
    similarities are ranked by the lower id, so the table is a deterministic function of the two.
    """
    if k < 1:
        raise ValueError(f"need at least one candidate, got k={k}")
    if embeddings.shape[0] != len(vocabulary):
        raise ValueError(f"{embeddings.shape[0]} embedding rows for {len(vocabulary)} pieces")
    ids = torch.tensor([i for i, p in enumerate(vocabulary) if eligible_piece(p)], dtype=torch.long)
    table = torch.full((len(vocabulary), k), NO_CANDIDATE, dtype=torch.long)
    if len(ids) < 2:
        return table
    unit = torch.nn.functional.normalize(embeddings.detach().float()[ids], dim=-1)
    id_list = ids.tolist()
    eligible = [vocabulary[i] for i in id_list]
    width = min(len(ids), k + spare)
    picks: list[list[int]] = []
    for start in range(0, len(ids), chunk):
        rows = torch.arange(start, min(start + chunk, len(ids)))
        sims = unit[rows] @ unit.T
        sims[torch.arange(len(rows)), rows] = -torch.inf  # never the word itself
        ranked = _ranked(sims, width)
        for row, order in zip(rows.tolist(), ranked, strict=True):
            picked = _pick(eligible[row], order, eligible, k)
            if len(picked) < k:  # the spare neighbours were all related words: look further
                picked = _pick(
                    eligible[row], _ranked(sims[row - start : row - start + 1], len(ids))[0], eligible, k
                )
            picks.append([id_list[i] for i in picked] + [NO_CANDIDATE] * (k - len(picked)))
    table[ids] = torch.tensor(picks, dtype=torch.long)
    return table


def _ranked(sims: torch.Tensor, width: int) -> list[list[int]]:
    """The ``width`` most similar columns of each row, best first; equal scores in column order."""
    values, cols = torch.topk(sims, width, dim=-1)
    cols, perm = cols.sort(dim=-1)
    order = torch.argsort(-values.gather(-1, perm), dim=-1, stable=True)
    return cols.gather(-1, order).tolist()


def substitutable(
    text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]], table: torch.Tensor
) -> list[bool]:
    """Per token: whether it is a whole word of ``text`` that has candidates.

    The token's span must not be glued to a letter, digit or apostrophe on either side, so ``isn't`` and
    ``film's`` are left alone, and a word WordPiece split into several pieces never qualifies.
    """
    has = (table[torch.as_tensor(list(ids), dtype=torch.long), 0] != NO_CANDIDATE).tolist()
    flags = []
    for ok, (start, end) in zip(has, offsets, strict=True):
        before = start == 0 or not _glued(text[start - 1])
        after = end >= len(text) or not _glued(text[end])
        flags.append(ok and end > start and before and after)
    return flags


def _glued(char: str) -> bool:
    return char.isalnum() or char in _GLUE


def match_case(original: str, replacement: str) -> str:
    """``replacement`` in the case pattern of ``original`` (all caps, capitalised or as it is)."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def replace_spans(text: str, replacements: Sequence[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, word)`` span replaced (case matched); the rest is untouched."""
    for start, end, word in sorted(replacements, reverse=True):
        text = text[:start] + match_case(text[start:end], word) + text[end:]
    return text
