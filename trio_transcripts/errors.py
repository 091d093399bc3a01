"""The errors that end a run: one base class, so the CLI and the worker catch them by name.

A :class:`FatalError` means retrying cannot help: the message says what was refused, by
whom, and which setting to check. Everything transient (a dropped socket, a 503, a database
restarting) is retried where it happens and never surfaces as one of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Utterance


class FatalError(Exception):
    """A run cannot go on; the message says what to change."""


def first_fatal(group: BaseExceptionGroup[BaseException]) -> FatalError | None:
    """The first :class:`FatalError` in ``group``, however deeply nested (each nursery on
    the way wraps what its tasks raised in a group of its own)."""
    for exc in group.exceptions:
        if isinstance(exc, FatalError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := first_fatal(exc)) is not None:
            return found
    return None


class DataNotKept(FatalError):
    """The run ended with records no file took because the disk was still full at shutdown (the
    dead-letter file's, the state directory's): the message says how many of each kind and
    which files refused them. An error that waiting cannot fix (a read-only directory) is a
    plain :class:`FatalError`, exit 1, with the same counts. Its exit code is
    :data:`EXIT_NOT_KEPT`, so a supervisor (``supervisor.py``) or systemd
    (``Restart=on-failure``) restarts the worker, which then finds the disk again, and a
    script can tell it from a refusal (1)."""

    def __init__(self, message: str, lost: dict[str, int]) -> None:
        super().__init__(message)
        self.lost = dict(lost)


EXIT_NOT_KEPT = 74  # sysexits.h EX_IOERR: "an error occurred while doing I/O on some file"


class ConfigError(FatalError):
    """Settings that are missing, invalid or ambiguous; ``problems`` lists each, with an
    example of a valid value. Secrets are never part of the text."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class AuthError(FatalError):
    """The Genesys login host refused our credentials."""


class SourceError(FatalError):
    """A source cannot go on: a permission or a setting that retrying cannot fix."""


class FatalSinkError(FatalError):
    """The sink cannot go on (bad credentials, a missing bucket, a failing disk).

    ``unwritten`` holds the utterances of the batch being written, so the caller sets them
    aside (the dead-letter file) rather than losing them.
    """

    def __init__(self, message: str, unwritten: Sequence[Utterance] = ()) -> None:
        super().__init__(message)
        self.unwritten = list(unwritten)
