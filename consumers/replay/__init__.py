"""Offline replay: historical messages (files, topic ranges) -> the message pipeline -> sinks."""
