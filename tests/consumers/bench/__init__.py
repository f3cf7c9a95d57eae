"""Tests of consumers.bench."""
