"""Tests of consumers.audit."""
