"""Tests of consumers.devtools."""
