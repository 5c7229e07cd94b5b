"""Exceptions of flinq's durable store.

Queue operations raise the stdlib's own queue.Empty, queue.Full and
ShutDown; these classes cover what only a store can get wrong.
"""

__all__ = [
    "StoreClosedError",
    "StoreConnectionError",
    "StoreCorruptError",
    "StoreError",
    "StoreForkedError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StorePermissionError",
    "StoreVersionError",
    "StoreWriteError",
]


class StoreError(Exception):
    """Base class of every error about a durable store."""


class StoreClosedError(StoreError):
    """The store, or a queue of it, was used after close()."""


class StoreConnectionError(StoreError, ConnectionError):
    """A store's server cannot be reached, or the connection to it was lost
    (a Redis store); the message names the server, never its password."""


class StoreForkedError(StoreError):
    """The store was opened in a parent process; reopen it in this one."""


class StoreLockedError(StoreError):
    """Another process or Store already has this path open for writing."""


class StorePermissionError(StoreError, PermissionError):
    """The store's files cannot be opened safely or with the rights needed:
    a read-only directory, a directory others may write to, or a file
    planted there as a symbolic link."""


class StoreCorruptError(StoreError):
    """The path is not a flinq store, or its files are damaged."""


class StoreNotFoundError(StoreCorruptError):
    """The path holds no flinq store: nothing there, or something else."""


class StoreVersionError(StoreError):
    """The store was written by a newer version of flinq's format, or its
    server is too old for the backend (a Redis server before 6.2)."""


class StoreWriteError(StoreError):
    """The writer could not commit (for example, the disk is full), or its
    thread failed: the store then refuses further writes."""
