"""stream-guard's ML core: X-GRAAD attribution, the Defender and its parts. Knows nothing of Kafka.

Public API (imported lazily, so `import stream_guard.verdict` does not pull in torch):
`Defender`, `DefenderSettings`, `Threshold`, `Verdict`, `TokenAttribution`, `SuspiciousWord`,
`load_classifier`, `LoadedClassifier`, `attribute`, `Attribution`, and the errors.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Defender": "stream_guard.defender",
    "TextScores": "stream_guard.defender",
    "DefenderSettings": "stream_guard.settings",
    "Threshold": "stream_guard.threshold",
    "Verdict": "stream_guard.verdict",
    "TokenAttribution": "stream_guard.verdict",
    "SuspiciousWord": "stream_guard.verdict",
    "load_classifier": "stream_guard.loading",
    "LoadedClassifier": "stream_guard.loading",
    "attribute": "stream_guard.attribution",
    "Attribution": "stream_guard.attribution",
    "StreamGuardError": "stream_guard.errors",
    "ModelLoadError": "stream_guard.errors",
    "InvalidTextError": "stream_guard.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stream_guard' has no attribute {name!r}")
