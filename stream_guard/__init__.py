"""stream-guard's ML core: X-GRAAD attribution, the Defender and its parts. Knows nothing of Kafka.

Public API (imported lazily, so `import stream_guard.verdict` does not pull in torch):
`Defender`, `DefenderSettings`, `Threshold`, `Verdict`, `TokenAttribution`, `SuspiciousWord`, `TextScores`,
`load_classifier`, `LoadedClassifier`, `attribute`, `Attribution`, and the errors.
"""

from __future__ import annotations

from stream_guard.lazy_exports import lazy_getattr

_EXPORTS = {
    "Defender": "stream_guard.defender",
    "TextScores": "stream_guard.scores",
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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
