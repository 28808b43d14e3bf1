"""Errors a user can act on: the CLI prints their message as a one-line cause."""


class UserError(Exception):
    """An input, file or state problem the user can fix; the message names it."""


class VersionUnavailable(UserError):
    """A table version a lineage records can no longer be read: its log or files were removed.

    Raised by the table catalogs (``runtime/catalog_base.version_unavailable`` writes the message)
    and caught by the core (``governance reproduce`` reports it), which imports no adapter."""

    def __init__(self, table: str, version: int, message: str):
        self.table, self.version = table, int(version)
        super().__init__(message)
