"""Tests of consumers.pipeline."""
