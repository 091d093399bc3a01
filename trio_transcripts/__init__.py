"""trio_transcripts: persist real-time Genesys Cloud call transcripts into InfluxDB with Trio."""

from .backpressure import BackpressureQueue
from .coalesce import Coalescer, Duplicate
from .model import Fragment, Merge, Utterance
from .ring import RingBuffer, RingFull

__version__ = "0.1.0"

__all__ = [
    "BackpressureQueue",
    "Coalescer",
    "Duplicate",
    "Fragment",
    "Merge",
    "RingBuffer",
    "RingFull",
    "Utterance",
    "__version__",
]
