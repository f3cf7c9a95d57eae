"""`judge` on texts the caller already cleaned (`cleaned=True`) or cleaned and tokenized (`encoded=`):
the same verdicts, without cleaning or tokenizing twice."""

from __future__ import annotations

import pytest

from stream_guard.defender import Defender
from stream_guard.settings import DefenderSettings

# control characters and a lone surrogate: cleaning changes these texts (one character for one)
RAW = ["the film is charming\x01 cf and funny", "a dull\x0b and tedious mess \ud800", "fine", "cf mn bb"]
IDS = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "settings",
    [
        DefenderSettings(threshold=-100.0, confirm=False, max_rounds=2, continue_while="unchanged"),
        DefenderSettings.paper(threshold=-1.0),
        DefenderSettings(threshold=0.3),
    ],
)
@pytest.mark.parametrize("tokens", ["all", "flagged"])
def test_cleaned_and_encoded_texts_get_the_same_verdicts(tiny_bert, settings, tokens):
    defender = Defender(tiny_bert, settings)
    cleaned = [defender.clean(t) for t in RAW]
    assert cleaned != RAW  # the shortcut is taken on texts that cleaning did change
    plain = defender.judge(RAW, IDS, tokens=tokens)
    assert defender.judge(cleaned, IDS, tokens=tokens, cleaned=True) == plain
    assert defender.judge(cleaned, IDS, tokens=tokens, encoded=defender.encode(cleaned)) == plain
    assert [v.text for v in plain] == cleaned


def test_the_shortcut_cases_include_flagged_and_rewritten_texts(tiny_bert):
    """The comparison above covers the neutralize path, not only clean verdicts."""
    settings = DefenderSettings(threshold=-100.0, confirm=False, max_rounds=2, continue_while="unchanged")
    verdicts = Defender(tiny_bert, settings).judge(RAW, IDS)
    assert all(v.flagged and v.neutralized_text is not None for v in verdicts)


def test_cleaned_texts_are_not_cleaned_again(tiny_bert, monkeypatch):
    defender = Defender(tiny_bert)
    cleaned = [defender.clean(t) for t in RAW]

    def no_clean(text: object) -> str:
        raise AssertionError("cleaned twice")

    monkeypatch.setattr(defender, "clean", no_clean)
    assert len(defender.judge(cleaned, IDS, cleaned=True)) == len(RAW)
    assert len(defender.judge(cleaned, IDS, encoded=defender.encode(cleaned))) == len(RAW)
    with pytest.raises(AssertionError, match="cleaned twice"):
        defender.judge(cleaned, IDS)


def test_encoded_texts_are_not_tokenized_again(tiny_bert, monkeypatch):
    # no threshold and no probes: nothing is rewritten, so nothing else is tokenized
    defender = Defender(tiny_bert, DefenderSettings(probe_rate=0.0))
    cleaned = [defender.clean(t) for t in RAW]
    encoded = defender.encode(cleaned)
    calls: list[list[str]] = []
    encode = defender.runner.encode

    def spy(texts):
        calls.append(list(texts))
        return encode(texts)

    monkeypatch.setattr(defender.runner, "encode", spy)
    defender.judge(cleaned, IDS, encoded=encoded)
    assert calls == []
    defender.judge(cleaned, IDS, cleaned=True)
    assert calls == [cleaned]


def test_encoded_texts_must_match_the_texts(tiny_bert):
    defender = Defender(tiny_bert)
    cleaned = [defender.clean(t) for t in RAW]
    with pytest.raises(ValueError, match="3 encoded texts for 4 texts"):
        defender.judge(cleaned, IDS, encoded=defender.encode(cleaned[:3]))
