"""Tests of consumers.replay."""
