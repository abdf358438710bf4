"""The errors `python -m compare` turns into a one-line message and an exit status (see compare/cli.py)."""


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""
