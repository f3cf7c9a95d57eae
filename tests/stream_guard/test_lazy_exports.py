"""Lazy package exports: a name resolves to the attribute of its module; others raise AttributeError."""

from __future__ import annotations

import pytest

import stream_guard
import stream_guard.bench
from stream_guard.lazy_exports import lazy_getattr


def test_names_resolve_to_their_modules_attribute():
    getattr_ = lazy_getattr("pkg", {"Threshold": "stream_guard.threshold"})
    from stream_guard.threshold import Threshold

    assert getattr_("Threshold") is Threshold
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'Nope'"):
        getattr_("Nope")


def test_every_public_name_of_the_packages_resolves():
    for package in (stream_guard, stream_guard.bench):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
    with pytest.raises(AttributeError):
        _ = stream_guard.bench.nothing_here
