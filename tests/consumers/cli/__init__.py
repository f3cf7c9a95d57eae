"""Tests of consumers.cli."""
