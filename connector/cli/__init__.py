"""The `connector` command line. `main` is the console-script entry point."""

from connector.cli.main import cli, main

__all__ = ["cli", "main"]
