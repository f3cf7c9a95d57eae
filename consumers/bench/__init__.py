"""The broker part of `stream-guard bench`: the scoring worker measured end to end."""
