"""`python -m consumers.cli [COMMAND] ...`: the `stream-guard` command without the console script."""

from consumers.cli.app import main

main()
