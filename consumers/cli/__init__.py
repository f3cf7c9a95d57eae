"""The `stream-guard` command: one typer app and a module per command."""
