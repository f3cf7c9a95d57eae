"""Tests of stream_guard.triggers."""
