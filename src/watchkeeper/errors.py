"""The exceptions watchkeeper raises, one tree::

    WatchkeeperError
    ├── UsageError              an API called out of order (log before init, log after finish)
    └── StoreError              the store cannot be opened or written
        ├── SchemaOutdatedError     the database is on an older schema: the message names the upgrade command
        └── SchemaTooNewError       the database was written by a newer watchkeeper

Values that cannot be logged raise the built-in ``TypeError`` or ``ValueError`` with the key and the type in
the message, as Python code expects. Errors of third-party libraries (SQLAlchemy, sqlite3, psycopg) are
re-raised as ``StoreError`` with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class WatchkeeperError(Exception):
    """Base class of every exception raised by watchkeeper itself."""


class UsageError(WatchkeeperError, RuntimeError):
    """An API was called out of order, e.g. ``wk.log`` before ``wk.init``."""


class StoreError(WatchkeeperError):
    """The store could not be opened, read or written.

    ``transient`` is True when trying again may succeed (the database is locked, restarting, unreachable),
    False when the same request will fail again (it violates a constraint): a writer retries the first kind
    and gives up on the second.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class SchemaOutdatedError(StoreError):
    """The database is on an older schema revision than this version of watchkeeper needs."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer watchkeeper than this one."""
