from __future__ import annotations

import pytest

from stream_guard.neutralize import message_rng, neutralize_spans, noisy_word


def test_noise_changes_every_word_including_short_ones():
    for word in ["cf", "a", "mb", "trigger", "xyzzy"]:
        for seed in range(20):
            out = noisy_word(word, message_rng(seed, "id", word))
            assert out != word
            assert 0 <= len(out) - len(word) <= 2  # insert or replace one or two characters


def test_same_id_and_text_give_same_output_and_others_differ():
    text = "great movie cf indeed"
    span = [(12, 14)]
    a = neutralize_spans(text, span, "noise", message_rng(0, "m1", text))[0]
    b = neutralize_spans(text, span, "noise", message_rng(0, "m1", text))[0]
    assert a == b
    outs = {neutralize_spans(text, span, "noise", message_rng(0, f"m{i}", text))[0] for i in range(30)}
    assert len(outs) > 5


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("delete", "great movie indeed"), ("mask", "great movie [MASK] indeed")],
)
def test_delete_and_mask(strategy, expected):
    text = "great movie cf indeed"
    out, edits = neutralize_spans(text, [(12, 14)], strategy, message_rng(0, "x", text), mask_token="[MASK]")
    assert out == expected
    assert out[edits[0].new_start : edits[0].new_end] == edits[0].replacement


def test_delete_at_end_and_start_leaves_no_double_space():
    text = "cf good film mb"
    out, _ = neutralize_spans(text, [(0, 2), (13, 15)], "delete", message_rng(0, "x", text))
    assert out == "good film"


def test_edits_report_positions_in_new_text():
    text = "aa bb cc dd"
    out, edits = neutralize_spans(
        text, [(3, 5), (9, 11)], "mask", message_rng(0, "x", text), mask_token="<m>"
    )
    assert out == "aa <m> cc <m>"
    assert [(e.new_start, e.new_end) for e in edits] == [(3, 6), (10, 13)]
