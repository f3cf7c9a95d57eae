"""Tests of consumers.calibrate."""
