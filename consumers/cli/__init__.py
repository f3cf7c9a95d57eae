"""The `stream-guard` command: a module per command; `consumers.cli.app` registers them on one app."""
