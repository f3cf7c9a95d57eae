"""The self-contained HTML audit report: escaping, odd records, determinism, and a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from schemas import AuditRecord, PredictionRecord
from stream_guard.audit_html import AuditHtmlBuilder, render_html, token_heatmap
from stream_guard.calibration import calibrate
from stream_guard.datasets import load_dataset
from stream_guard.defender import Defender
from stream_guard.lab.poisoning import BadNetsAttack, poison_test_set
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
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
