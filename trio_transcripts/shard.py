"""Shards: which conversations a worker follows, by a stable hash. Pure.

A conversation belongs to shard ``blake2b(conversationId, 8 bytes) mod N`` (the digest read
big-endian): the same on every machine and Python version, unlike ``hash()``. ``--shard I/N``
(``SHARD``, shards numbered from 0) makes a worker follow only its own conversations: it
subscribes only to those of ``CONVERSATION_ID``, and of what a watched queue announces it
takes only its own. ``auto/N`` takes ``I`` from a host name ending in ``-I`` (a Kubernetes
StatefulSet's pod ``transcripts-2``).

Every shard holds channels of its own, and an OAuth client may hold at most
:data:`CHANNELS_PER_CLIENT`: :func:`budget_problem` refuses a configuration that cannot fit.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

CHANNELS_PER_CLIENT = 20
TOPICS_PER_CHANNEL = 1000

_SHARD = re.compile(r"^(\d+|auto)/(\d+)$")
_ORDINAL = re.compile(r"-(\d+)$")


def shard_of(conversation_id: str, count: int) -> int:
    digest = hashlib.blake2b(conversation_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def owns(self, conversation_id: str) -> bool:
        return shard_of(conversation_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, hostname: str) -> Shard:
    """``I/N`` or ``auto/N``; :class:`ValueError` saying what is wrong, with an example."""
    match = _SHARD.match(text.strip())
    if match is None:
        raise ValueError(f"SHARD must be I/N or auto/N, e.g. 2/8 (got {text!r})")
    count = int(match.group(2))
    if count < 1:
        raise ValueError(f"SHARD {text!r}: the number of shards must be at least 1")
    if match.group(1) == "auto":
        ordinal = _ORDINAL.search(hostname)
        if ordinal is None:
            raise ValueError(
                f"SHARD {text!r}: the host name {hostname!r} does not end in -<number> "
                f"(a StatefulSet pod, e.g. transcripts-2); give the index, e.g. 2/{count}"
            )
        index = int(ordinal.group(1))
    else:
        index = int(match.group(1))
    if index >= count:
        raise ValueError(f"SHARD {text!r}: the index must be below {count} (shards count from 0)")
    return Shard(index, count)


def channels_needed(topics: int) -> int:
    return max(1, math.ceil(topics / TOPICS_PER_CHANNEL))


def budget_problem(
    shard: Shard | None, conversations: Sequence[str], queues: Sequence[str]
) -> str | None:
    """Why ``shard``'s siblings together cannot fit one OAuth client's channels, if so.

    Each of the N shards needs channels for its own conversations and every watched queue;
    all N share the client's :data:`CHANNELS_PER_CLIENT`.
    """
    count = shard.count if shard is not None else 1
    per_shard = [len(queues)] * count
    for conversation in conversations:
        per_shard[shard_of(conversation, count)] += 1
    needed = max(channels_needed(topics) for topics in per_shard)
    if count * needed <= CHANNELS_PER_CLIENT:
        return None
    return (
        f"{count} shard(s) x {needed} channel(s) each = {count * needed} channels, more than "
        f"the {CHANNELS_PER_CLIENT} one OAuth client may hold ({TOPICS_PER_CHANNEL} topics "
        f"each): give groups of shards OAuth clients of their own (GENESYS_CLIENT_ID), or "
        f"follow fewer conversations per worker"
    )
