"""Errors a user can fix. Each message is one line naming the thing and the fix."""
from __future__ import annotations

__all__ = ["CheckpointError", "DataError", "DatabaseError", "DatabaseLockedError", "RetcoreError", "Terminated"]


class RetcoreError(Exception):
    """Base class: a problem with the user's input, shown without a traceback."""


class DataError(RetcoreError):
    """A dataset, image, manifest or mask problem."""


class CheckpointError(RetcoreError):
    """A model checkpoint that is missing, unreadable or of the wrong architecture."""


class DatabaseError(RetcoreError):
    """The results database is missing, locked, or of an unknown schema."""


class DatabaseLockedError(DatabaseError):
    """The results database stayed locked by another connection or process past the wait."""


class Terminated(KeyboardInterrupt):
    """The job got SIGTERM (``kill``, ``timeout``, ``docker stop``, a batch scheduler): handled like
    Ctrl-C (the run is recorded as interrupted and can be resumed), exit code 143."""
