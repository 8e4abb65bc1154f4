"""`python -m secmon` is the `secmon` command."""

from .cli.main import main

main()
