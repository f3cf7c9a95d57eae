"""Thin wrappers around confluent-kafka: connection settings, topic admin, one topic reader."""
