from __future__ import annotations

import pytest

from stream_guard.errors import InvalidTextError
from stream_guard.textcheck import clean_text


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("", "empty_text"),
        ("   \n\t", "empty_text"),
        ("\x00\x01", "empty_text"),
        (42, "validation"),
        (None, "validation"),
        ("x" * 101, "oversize"),
    ],
)
def test_unusable_texts_are_rejected_with_a_kind(value, kind):
    with pytest.raises(InvalidTextError) as err:
        clean_text(value, max_chars=100)
    assert err.value.kind == kind
    assert "\n" not in str(err.value)


def test_control_characters_and_surrogates_keep_offsets():
    raw = "bad\x00word \ud800 ok\tfine\n"
    cleaned = clean_text(raw, max_chars=100)
    assert len(cleaned) == len(raw)
    assert cleaned == "bad word \ufffd ok\tfine\n"
