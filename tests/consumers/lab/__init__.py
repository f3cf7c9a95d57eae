"""Tests of consumers.lab."""
