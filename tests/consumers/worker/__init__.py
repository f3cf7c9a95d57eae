"""Tests of consumers.worker."""
