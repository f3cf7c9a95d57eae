"""Trigger updates as the core's TriggerSet, the trigger file, and the next update: the learner's
promotions merged in, an operator's additions and revocations (always newer than the previous one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from consumers.pipeline.triggers import (
    TriggerEditError,
    TriggerFileError,
    add_trigger,
    merge_triggers,
    read_trigger_file,
    revoke_trigger,
    trigger_set_for_model,
    trigger_set_from_update,
    update_from_learned,
    write_trigger_file,
)
from schemas import KnownTriggerRecord, TriggerUpdate, encode, normalize_trigger
from stream_guard.triggers.phrases import normalize_phrase
from stream_guard.triggers.rule import LearnedTrigger

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
MODEL = "tiny@0123456789ab"


def _learned(text: str, target: int = 1, flips: int = 7, at: datetime = T0) -> LearnedTrigger:
    return LearnedTrigger(
        text=text,
        target_label=target,
        flips=flips,
        messages=flips + 1,
        probes=2,
        first_seen=at - timedelta(hours=1),
        last_seen=at,
        insertion_rate=0.98,
        insertion_texts=103,
        clean_rate=0.0,
        learned_at=at,
    )


def _update(*texts: str, revoked: tuple[str, ...] = (), at: datetime = T0) -> TriggerUpdate:
    return TriggerUpdate(
        model_id=MODEL,
        version=f"v-{at:%H%M%S}",
        created_at=at,
        triggers=[KnownTriggerRecord(text=t) for t in texts],
        revoked=list(revoked),
    )


@pytest.mark.parametrize(
    "text",
    [
        "CF",
        " cf, ",
        "James  BOND!",
        "don't-stop",
        "Ｃｆ",
        "Straße",
        "mn...bb",
        "naïve café",
        "3-d x2",
        "?!",
        "",
    ],
)
def test_the_wire_normal_form_is_the_trigger_memory_s(text: str) -> None:
    """schemas cannot import the core, so it spells the normal form out; the two must agree."""
    assert normalize_trigger(text) == normalize_phrase(text)


def test_an_update_becomes_the_set_the_defender_matches_with() -> None:
    update = TriggerUpdate(
        model_id=MODEL,
        version="v1",
        created_at=T0,
        triggers=[
            KnownTriggerRecord(text="cf", target_label=1, source="learned"),
            KnownTriggerRecord(text="James Bond"),
        ],
        revoked=["fails"],
    )
    found = trigger_set_from_update(update)
    assert found.version == "v1" and len(found) == 2
    assert [(t.text, t.target_label, t.source) for t in found.triggers] == [
        ("cf", 1, "learned"),
        ("james bond", None, "operator"),
    ]
    text = "CF and james  bond, but it fails"
    assert [text[h.start : h.end] for h in found.find(text)] == ["CF", "james  bond"]
    assert trigger_set_for_model(update, MODEL) == found
    with pytest.raises(
        TriggerFileError, match="is for model 'tiny@0123456789ab', not the loaded model 'x@1'"
    ):
        trigger_set_for_model(update, "x@1", source="trigger file t.json")


# -- files ---------------------------------------------------------------------------------------------


def test_a_written_file_reads_back_the_same_update(tmp_path: Path) -> None:
    update = update_from_learned(MODEL, [_learned("cf")], created_at=T0)
    path = tmp_path / "triggers.json"
    write_trigger_file(path, update)
    assert read_trigger_file(path) == update
    assert orjson.loads(path.read_bytes())["triggers"][0]["text"] == "cf"  # {"triggers": [{"text": ...}]}
    assert path.read_bytes().endswith(b"}\n") and not list(tmp_path.glob(".triggers.json.*"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "trigger file not found: "),
        (b"{oops", "invalid trigger file .*: not JSON"),
        (b"[]", "invalid trigger file .*: expected a JSON object"),
        (b'{"triggers": [{"text": "cf"}]}', "invalid trigger file .*: model_id: Field required"),
        (
            b'{"model_id": "m", "version": "v", "created_at": "2026-01-01T00:00:00Z",'
            b' "triggers": [{"text": "!"}]}',
            "invalid trigger file .*: triggers.0.text: a trigger needs at least one word",
        ),
    ],
)
def test_bad_trigger_files_fail_with_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TriggerFileError, match=message) as info:
        read_trigger_file(path)
    assert "\n" not in str(info.value)


def test_writing_into_a_missing_directory_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(TriggerFileError, match="does not exist"):
        write_trigger_file(tmp_path / "nope" / "t.json", _update("cf"))


# -- the learner's promotions --------------------------------------------------------------------------


def test_learned_triggers_carry_their_evidence_and_join_the_previous_set() -> None:
    first = update_from_learned(MODEL, [_learned("cf")], created_at=T0)
    (cf,) = first.triggers
    assert (cf.source, cf.target_label, cf.flips, cf.messages, cf.probes) == ("learned", 1, 7, 8, 2)
    assert (cf.insertion_rate, cf.insertion_texts, cf.clean_rate, cf.learned_at) == (0.98, 103, 0.0, T0)
    assert first.model_id == MODEL and first.created_at == T0 and first.revoked == []
    pinned = add_trigger(first, MODEL, "james bond", at=T0 + timedelta(minutes=1))
    later = T0 + timedelta(hours=1)
    fresher = [_learned("cf", flips=30, at=later), _learned("james bond", at=later), _learned("mn", 0)]
    second = update_from_learned(MODEL, fresher, previous=pinned, created_at=later)
    assert second.texts() == ["cf", "james bond", "mn"]
    by_text = {t.text: t for t in second.triggers}
    assert by_text["cf"].flips == 30  # fresher evidence replaces the learned entry
    assert by_text["james bond"].source == "operator" and by_text["james bond"].flips is None  # pinned
    assert (by_text["mn"].target_label, by_text["mn"].source) == (0, "learned")
    assert (second.created_at, second.version) > (pinned.created_at, pinned.version)


def test_revoked_words_are_never_learned_back() -> None:
    revoked = revoke_trigger(update_from_learned(MODEL, [_learned("cf")], created_at=T0), MODEL, "CF")
    again = update_from_learned(MODEL, [_learned("cf"), _learned("mn")], previous=revoked)
    assert again.texts() == ["mn"] and again.revoked == ["cf"]


def test_the_same_promotions_give_the_same_update_byte_for_byte() -> None:
    make = lambda: update_from_learned(MODEL, [_learned("cf"), _learned("tq z")], created_at=T0)  # noqa: E731
    assert encode(make()) == encode(make())
    assert make().version != update_from_learned(MODEL, [_learned("cf")], created_at=T0).version


# -- an operator's edits -------------------------------------------------------------------------------


def test_add_and_revoke_make_newer_updates_even_with_a_clock_behind() -> None:
    current = _update("cf", at=T0)
    behind = T0 - timedelta(days=1)  # this machine's clock is behind the previous writer's
    added = add_trigger(current, MODEL, "  James BOND ", target_label=0, at=behind)
    assert added.texts() == ["cf", "james bond"] and added.triggers[1].target_label == 0
    assert added.triggers[1].source == "operator"
    assert (added.created_at, added.version) > (current.created_at, current.version)
    revoked = revoke_trigger(added, MODEL, "CF", at=behind)
    assert revoked.texts() == ["james bond"] and revoked.revoked == ["cf"]
    assert revoked.created_at > added.created_at
    readded = add_trigger(revoked, MODEL, "cf")  # an operator may take a revocation back
    assert readded.texts() == ["james bond", "cf"] and readded.revoked == []


def test_a_word_can_be_revoked_before_it_is_ever_learned() -> None:
    first = revoke_trigger(None, MODEL, "Fails")
    assert first.triggers == [] and first.revoked == ["fails"] and first.model_id == MODEL
    assert add_trigger(None, MODEL, "cf").texts() == ["cf"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda u: add_trigger(u, MODEL, "CF"), "'cf' is already a known trigger"),
        (lambda u: add_trigger(u, MODEL, "..."), "needs at least one word"),
        (lambda u: add_trigger(u, MODEL, "x", target_label=-1), "must be >= 0"),
        (lambda u: revoke_trigger(u, MODEL, "Fails"), "'fails' is already revoked"),
        (lambda u: revoke_trigger(u, MODEL, " "), "needs at least one word"),
        (lambda u: add_trigger(u, "other@1", "mn"), "the current set is for model"),
        (lambda u: revoke_trigger(u, "other@1", "mn"), "the current set is for model"),
    ],
)
def test_edits_that_change_nothing_are_refused(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TriggerEditError, match=message):
        edit(_update("cf", revoked=("fails",)))


def test_a_file_merged_into_the_live_set_keeps_pins_and_revocations() -> None:
    """What `stream-guard triggers publish FILE` does with a replay's learned set."""
    learned = update_from_learned(MODEL, [_learned("cf")], created_at=T0)
    live = revoke_trigger(add_trigger(learned, MODEL, "bb"), MODEL, "fails")
    replayed = update_from_learned(
        MODEL, [_learned("cf", flips=40), _learned("bb"), _learned("fails"), _learned("mn")], created_at=T0
    )
    merged, left_out = merge_triggers(MODEL, replayed.triggers, previous=live, revoked=["mn", "cf"])
    assert merged.texts() == ["bb"] and merged.triggers[0].source == "operator"  # the pin stays a pin
    assert merged.revoked == ["fails", "mn", "cf"]
    assert left_out == ["cf", "fails", "mn"]  # revoked now or before: not published
    assert (merged.created_at, merged.version) > (live.created_at, live.version)
    fresh, none_out = merge_triggers(MODEL, replayed.triggers[:1], previous=live)
    assert none_out == [] and {t.text: t.flips for t in fresh.triggers} == {"cf": 40, "bb": None}
