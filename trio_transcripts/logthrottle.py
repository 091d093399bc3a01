"""Repeated log lines, rate-limited: the first of a kind at once, the rest as one count.

A flood (20,000 malformed frames, a socket lost again and again) would otherwise write one
WARNING line per occurrence: the log becomes the flood's copy, and writing it costs more than
setting the frames aside (issue 21's profile: ``benchmarks/README.md``). As Vector's
``internal_log_rate_limit``, each kind of line (a key) has a window of ``interval_s``:

- the first occurrence with no window open is logged in full, and opens one;
- the rest inside the window are counted, the first of them kept as the example;
- when the window has run its course with something counted, one summary line says how many
  and quotes the first ("set aside 12,345 malformed frames in the last 10 s; first: ..."),
  and a new window opens at once, so a flood that goes on gives one line an interval; a
  window that counted nothing closes, and the next occurrence is logged in full again.

:class:`LogThrottle` is that rule, pure (times are given, nothing is logged): the tests
drive it with chosen instants. :class:`Repeats` is its edge: it formats and logs, on the
monotonic clock. Summaries are due when the next occurrence of their kind comes, when the
owner calls :meth:`Repeats.flush_due` (the worker's sweeper, each second) and, all of them,
at :meth:`Repeats.flush` (shutdown). Only the log is throttled: every occurrence is still
counted where it is accounted (dead letters, the account, metrics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 10.0
"""One line per kind at most this often, after the first (Vector's default is 10 s too)."""


@dataclass(frozen=True)
class Summary:
    """``count`` occurrences of ``key`` not logged in full over ``seconds``; ``first`` is the
    first of them, as it would have been logged."""

    key: str
    count: int
    first: str
    seconds: float


@dataclass
class _Window:
    opened: float
    count: int = 0
    first: str = ""


class LogThrottle:
    """The rule of the module docstring, for any number of keys (pure)."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._windows: dict[str, _Window] = {}

    def note(self, key: str, now: float, text: str) -> tuple[bool, Summary | None]:
        """One occurrence of ``key`` at ``now``, ``text`` as it would be logged: whether to
        log it in full, and the summary of ``key``'s last window if that window is over."""
        window = self._windows.get(key)
        summary = None
        if window is not None and now - window.opened >= self.interval_s:
            summary = self._close(key, window, now)
            window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(now)
            return summary is None, summary
        if not window.count:
            window.first = text
        window.count += 1
        return False, summary

    def due(self, now: float) -> list[Summary]:
        """The summaries of every window whose interval is over at ``now``."""
        over = [(k, w) for k, w in self._windows.items() if now - w.opened >= self.interval_s]
        return [s for k, w in over if (s := self._close(k, w, now)) is not None]

    def drain(self, now: float) -> list[Summary]:
        """Every window closed now, whatever its age (shutdown): what each counted."""
        windows = self._windows.items()
        summaries = [Summary(k, w.count, w.first, now - w.opened) for k, w in windows if w.count]
        self._windows.clear()
        return summaries

    def _close(self, key: str, window: _Window, now: float) -> Summary | None:
        if not window.count:
            del self._windows[key]
            return None
        self._windows[key] = _Window(now)  # still going: count on, without a full line
        return Summary(key, window.count, window.first, now - window.opened)


@dataclass(frozen=True)
class Repeated:
    """One kind of repeated line: its key, and its summary as a ``str.format`` template
    with ``count``, ``seconds`` and ``first`` (the first line not logged in full)."""

    key: str
    summary: str


class Repeats:
    """A :class:`LogThrottle` that logs: one per worker, passed to the parts that log floods."""

    def __init__(
        self,
        *,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._throttle = LogThrottle(interval_s)
        self._clock = clock
        self._where: dict[str, tuple[logging.Logger, int, Repeated]] = {}

    def log(self, logger: logging.Logger, level: int, kind: Repeated, text: str) -> None:
        """``text`` at ``level`` on ``logger``, or counted into ``kind``'s next summary."""
        self._where[kind.key] = (logger, level, kind)
        full, summary = self._throttle.note(kind.key, self._clock(), text)
        if summary is not None:
            self._say(summary)
        if full:
            logger.log(level, "%s", text, stacklevel=2)  # the record names the caller

    def flush_due(self) -> None:
        for summary in self._throttle.due(self._clock()):
            self._say(summary)

    def flush(self) -> None:
        for summary in self._throttle.drain(self._clock()):
            self._say(summary)

    def _say(self, summary: Summary) -> None:
        logger, level, kind = self._where[summary.key]
        logger.log(
            level,
            "%s",
            kind.summary.format(count=summary.count, seconds=summary.seconds, first=summary.first),
            stacklevel=3,
        )
