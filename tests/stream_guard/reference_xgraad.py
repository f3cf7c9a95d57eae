"""A deliberately plain, unbatched float64 X-GRAAD (paper Eqs. 1-8), to check the batched code against.

One text at a time, no padding, Python loops over tokens; shares no code with stream_guard.attribution.
"""

from __future__ import annotations

import copy
import unicodedata

import torch


def is_candidate(token: str, special: bool) -> bool:
    if special:
        return False
    bare = token.removeprefix("##")
    return not all(unicodedata.category(ch)[0] in "PS" for ch in bare)


def reference_scores(model, tokenizer, text: str, max_length: int = 256) -> dict:
    model64 = copy.deepcopy(model).double().eval()
    enc = tokenizer(text, truncation=True, max_length=max_length, return_special_tokens_mask=True)
    ids = torch.tensor([enc["input_ids"]])
    special = [
        bool(s) and tid != tokenizer.unk_token_id
        for s, tid in zip(enc["special_tokens_mask"], enc["input_ids"], strict=True)
    ]
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    emb = model64.get_input_embeddings()(ids).detach().requires_grad_(True)
    out = model64(inputs_embeds=emb, output_attentions=True)
    n = ids.shape[1]
    # Eq. 1: mean over every layer and head
    mean = torch.zeros(n, n, dtype=torch.float64)
    count = 0
    for layer in out.attentions:
        for head in range(layer.shape[1]):
            mean += layer[0, head].detach()
            count += 1
    mean /= count
    attention = [float(sum(mean[i, j] for i in range(n))) for j in range(n)]  # Eq. 2
    logits = out.logits[0]
    predicted = int(torch.argmax(logits))
    (grad,) = torch.autograd.grad(logits[predicted], emb)  # Eq. 3
    gradient = [float(torch.linalg.vector_norm(grad[0, j])) for j in range(n)]  # Eq. 4
    cand = [is_candidate(t, s) for t, s in zip(tokens, special, strict=True)]
    idx = [j for j in range(n) if cand[j]]
    scores: list[float | None] = [None] * n
    anomaly = 0.0
    if idx:
        mean_a = sum(attention[j] for j in idx) / len(idx)
        mean_g = sum(gradient[j] for j in idx) / len(idx)
        for j in idx:
            scores[j] = (attention[j] - mean_a) * (gradient[j] / mean_g)  # Eqs. 5-7
        anomaly = max(scores[j] for j in idx)  # Eq. 8
    return {
        "attention": attention,
        "gradient": gradient,
        "score": scores,
        "candidate": cand,
        "anomaly": anomaly,
        "label": predicted,
    }
