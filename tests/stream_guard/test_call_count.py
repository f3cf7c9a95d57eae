"""A batch of 32 texts costs exactly one forward and one backward on the packaged backbone."""

from __future__ import annotations

import pytest

from stream_guard.defender import Defender
from stream_guard.settings import DefenderSettings

TEXTS = [f"review number {i}: {'a quietly moving film ' * (1 + i % 5)}cf" for i in range(32)]


@pytest.mark.slow
def test_one_forward_and_one_backward_per_batch(backbone):
    model = backbone.model
    forwards, backwards, layers = [], [], []
    hooks = [
        model.register_forward_hook(lambda *_: forwards.append(1)),
        model.classifier.register_full_backward_hook(lambda *_: backwards.append(1)),
        *(layer.register_forward_hook(lambda *_: layers.append(1)) for layer in model.bert.encoder.layer),
    ]
    try:
        # a call cost above any padding saving: the batch planner keeps the 32 texts in one call
        defender = Defender(backbone, DefenderSettings(batch_size=32, call_cost_tokens=100_000))
        scores = defender.score(TEXTS)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(scores) == 32 and all(s.has_candidates for s in scores)
    assert len(forwards) == 1
    assert len(backwards) == 1
    assert len(layers) == model.config.num_hidden_layers  # every layer ran once, for the whole batch
    assert defender.forward_calls == 1
