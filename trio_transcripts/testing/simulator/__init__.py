"""A Genesys Cloud simulator speaking the real wire formats (``server.py`` says how)."""

from .config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Faults, SimConfig, SimStats
from .server import Simulator
from .sockets import FRAGMENT_PATH

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "FRAGMENT_PATH",
    "Faults",
    "SimConfig",
    "SimStats",
    "Simulator",
]
