"""What the simulator is told (:class:`SimConfig`, :class:`Faults`) and what it counts.

The ``simulate`` command's flags are made from these fields (:func:`add_flags`,
:func:`from_args`): a field added here is a flag, with its help, without a second list.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, TypeVar, cast

DEFAULT_CLIENT_ID = "sim-client"
DEFAULT_CLIENT_SECRET = "sim-secret"


def _help(text: str, **extra: object) -> dict[str, object]:
    return {"help": text, **extra}


@dataclass
class Faults:
    handshake_401: int = field(
        default=0, metadata=_help("reject the first N WebSocket handshakes with 401")
    )
    token_429: int = field(
        default=0, metadata=_help("answer the first N token requests 429 (Retry-After: 1)")
    )
    token_500: int = field(default=0, metadata=_help("answer the next N token requests 500"))
    drop_every: int = field(
        default=0, metadata=_help("drop a socket (no close frame) after every N frames on it")
    )
    outage_s: float = field(
        default=0.0,
        metadata=_help("after each drop, refuse channel sockets (503) this long: an outage"),
    )
    socket_closing_after: int = field(
        default=0, metadata=_help("send v2.system.socket_closing after N frames, once")
    )
    socket_closing_grace_s: float = field(
        default=60.0, metadata=_help("close the old sockets this long after socket_closing")
    )
    silent: bool = field(default=False, metadata=_help("no heartbeats and no pongs"))
    slow_reader_s: float = field(
        default=0.0, metadata=_help("drop a socket whose send blocks longer than this")
    )
    malformed_every: int = field(
        default=0, metadata=_help("an invalid-JSON frame after every N frames")
    )
    oversized_every: int = field(default=0, metadata=_help("a 2 MiB frame after every N frames"))
    duplicate_finals: bool = field(default=False, metadata=_help("every final is sent twice"))
    no_redelivery: bool = field(
        default=False,
        metadata=_help(
            "as on the platform: a frame no socket could take is lost, not held for the next"
        ),
    )
    deny_transcription: bool = field(
        default=False, metadata=_help("transcription topics rejected: missing permission")
    )
    expired_urls: int = field(
        default=0, metadata=_help("the first N transcript URLs handed out have expired already")
    )
    deny_transcripts: bool = field(
        default=False, metadata=_help("post-call transcripts refused: missing permission (403)")
    )
    deny_analytics: bool = field(
        default=False,
        metadata=_help("conversation details refused: missing analytics:conversationDetail:view"),
    )


@dataclass
class SimConfig:
    host: str = field(default="127.0.0.1", metadata=_help("address to listen on"))
    port: int = field(default=0, metadata=_help("port to listen on; 0: a free one"))
    calls: int = field(default=3, metadata=_help("conversations"))
    utterances: int = field(default=6, metadata=_help("utterances per conversation"))
    seed: int = field(default=0, metadata=_help("the same seed, the same calls and frames"))
    card_call: bool = field(
        default=False,
        metadata=_help(
            "the first call's caller reads out a card number (the demo shows it redacted)"
        ),
    )
    rate: float = field(
        default=0.0, metadata=_help("frames per second across all calls; 0: unpaced")
    )
    source: str = field(
        default="notifications",
        metadata=_help("which stream to serve", choices=["notifications", "fragments"]),
    )
    client_id: str = field(default=DEFAULT_CLIENT_ID, metadata=_help("OAuth client id"))
    client_secret: str = field(
        default=DEFAULT_CLIENT_SECRET, repr=False, metadata=_help("OAuth client secret")
    )
    token_lifetime_s: int = field(default=86_400, metadata=_help("expires_in of each token"))
    channel_ttl_s: float = field(default=86_400.0, metadata=_help("lifetime of a channel"))
    heartbeat_s: float = field(default=30.0, metadata=_help("heartbeat interval"))
    start_after_sockets: int = field(
        default=1,
        metadata=_help("hold the first frame until this many sockets would take it (shards)"),
    )
    subscribe_wait_s: float = field(
        default=10.0,
        metadata=_help("how long a frame waits for a subscribed socket before it is skipped"),
    )
    queue_id: str | None = field(
        default=None, metadata=_help("announce each call on this queue's topic first")
    )
    epoch_ms: int | None = field(
        default=None, metadata=_help("the calls' start (epoch ms); default: now")
    )
    truth_path: Path | None = field(
        default=None, metadata=_help("JSON Lines of every finalized utterance")
    )
    replay_path: Path | None = field(
        default=None, metadata=_help("JSON Lines of frames to send verbatim")
    )
    exit_when_done: bool = field(default=False, metadata=_help("stop once every frame was sent"))
    speech_time: bool = field(
        default=False,
        metadata=_help(
            "send each frame when its moment in the call comes, as the platform does (the "
            "calls start now, call_spacing apart); otherwise at --rate"
        ),
    )
    call_spacing_s: float = field(default=1.0, metadata=_help("between two calls' starts"))
    batch_transcripts: float = field(
        default=0.0,
        metadata=_help(
            "how likely a transcript waits to go out with the next in one message, as the "
            "platform groups them (0: one a message)"
        ),
    )
    transcript_delay_s: float = field(
        default=2.0,
        metadata=_help("a call's post-call transcript is served this long after it ended"),
    )
    url_ttl_s: float = field(
        default=600.0, metadata=_help("how long a transcript's pre-signed URL is valid")
    )
    faults: Faults = field(default_factory=Faults)


@dataclass
class SimStats:
    frames_sent: int = 0
    finals_sent: int = 0
    frames_skipped: int = 0
    frames_lost: int = 0
    resent: int = 0
    drops: int = 0
    handshakes: int = 0
    rejected_handshakes: int = 0
    tokens_issued: int = 0
    channels_created: int = 0
    channels_replaced: int = 0  # the oldest without a socket, for a 21st
    subscription_puts: int = 0
    pings: int = 0


# --- flags from fields ------------------------------------------------------------------

T = TypeVar("T")


def flag_name(name: str) -> str:
    """``token_lifetime_s`` -> ``--token-lifetime``; ``truth_path`` -> ``--truth``."""
    return "--" + name.removesuffix("_s").removesuffix("_path").replace("_", "-")


def _value_type(hint: Any) -> Any:
    if isinstance(hint, UnionType):
        (value,) = (t for t in typing.get_args(hint) if t is not NoneType)
        return value
    return hint


def add_flags(parser: argparse._ActionsContainer, cls: type[Any]) -> None:
    """One flag per field of the dataclass ``cls`` (nested dataclasses are skipped)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = _value_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            continue
        options: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help")}
        if kind is bool:
            parser.add_argument(flag_name(f.name), action="store_true", **options)
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.name.endswith("_s"):
            options["metavar"] = "SECONDS"
        elif kind is int:
            options["metavar"] = "N"
        elif kind is Path:
            options["metavar"] = "FILE"
        if "choices" in f.metadata:
            options["choices"] = f.metadata["choices"]
        parser.add_argument(flag_name(f.name), type=kind, default=default, **options)


def from_args(cls: type[T], args: argparse.Namespace, **nested: object) -> T:
    """An instance of ``cls`` from the flags :func:`add_flags` made, plus ``nested`` fields."""
    fields = dataclasses.fields(cast(Any, cls))
    values = {f.name: getattr(args, f.name) for f in fields if hasattr(args, f.name)}
    return cls(**values, **nested)
