"""Tests of consumers.learn."""
