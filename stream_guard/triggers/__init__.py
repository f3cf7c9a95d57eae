"""The stream-level defense: triggers learned from the traffic, remembered, and neutralized in every
later message.

- :mod:`.phrases`: words of a text, normalized (case-folded, NFKC) with their character spans.
- :mod:`.known`: a versioned set of known triggers (words or phrases) and where they occur in a text.
- :mod:`.evidence`: what a flag or a probe tells a learner (a neutralized word flipped the prediction).
- :mod:`.insertion`: the insertion test only a backdoor trigger passes.
- :mod:`.learner`: counts evidence and promotes a word or phrase to a known trigger.

Kafka-free, like the rest of the core; the application moves evidence and trigger sets over topics.
"""

from stream_guard.triggers.evidence import Evidence
from stream_guard.triggers.known import KnownTrigger, TriggerHit, TriggerSet
from stream_guard.triggers.phrases import normalize_phrase, word_spans

__all__ = ["Evidence", "KnownTrigger", "TriggerHit", "TriggerSet", "normalize_phrase", "word_spans"]
