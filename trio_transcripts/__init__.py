"""trio_transcripts: persist real-time Genesys Cloud call transcripts into InfluxDB with Trio.

The public API: :func:`run_worker` and :class:`Worker` to run the whole pipeline in a Trio
application, :func:`open_transcript_stream` for the coalesced utterances themselves,
:class:`Sink` to plug in a store of your own, :class:`Config` / :func:`load_config` to
configure, and the pure cores (:class:`Coalescer`, :class:`RingBuffer`, the parsers).
"""

from .backpressure import BackpressureQueue
from .coalesce import Coalescer, Duplicate
from .config import Config, ConfigErrors, load_config
from .model import Fragment, Merge, Utterance
from .ring import RingBuffer, RingFull
from .sinks import FatalSinkError, Sink
from .worker import Account, Worker, open_transcript_stream, run_worker

__version__ = "0.1.0"

__all__ = [
    "Account",
    "BackpressureQueue",
    "Coalescer",
    "Config",
    "ConfigErrors",
    "Duplicate",
    "FatalSinkError",
    "Fragment",
    "Merge",
    "RingBuffer",
    "RingFull",
    "Sink",
    "Utterance",
    "Worker",
    "__version__",
    "load_config",
    "open_transcript_stream",
    "run_worker",
]
