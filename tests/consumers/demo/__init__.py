"""Tests of consumers.demo."""
