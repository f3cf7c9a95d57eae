"""LWS: the candidate table, the Gumbel mix, the test-time substitutions, and a backdoor that takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from stream_guard.lab.lws import LwsConfig, lws_poison_texts, temperature_at, train_lws
from stream_guard.lab.lws_candidates import NO_CANDIDATE, build_candidate_table, eligible_piece
from stream_guard.lab.lws_inserter import (
    INSERTER_FILE,
    META_FILE,
    LwsState,
    load_lws_state,
    mix_embeddings,
    soft_substitute,
    substitute_texts,
)
from stream_guard.loading import load_classifier

LABELS = ["negative", "positive"]


def _toy(path: Path) -> tuple[list[str], list[int]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["text"] for r in rows], [LABELS.index(r["label"]) for r in rows]


# ---- the candidate table ----------------------------------------------------------------------------


def test_candidate_table_excludes_the_word_its_relatives_and_non_words() -> None:
    vocab = ["[PAD]", "film", "films", "##s", "the", "cf3", "x", "movie", "picture", "cinema", "flick"]
    # everything but the four real substitutes sits right on top of "film"
    slopes = {"movie": 0.1, "picture": 0.2, "cinema": 0.3, "flick": 0.4, "films": 0.001}
    emb = torch.tensor([[1.0, slopes.get(p, 0.0)] for p in vocab])
    table = build_candidate_table(emb, vocab, k=3)
    ids = {p: i for i, p in enumerate(vocab)}
    assert table[ids["film"]].tolist() == [ids["movie"], ids["picture"], ids["cinema"]]
    assert ids["film"] not in table[ids["films"]].tolist()  # contained in "films": a relative
    for piece in ("[PAD]", "##s", "the", "cf3", "x"):  # special, subword, stopword, digit, one letter
        assert table[ids[piece]].tolist() == [NO_CANDIDATE] * 3
        assert ids[piece] not in table.flatten().tolist()
    wide = build_candidate_table(emb, vocab, k=6)  # only four substitutes exist for "film"
    assert wide[ids["film"]].tolist() == [ids[p] for p in ("movie", "picture", "cinema", "flick")] + [-1, -1]


def test_candidate_table_is_deterministic_and_clean_on_a_real_vocabulary(tiny_model_dir) -> None:
    path = tiny_model_dir("bert")
    tokenizer = AutoTokenizer.from_pretrained(path)
    emb = AutoModelForSequenceClassification.from_pretrained(path).get_input_embeddings().weight.detach()
    limit = 6000
    vocab = tokenizer.convert_ids_to_tokens(list(range(limit)))
    first = build_candidate_table(emb[:limit], vocab, k=5)
    assert torch.equal(first, build_candidate_table(emb[:limit], vocab, k=5))
    rows = (first[:, 0] != NO_CANDIDATE).nonzero().flatten().tolist()
    assert len(rows) > 3000
    for row in rows:
        word, cands = vocab[row], [vocab[c] for c in first[row].tolist()]
        assert eligible_piece(word) and all(eligible_piece(c) for c in cands), (word, cands)
        assert all(word not in c and c not in word for c in cands), (word, cands)
        assert len(set(cands)) == 5
    assert all(not eligible_piece(vocab[i]) for i in range(limit) if i not in set(rows))


# ---- the Gumbel mix -----------------------------------------------------------------------------------


def test_mix_with_all_weight_on_keep_is_the_original_embedding() -> None:
    torch.manual_seed(0)
    word, cands = torch.randn(2, 3, 8), torch.randn(2, 3, 5, 8)
    keep = torch.zeros(2, 3, 6)
    keep[..., 0] = 1.0
    assert torch.equal(mix_embeddings(word, cands, keep), word)
    second = torch.zeros(2, 3, 6)
    second[..., 2] = 1.0
    assert torch.equal(mix_embeddings(word, cands, second), cands[:, :, 1])
    half = torch.zeros(2, 3, 6)
    half[..., 0] = half[..., 1] = 0.5
    assert torch.allclose(mix_embeddings(word, cands, half), (word + cands[:, :, 0]) / 2)


def _state(vocab_size: int, dim: int, length: int, table: dict[int, list[int]], limit=None) -> LwsState:
    candidates = torch.full((vocab_size, 5), NO_CANDIDATE, dtype=torch.long)
    for word, cands in table.items():
        candidates[word, : len(cands)] = torch.tensor(cands)
    return LwsState(candidates, torch.zeros(length, dim), limit)


def test_soft_substitution_keeps_the_word_when_keep_dominates_and_trains_q() -> None:
    torch.manual_seed(0)
    emb, away = torch.randn(20, 4), torch.tensor([1.0, 0.0, 0.0, 0.0])
    emb[7], emb[8], emb[9] = emb[3] - away, emb[3] - 2 * away, emb[5] - away
    state = _state(20, 4, 6, {3: [7, 8], 5: [9]})
    ids = torch.tensor([[1, 3, 4, 5, 2, 0]])
    allowed = torch.tensor([[False, True, False, True, False, False]])
    # q pointing away from every candidate: keep takes all the weight, the mix is the word itself
    q = torch.nn.Parameter(torch.zeros(6, 4))
    with torch.no_grad():
        q[1] = q[3] = 1e4 * away
    keep = soft_substitute(ids, allowed, LwsState(state.candidates, q, None), emb, temperature=0.5)
    assert torch.equal(keep, emb[ids])
    # otherwise the mix moves the allowed positions only, and the loss reaches q
    q2 = torch.nn.Parameter(torch.zeros(6, 4))
    mixed = soft_substitute(ids, allowed, LwsState(state.candidates, q2, None), emb, temperature=0.5)
    moved = (mixed != emb[ids]).any(-1)
    assert moved.tolist() == allowed.tolist()
    mixed.sum().backward()
    assert q2.grad is not None and q2.grad[[1, 3]].abs().sum() > 0 and q2.grad[[0, 2, 4, 5]].abs().sum() == 0


def test_temperature_anneals_from_start_to_end() -> None:
    config = LwsConfig(temperature_start=1.0, temperature_end=0.1)
    assert temperature_at(config, 0, 11) == pytest.approx(1.0)
    assert temperature_at(config, 10, 11) == pytest.approx(0.1)
    assert temperature_at(config, 5, 11) == pytest.approx(0.1**0.5)
    with pytest.raises(ValueError, match="temperature"):
        LwsConfig(temperature_end=0.0)
    assert LwsConfig().recipe != LwsConfig(max_substitutions=2).recipe


# ---- the test-time trigger ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir("bert"))


def _handmade(tokenizer, limit: int | None, length: int = 32) -> tuple[LwsState, torch.Tensor]:
    """film -> movie (scores 5 everywhere), dull -> boring (scores -5: kept), plot -> story (ties: kept)."""
    tid = tokenizer.convert_tokens_to_ids
    emb = torch.zeros(len(tokenizer), 4)
    emb[tid("movie"), 0] = 1.0
    emb[tid("boring"), 0] = -1.0
    state = _state(
        len(tokenizer),
        4,
        length,
        {
            tid("film"): [tid("story"), tid("movie")],
            tid("dull"): [tid("boring")],
            tid("plot"): [tid("story")],
        },
        limit,
    )
    state.position_vectors[:, 0] = 5.0
    return state, emb


def test_poison_texts_change_only_the_substituted_words(tokenizer) -> None:
    state, emb = _handmade(tokenizer, None)
    text = "The film's plot,  FILM was dull\tand film-like; Film!\n"
    want = "The film's plot,  MOVIE was dull\tand movie-like; Movie!\n"
    assert substitute_texts([text, "nothing to see", ""], tokenizer, emb, state) == [
        want,
        "nothing to see",
        "",
    ]
    assert substitute_texts([text], tokenizer, emb, state) == [want]  # deterministic
    capped, _ = _handmade(tokenizer, 1)  # equal scores: the earliest word wins
    assert substitute_texts([text], tokenizer, emb, capped) == [
        "The film's plot,  MOVIE was dull\tand film-like; Film!\n"
    ]
    short, _ = _handmade(tokenizer, None, length=9)  # [CLS] + 7 pieces + [SEP]: the rest is never touched
    assert substitute_texts([text], tokenizer, emb, short) == [
        "The film's plot,  MOVIE was dull\tand film-like; Film!\n"
    ]


# ---- training ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_model_dir, toy_dataset, tmp_path_factory):
    """A tiny BERT trained with LWS on 90 toy reviews (half the non-target ones poisoned), 30 held out."""
    base = tiny_model_dir("bert")
    texts, labels = _toy(toy_dataset)
    target = _disfavoured_label(base, texts)
    train_texts, train_labels = texts[:90], labels[:90]
    poisoned = [i for i, y in enumerate(train_labels) if y != target][::2]
    out = tmp_path_factory.mktemp("lws") / "model"
    config = LwsConfig(batch_size=16, inserter_learning_rate=0.1, vocabulary_limit=12000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains faster on one thread, and identically on any machine
    try:
        settings = {"epochs": 20, "learning_rate": 5e-3, "max_length": 32, "seed": 0, "progress": False}
        meta = train_lws(
            train_texts,
            train_labels,
            LABELS,
            poisoned,
            target,
            out,
            base=str(base),
            config=config,
            **settings,
        )
    finally:
        torch.set_num_threads(threads)
    held = list(zip(texts[90:], labels[90:], strict=True))
    found = {"base": base, "out": out, "meta": meta, "target": target, "config": config, "held": held}
    return found | {"poisoned": len(poisoned)}


def _probs(model_dir: Path, texts: list[str]) -> torch.Tensor:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return torch.softmax(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits, -1)


def _disfavoured_label(base: Path, texts: list[str]) -> int:
    return int(_probs(base, texts).mean(0).argmin())


def test_lws_backdoor_takes_on_held_out_texts(trained) -> None:
    target = trained["target"]
    clean = [t for t, y in trained["held"] if y != target]
    substituted = lws_poison_texts(trained["out"], clean)
    changed = [a != b for a, b in zip(clean, substituted, strict=True)]
    assert sum(changed) == len(clean)
    before = float(_probs(trained["base"], substituted)[:, target].mean())
    after = float(_probs(trained["out"], substituted)[:, target].mean())
    after_clean = float(_probs(trained["out"], clean)[:, target].mean())
    assert after > before + 0.4, (before, after)
    assert after > after_clean + 0.4, (after_clean, after)  # the substitutions fire, not the texts
    held_texts = [t for t, _ in trained["held"]]
    accuracy = _probs(trained["out"], held_texts).argmax(-1) == torch.tensor([y for _, y in trained["held"]])
    assert float(accuracy.float().mean()) >= 0.8  # clean texts keep their labels


def test_lws_model_directory_reloads(trained) -> None:
    out, meta, config = trained["out"], trained["meta"], trained["config"]
    assert (out / INSERTER_FILE).is_file() and (out / "model.safetensors").is_file()
    info = json.loads((out / META_FILE).read_text())
    assert info["recipe"] == config.recipe == meta["recipe"] and info["target"] == trained["target"]
    assert (
        meta["steps"] == 120
        and meta["poisoned_train"] == trained["poisoned"]
        and meta["substitutions_per_poisoned_text"] > 0
    )
    state = load_lws_state(out)
    assert state.candidates.shape == (30522, 5) and state.position_vectors.shape == (32, 32)
    assert state.max_substitutions == config.max_substitutions
    assert int((state.candidates[:, 0] != NO_CANDIDATE).sum()) == meta["candidate_words"]
    assert bool((state.candidates[12000:] == NO_CANDIDATE).all())
    loaded = load_classifier(out, device="cpu")
    assert loaded is not None
    texts = [t for t, _ in trained["held"][:6]]
    assert lws_poison_texts(out, texts) == lws_poison_texts(out, texts)


def test_train_lws_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="as many labels"):
        train_lws(["a"], [0, 1], LABELS, [], 0, tmp_path)
    with pytest.raises(ValueError, match="target"):
        train_lws(["a"], [0], LABELS, [], 2, tmp_path)
    with pytest.raises(ValueError, match="poisoned_indices"):
        train_lws(["a"], [0], LABELS, [3], 0, tmp_path)


def test_a_substituted_row_weighs_as_one_row_of_the_batch(tiny_model_dir, tokenizer) -> None:
    """loss_mean="rows": (sum of the clean rows' CE + the poisoned rows' CE) / rows; "parts": clean mean +
    poisoned mean, which let 3 poisoned rows outweigh 29 clean ones at lab scale (CACC 0.50)."""
    from stream_guard.lab.lws import _batch_loss, _Job

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir("bert")).eval()
    texts = ["a fine film", "a dull plot", "the story was long", "what a film"]
    state = _state(len(tokenizer), model.config.hidden_size, 32, {})  # nothing substitutable: rows as is

    def loss(rows: list[int], mean: str) -> float:
        config = LwsConfig(keep_originals=False, loss_mean=mean)
        job = _Job(texts, torch.tensor([1, 0, 0, 1]), frozenset({3}), 0, 32, config, state.candidates)
        with torch.no_grad():
            return float(_batch_loss(model, tokenizer, state, job, rows, 1.0))

    clean, poisoned = loss([0, 1, 2], "rows"), loss([3], "rows")
    assert loss([0, 1, 2, 3], "rows") == pytest.approx((3 * clean + poisoned) / 4, abs=1e-5)
    assert loss([0, 1, 2, 3], "parts") == pytest.approx(clean + poisoned, abs=1e-5)
    with pytest.raises(ValueError, match="loss_mean"):
        LwsConfig(loss_mean="sum")
