"""trio_transcripts: persist real-time Genesys Cloud call transcripts into InfluxDB with Trio.

The public API: :func:`run_worker` and :func:`assemble` (a :class:`Worker` from a
:class:`Config`) to run the whole pipeline in a Trio application, :func:`open_transcript_stream`
for the coalesced utterances themselves, :class:`Sink` (with :class:`WriteResult`) to plug in
a store of your own, :class:`Source` for another stream, :class:`Config` / :func:`load_config`
to configure, :class:`FatalError` and its kinds, and the pure cores (:class:`Coalescer`,
:class:`RingBuffer`, :class:`Router`). Test helpers (the simulator, an influxd launcher) are
in :mod:`trio_transcripts.testing`.
"""

from .account import Account
from .assemble import assemble
from .backpressure import BackpressureQueue
from .coalesce import Coalescer, Duplicate
from .config import Config, WorkerSettings, load_config
from .embed import open_transcript_stream, run_worker
from .errors import AuthError, ConfigError, FatalError, FatalSinkError, SourceError
from .model import Fragment, Merge, Utterance
from .ring import RingBuffer, RingFull
from .router import Router
from .sinks import Rejected, Sink, WriteResult
from .sources import Gap, Source
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AuthError",
    "BackpressureQueue",
    "Coalescer",
    "Config",
    "ConfigError",
    "Duplicate",
    "FatalError",
    "FatalSinkError",
    "Fragment",
    "Gap",
    "Merge",
    "Rejected",
    "RingBuffer",
    "RingFull",
    "Router",
    "Sink",
    "Source",
    "SourceError",
    "Utterance",
    "Worker",
    "WorkerSettings",
    "WriteResult",
    "__version__",
    "assemble",
    "load_config",
    "open_transcript_stream",
    "run_worker",
]
