"""Errors a user can act on: the CLI prints their message as a one-line cause."""


class UserError(Exception):
    """An input, file or state problem the user can fix; the message names it."""
