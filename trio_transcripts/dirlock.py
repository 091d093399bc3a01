"""One worker to a directory: an exclusive lock on the state directory and on the spool.

Two workers on one state directory would each rewrite the other's journal and gap queue, and
two on one spool would replay and remove files the other is still appending to. Each takes
``flock(LOCK_EX | LOCK_NB)`` on ``<dir>/.lock`` for as long as it uses the directory; the
second is refused at start with the path, the holder's pid and what to change. The kernel
drops the lock when its holder dies, so a crash (even SIGKILL) leaves nothing to clean up.
The default state directory is ``./state``: two runs started from one directory share it and
the second is refused (``README.md``); ``--workers`` gives each child its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import FatalError

LOCK_FILE = ".lock"


class DirectoryInUse(FatalError):
    """Another worker holds the directory."""


class DirectoryLock:
    """The lock of ``directory`` (``what`` it is, and the ``setting`` that chooses it, for the
    message). Synchronous and instant: a refusal does not wait."""

    def __init__(self, directory: Path, what: str, setting: str) -> None:
        self.path = Path(directory) / LOCK_FILE
        self.what = what
        self.setting = setting
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DirectoryInUse` (``OSError`` when the directory
        cannot be made or written)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryInUse(
                f"the {self.what} {self.path.parent.resolve()} is in use by another worker "
                f"(pid {holder}); give each worker its own {self.setting} (the default is "
                f"relative to the working directory, so two runs started from one directory "
                f"share it), or stop the other one"
            ) from None
        self._fd = fd
        with contextlib.suppress(OSError):  # the pid is for the message; a full disk keeps it out
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # and the lock with it
            self._fd = None
