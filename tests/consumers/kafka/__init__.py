"""Tests of consumers.kafka."""
