"""The worker's lifecycle, planned: which stage it is in, and what each event makes it do.
Pure: no Trio, no clock.

In the spirit of h11's ``_state.py`` (and of ``channels.py``'s :data:`AFTER_SOCKET`), every
transition lives in one table, :data:`AFTER`; ``worker.py`` tells :class:`Lifecycle` what
happened and carries out the :class:`Do` it returns. The stages follow the ordered shutdown
of the worker's docstring:

* ``STARTING``: a token, then the sink ready (:attr:`Lifecycle.waiting` says which);
* ``RUNNING``: frames are read;
* ``DRAINING``: no frame is read any more; the writer drains the ring within the deadline;
* ``HURRIED``: the writer was cancelled (a second SIGINT, or the deadline passed); what it
  held is dead-lettered;
* ``CLOSING``: the writer is done; the long-lived services (token refresher, spool replay,
  dead-letter writer) are cancelled, last, and the dead letters still queued are written;
* ``CLOSED``.

A stop, a hurry or a fatal error can come at any stage (a signal, a host, a task that
failed); the table says what each means there. The first fatal error is the run's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import FatalError


class Stage(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    HURRIED = "hurried"
    CLOSING = "closing"
    CLOSED = "closed"


class Event(enum.Enum):
    STARTED = "the sink is ready"
    STOP = "stop (a signal, stop(), a host cancelling)"
    HURRY = "hurry (a second SIGINT)"
    FATAL = "a fatal error"
    DEADLINE = "the shutdown deadline passed with the writer still writing"
    DRAINED = "the writer is done"
    CLOSED = "the services are stopped and the files closed"


class Do(enum.Enum):
    """What the worker carries out, in the order given."""

    WARN_WAITING = "log what the worker was still waiting for, if anything"
    CANCEL_STARTUP = "cancel the wait for a token or the sink"
    SHIELD_SERVICES = "shield the services, so they outlive the drain"
    STOP_READING = "cancel the source and the tasks beside it"
    CANCEL_WRITER = "cancel the writer; it dead-letters what it held"
    CANCEL_SERVICES = "cancel the services, last"


_STOP_EARLY = (Do.WARN_WAITING, Do.CANCEL_STARTUP, Do.STOP_READING)
_STOP = (Do.WARN_WAITING, Do.STOP_READING)

AFTER: dict[tuple[Stage, Event], tuple[Stage, tuple[Do, ...]]] = {
    # (stage, event) -> (next stage, what to do). A missing pair cannot happen (a writer is
    # not done before the drain began), and :meth:`Lifecycle.handle` says so if it does.
    (Stage.STARTING, Event.STARTED): (Stage.RUNNING, (Do.SHIELD_SERVICES,)),
    # A stop in the same scheduler turn as the sink's last await: the wait for it was over
    # before the cancellation could reach it. Started all the same (the services then outlive
    # the drain, as after any start), and nothing is read.
    **{(s, Event.STARTED): (s, (Do.SHIELD_SERVICES,)) for s in (Stage.DRAINING, Stage.HURRIED)},
    (Stage.STARTING, Event.STOP): (Stage.DRAINING, _STOP_EARLY),
    (Stage.STARTING, Event.FATAL): (Stage.DRAINING, _STOP_EARLY),
    (Stage.STARTING, Event.HURRY): (Stage.HURRIED, (*_STOP_EARLY, Do.CANCEL_WRITER)),
    # Running, the source may still wait for something (a channel): that is logged too.
    (Stage.RUNNING, Event.STOP): (Stage.DRAINING, _STOP),
    (Stage.RUNNING, Event.FATAL): (Stage.DRAINING, _STOP),
    (Stage.RUNNING, Event.HURRY): (Stage.HURRIED, (*_STOP, Do.CANCEL_WRITER)),
    (Stage.DRAINING, Event.STOP): (Stage.DRAINING, ()),
    (Stage.DRAINING, Event.FATAL): (Stage.DRAINING, ()),
    (Stage.DRAINING, Event.HURRY): (Stage.HURRIED, (Do.CANCEL_WRITER,)),
    (Stage.DRAINING, Event.DEADLINE): (Stage.HURRIED, (Do.CANCEL_WRITER,)),
    (Stage.DRAINING, Event.DRAINED): (Stage.CLOSING, (Do.CANCEL_SERVICES,)),
    **{
        (Stage.HURRIED, e): (Stage.HURRIED, ())
        for e in (Event.STOP, Event.FATAL, Event.HURRY, Event.DEADLINE)
    },
    (Stage.HURRIED, Event.DRAINED): (Stage.CLOSING, (Do.CANCEL_SERVICES,)),
    # A task may still fail (or a signal come) while the services stop and files close.
    **{
        (stage, e): (stage, ())
        for stage in (Stage.CLOSING, Stage.CLOSED)
        for e in (Event.STOP, Event.FATAL, Event.HURRY)
    },
    (Stage.CLOSING, Event.CLOSED): (Stage.CLOSED, ()),
    # The drain itself failed (a bug): the files are closed all the same, and its error, not
    # this table's, is what the run raises.
    **{(s, Event.CLOSED): (Stage.CLOSED, ()) for s in (Stage.DRAINING, Stage.HURRIED)},
}


@dataclass
class Lifecycle:
    """Where the worker is; the one record of it (see the module docstring)."""

    stage: Stage = Stage.STARTING
    waiting: str | None = "the start"  # while starting: what for
    fatal: FatalError | None = None  # the first fatal error, raised at the end of the run
    shielded: bool = False  # the services outlive the drain (once the sink was ready)

    def handle(self, event: Event, error: FatalError | None = None) -> tuple[Do, ...]:
        """Move on after ``event`` (``error`` with :attr:`Event.FATAL`); what to do now."""
        try:
            stage, actions = AFTER[(self.stage, event)]
        except KeyError:
            raise RuntimeError(f"{event.value} cannot happen while {self.stage.value}") from None
        if error is not None and self.fatal is None:
            self.fatal = error
        self.stage = stage
        if stage is not Stage.STARTING:
            self.waiting = None
        if Do.SHIELD_SERVICES in actions:
            self.shielded = True
        return actions

    def starting(self, what: str) -> None:
        """Startup now waits for ``what``."""
        if self.stage is Stage.STARTING:
            self.waiting = what

    @property
    def stopping(self) -> bool:
        """A stop was asked for (or the run ended): no frame is read any more."""
        return self.stage not in (Stage.STARTING, Stage.RUNNING)

    @property
    def services_shielded(self) -> bool:
        """Services started now outlive the drain: once the sink was ready. Not before (a
        stop or a host cancelling during startup ends them at once, or a token refresher
        that cannot reach its login host would hold the run forever)."""
        return self.shielded
