"""The self-contained HTML audit report: escaping, odd records, determinism, and a real browser."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from schemas import AuditRecord, KnownTriggerRecord, PredictionRecord, TriggerUpdate
from stream_guard.audit_html import AuditHtmlBuilder, render_html, token_heatmap
from stream_guard.calibration import calibrate
from stream_guard.datasets import load_dataset
from stream_guard.defender import Defender
from stream_guard.lab.poisoning import BadNetsAttack, poison_test_set
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.triggers.known import TriggerHit
from stream_guard.verdict import Verdict
from tests.stream_guard.backdoor_model import build_backdoored_model
from tests.stream_guard.test_trigger_report import verdict, wordpiece

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOT_ENV = "STREAM_GUARD_UPDATE_SCREENSHOT"  # =1: also write docs/audit-report.png
DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "audit-report.png"
VOID = {"meta", "br", "img", "input", "link", "hr", "area", "base", "col", "embed", "source", "track", "wbr"}
SVG_LEAVES = {"rect", "line", "path", "circle"}


class TagBalance(HTMLParser):
    """Collects tags and checks every opened non-void element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(name for name, _ in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, f"unclosed: {parser.stack}"
    return parser


def hostile() -> Verdict:
    text = '<script>alert("x")</script> & <img src=x onerror=alert(1)> cf'
    tokens = wordpiece(text, {})
    tokens = [
        t.__class__(t.token, t.start, t.end, 0.1, 0.1, 3.0 if t.token == "cf" else 0.5, True) for t in tokens
    ]
    return verdict(text, tokens, id='"><b onmouseover=alert(2)>')


def test_all_text_is_escaped_and_scripts_are_forbidden() -> None:
    page = render_html([hostile()], title="<title>&")
    parsed = parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not [a for a in parsed.attrs if a.startswith("on")]  # no event handlers smuggled in
    assert "<script>" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing remote


def test_heatmap_shades_the_top_token_strongest_and_keeps_the_text() -> None:
    text = "a gripping cf film"
    v = verdict(text, wordpiece(text, {"a": 0.1, "gripping": 1.0, "cf": 4.0, "film": 0.0}))
    heat = token_heatmap(v)
    spans = re.findall(r"rgba\(207,34,46,([0-9.]+)\)[^>]*>([^<]*)</span>", heat)
    assert spans and max(spans, key=lambda s: float(s[0]))[1] == "cf"
    assert re.sub(r"<[^>]+>", "", heat) == text  # shading adds markup only


def test_unicode_long_and_bidi_texts() -> None:
    text = "naïve 映画 😀 \u202eevil\u202c " + "long " * 3000
    v = verdict(text, wordpiece("naïve 映画 😀", {"映画": 2.0}))
    v = Verdict(**{**v.to_dict(), "text": text, "tokens": v.tokens, "suspicious_words": []})
    page = AuditHtmlBuilder(max_chars=500)
    page.add(v)
    html = page.render()
    parse(html)
    assert "映画" in html and "😀" in html and "unicode-bidi:isolate" in html
    assert "more characters not shown" in html
    assert len(html) < 60_000


def test_records_of_every_schema_version_render() -> None:
    minimal = {  # schema version 0: only the fields every version has
        "id": "old-1",
        "model_id": "m@0",
        "label": 1,
        "label_name": "positive",
        "probabilities": [0.2, 0.8],
        "anomaly_score": 2.5,
        "final_label": 1,
        "final_label_name": "positive",
        "n_tokens": 4,
        "scored_at": "2024-01-01T00:00:00Z",
        "text": "old record",
        "schema_version": 0,
    }
    newer = {**minimal, "id": "new-1", "schema_version": 7, "field_from_the_future": {"x": 1}}
    clean = PredictionRecord.model_validate({**minimal, "id": "clean-1", "anomaly_score": 0.1})
    records = [AuditRecord.model_validate(minimal), AuditRecord.model_validate(newer), clean]
    page = render_html(records)
    parse(page)
    assert page.count('class="card"') == 2  # the prediction counts, but has no card
    assert "schema v0" in page and "schema v7" in page and "no token scores" in page
    assert ">3</b><span>records" in page and ">2</b><span>flagged" in page


def test_same_records_give_the_same_bytes() -> None:
    records = [hostile(), verdict("x cf y", wordpiece("x cf y", {"cf": 2.0}), id="2")]
    assert render_html(records) == render_html(records)


def test_empty_report() -> None:
    page = render_html([])
    parse(page)
    assert "no flagged decisions" in page and "no scores" in page


# -- headless Chromium --------------------------------------------------------------------------------


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def backdoor_traffic(tmp_path: Path) -> list[Verdict]:
    """Verdicts on movie reviews, a third of them carrying the trigger 'cf', from a backdoored model."""
    model_dir = build_backdoored_model(tmp_path / "backdoored-tiny-bert", "cf")
    classifier = load_classifier(model_dir, device="cpu")
    defender = Defender(classifier, DefenderSettings(device="cpu", batch_size=64))
    movies = load_dataset("movies")
    defender.set_threshold(calibrate(defender, [movies.texts[i] for i in range(0, 6000, 40)]).threshold)
    traffic = movies.subset(list(range(6001, 9000, 25)))
    poisoned = poison_test_set(traffic.subset(list(range(0, len(traffic), 3))), BadNetsAttack(("cf",)), 1)
    texts = traffic.texts + poisoned.dataset.texts
    order = sorted(range(len(texts)), key=lambda i: (i * 7919) % len(texts))  # mix them, deterministically
    return defender.judge([texts[i] for i in order], [f"msg-{i:04d}" for i in order], tokens="flagged")


def run_chromium(binary: str, args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium)")
    page = AuditHtmlBuilder(title="stream-guard audit: backdoored demo model, trigger 'cf'", max_cards=40)
    for v in backdoor_traffic(tmp_path):
        page.add(v)
    report = tmp_path / "report.html"
    report.write_text(page.render(), encoding="utf-8")
    assert page.triggers.report().top is not None and page.triggers.report().top.word == "cf"

    dom = run_chromium(binary, ["--dump-dom", report.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Top suspicious words" in dom.stdout and 'class="card"' in dom.stdout
    assert "Uncaught" not in dom.stderr and "Refused to" not in dom.stderr, dom.stderr[-2000:]

    png = tmp_path / "report.png"
    shot = run_chromium(
        binary,
        ["--hide-scrollbars", f"--screenshot={png}", "--window-size=1200,1600", report.as_uri()],
        tmp_path / "profile-shot",
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real, non-blank page
    if os.environ.get(SCREENSHOT_ENV) == "1":
        DOCS_PNG.parent.mkdir(exist_ok=True)
        shutil.copyfile(png, DOCS_PNG)


# -- known triggers -----------------------------------------------------------------------------------

AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def known_set(model_id: str = "tiny@0", version: str = "v2") -> TriggerUpdate:
    """Two learned triggers with their evidence, one operator pin, two revoked words."""
    learned = {"source": "learned", "first_seen": AT - timedelta(hours=2), "last_seen": AT, "learned_at": AT}
    return TriggerUpdate(
        model_id=model_id,
        version=version,
        created_at=AT,
        triggers=[
            KnownTriggerRecord(
                text="cf",
                target_label=0,
                flips=12,
                messages=10,
                probes=3,
                insertion_rate=0.98,
                insertion_texts=200,
                clean_rate=0.0,
                **learned,
            ),
            KnownTriggerRecord(
                text="tq z",
                target_label=1,
                flips=7,
                messages=7,
                probes=0,
                insertion_rate=1.0,
                insertion_texts=150,
                clean_rate=0.004,
                **learned,
            ),
            KnownTriggerRecord(text="James Bond"),  # an operator's pin: no evidence
        ],
        revoked=["fails", "uneven"],
    )


def caught(v: Verdict, *triggers: str, version: str = "v2") -> Verdict:
    """`v` as the defender returns it when known triggers fired in it (flagged whatever its score)."""
    hits = [TriggerHit(t, v.text.index(t.split()[0]), v.text.index(t.split()[0]) + len(t)) for t in triggers]
    return dataclasses.replace(v, flagged=True, known_triggers=hits, trigger_version=version)


def known_rows(page: str) -> dict[str, list[str]]:
    """The Known triggers table: trigger -> the other cells of its row (tags stripped), in order."""
    rows = {}
    for row in re.findall(r'<tr><td class="trigger">.*?</tr>', page):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        rows[cells[0]] = cells[1:]
    return rows


def known_traffic() -> list[object]:
    """8 records of tiny@0: cf fired in 3 (twice in one), tq z in 1, both in 1, 'old' (not in the set)
    in 1; one flagged by its score alone; one clean prediction. And one record of another model."""
    low = {"cf": 0.2, "film": 0.1}
    records: list[object] = [
        caught(verdict("a cf film", wordpiece("a cf film", low), flagged=False, id="k1"), "cf"),
        caught(verdict("cf again cf", wordpiece("cf again cf", {"cf": 5.0}), id="k2"), "cf", "cf"),
        caught(verdict("tq z here", wordpiece("tq z here", {"tq": 0.1}), flagged=False, id="k3"), "tq z"),
        caught(verdict("cf and tq z", wordpiece("cf and tq z", {}), flagged=False, id="k4"), "cf", "tq z"),
        caught(
            verdict("an old one", wordpiece("an old one", {}), flagged=False, id="k5"), "old", version="v1"
        ),
        verdict("plain gripping", wordpiece("plain gripping", {"gripping": 3.0}), id="s1"),
        verdict("quiet", wordpiece("quiet", {"quiet": 0.1}), flagged=False, id="c1"),
    ]
    other = caught(verdict("x cf", wordpiece("x cf", {}), flagged=False, id="o1"), "cf", version="w1")
    records.append(dataclasses.replace(other, model_id="other@1"))
    return records


def test_known_triggers_section_shows_the_set_its_evidence_and_what_it_caught() -> None:
    builder = AuditHtmlBuilder()
    for record in known_traffic():
        builder.add(record)
    builder.add_trigger_set(known_set(), where="file triggers.json")
    page = builder.render()
    parse(page)
    section = page[page.index("<h2>Known triggers</h2>") : page.index("<h2>Flagged decisions")]
    assert section.count('class="panel known-panel"') == 2  # one panel per model
    ours, others = section.split('class="panel known-panel"')[1:]
    rows = known_rows(ours)
    # trigger: target, source, caught, flips / messages, probes, insertion, clean rate, first, last, learned
    assert rows["cf"] == [
        "0 (negative)",
        "learned",
        "3",
        "12 / 10",
        "3",
        "98% of 200 texts",
        "0.00%",
        "2026-03-01 10:30:00",
        "2026-03-01 12:30:00",
        "2026-03-01 12:30:00",
    ]
    assert rows["tq z"][:7] == ["1 (positive)", "learned", "2", "7 / 7", "0", "100% of 150 texts", "0.40%"]
    assert rows["james bond"] == ["–", "operator", "0", *["–"] * 7]
    assert rows["old"][:3] == ["–", "not in this set", "1"]  # fired under v1, no longer in the set
    assert list(rows)[:3] == ["cf", "tq z", "james bond"]  # the set's order, then what fired outside it
    assert "model tiny@0 · version v2, created 2026-03-01 12:30:00 UTC · from file triggers.json" in ours
    caught_line = (
        "<b>5</b> of 7 records of this model caught by a known trigger (set versions: v1 (1), v2 (4))"
    )
    assert caught_line in ours
    assert re.search(r"revoked \(not removed, never learned again\): .*fails.*uneven", ours)
    # the other model's catch gets its own panel, without a set: what fired, no evidence
    assert "model other@1" in others and "the set itself (the evidence, the revoked words) was not" in others
    assert known_rows(others) == {"cf": ["–", "–", "1", *["–"] * 7]} and "revoked (" not in others
    assert ">6</b><span>caught by a known trigger" in page  # 5 + the other model's

    # cards: caught ones marked apart from the one flagged by its score, with the set's version
    assert page.count('<div class="card known">') == 6 and page.count('<div class="card">') == 1
    assert page.count("badge known") == 6 and page.count('class="badge">flagged by its score') == 1
    assert 'known trigger <span class="ktrig">cf</span> removed (2 occurrences), set version v2' in page
    assert "flagged whatever its score (the score is above τ too)" in page  # k2 scored 5.0 > τ 1.0
    k1 = page[page.index('<span class="id">k1</span>') :].split('<div class="card')[0]
    assert "score 0.200 ≤ 1.000" in k1 and "above τ too" not in k1
    k4 = page[page.index('<span class="id">k4</span>') :].split('<div class="card')[0]
    assert 'known trigger <span class="ktrig">cf</span>, <span class="ktrig">tq z</span>' in k4


def test_known_triggers_section_only_when_there_is_something_to_show() -> None:
    plain = [verdict("x cf y", wordpiece("x cf y", {"cf": 2.0}), id="1")]
    assert "Known triggers" not in render_html(plain) and "caught by a known trigger" not in render_html(
        plain
    )
    builder = AuditHtmlBuilder()
    for record in plain:
        builder.add(record)
    builder.add_trigger_set(known_set(model_id="elsewhere@9"), where="file t.json")
    builder.add_trigger_set(None, where="topic triggers", model_id="tiny@0")
    page = builder.render()
    parse(page)
    assert "no records of this model in this report" in page  # the file names another model
    assert "no known-trigger set for this model at topic triggers" in page
    assert (
        "<b>0</b> of 1 records of this model caught" in page
        and ">0</b><span>caught by a known trigger" in page
    )
    with pytest.raises(ValueError, match="name the model"):
        builder.add_trigger_set(None, where="topic triggers")


def test_known_triggers_section_escapes_and_is_deterministic() -> None:
    hostile_set = known_set(model_id='m"><script>x</script>', version="<b>v</b>")
    record = dataclasses.replace(caught(hostile(), "cf", version="<i>v</i>"), model_id=hostile_set.model_id)

    def page() -> str:
        builder = AuditHtmlBuilder()
        builder.add(record)
        builder.add_trigger_set(hostile_set, where="file <x>.json")
        return builder.render()

    first = page()
    assert "script" not in parse(first).tags and "<b>v</b>" not in first and "<i>v</i>" not in first
    assert "version &lt;b&gt;v&lt;/b&gt;" in first and "from file &lt;x&gt;.json" in first
    assert "set version &lt;i&gt;v&lt;/i&gt;" in first
    assert first == page()


def test_wire_records_and_the_update_render_alike() -> None:
    """An AuditRecord / PredictionRecord off the wire counts like the core's Verdict."""
    base = {
        "model_id": "tiny@0",
        "label": 1,
        "label_name": "positive",
        "probabilities": [0.2, 0.8],
        "anomaly_score": 0.5,
        "threshold": 1.0,
        "final_label": 1,
        "final_label_name": "positive",
        "n_tokens": 4,
        "scored_at": "2026-03-01T00:00:00Z",
    }
    hit = {"known_triggers": [{"trigger": "cf", "start": 2, "end": 4}], "trigger_version": "v2"}
    records = [
        AuditRecord.model_validate({**base, **hit, "id": "w1", "text": "a cf", "flagged": True}),
        PredictionRecord.model_validate({**base, **hit, "id": "w2", "flagged": True}),  # counts, no card
        PredictionRecord.model_validate({**base, "id": "w3", "anomaly_score": 0.1}),
    ]
    builder = AuditHtmlBuilder()
    for record in records:
        builder.add(record)
    builder.add_trigger_set(known_set(), where="topic triggers")
    page = builder.render()
    parse(page)
    assert known_rows(page)["cf"][:3] == ["0", "learned", "2"]  # no record tells label 0's name
    assert (
        "<b>2</b> of 3 records of this model caught" in page and page.count('<div class="card known">') == 1
    )


def test_known_triggers_section_opens_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium)")
    builder = AuditHtmlBuilder()
    for record in known_traffic():
        builder.add(record)
    builder.add_trigger_set(known_set(), where="file triggers.json")
    report = tmp_path / "known.html"
    report.write_text(builder.render(), encoding="utf-8")
    dom = run_chromium(binary, ["--dump-dom", report.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h2>Known triggers</h2>" in dom.stdout and dom.stdout.count('<div class="card known">') == 6
    assert "Uncaught" not in dom.stderr and "Refused to" not in dom.stderr, dom.stderr[-2000:]
