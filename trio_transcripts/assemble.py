"""From a :class:`~trio_transcripts.config.Config` to a :class:`~trio_transcripts.worker.Worker`.

The one place that decides which parts a configuration means: the token manager (Genesys
credentials), the source (the fragment stream when ``GENESYS_STREAM_URL`` is set, else the
Notifications API), the sink (InfluxDB when ``INFLUX_URL`` is set, else the line-protocol
file; or the caller's own), the durable spool around it (``--spool``) and the dead-letter
file, and the backfill of the live stream's gaps (``backfill.py``: on for the Notifications
source, its gap records in ``state_path``). The worker itself only runs what it is given.
"""

from __future__ import annotations

import logging

import trio

from .auth import Credentials, TokenManager
from .backfill import RETRY_CAP_S, Backfiller, BackfillSettings, StoredLookup
from .completeness import Completeness
from .config import Config
from .diskfull import Disk
from .errors import SourceError
from .gapfill import StoredUtterance
from .gaprecords import BackfillQueue
from .influx_settings import Api
from .journal import Journal
from .logthrottle import Repeats
from .postcall import PostCallClient
from .retry import Backoff
from .sinks import Sink
from .sinks.deadletter import DeadLetters
from .sinks.file import FileSink
from .sinks.influx import InfluxSink
from .sources import Source
from .sources.fragment_stream import FragmentStreamSettings, FragmentStreamSource
from .sources.notifications import NotificationsSettings, NotificationsSource
from .spool import Spool, spool_unusable
from .stored import read_file, read_influx
from .worker import Worker, WriteObserver

log = logging.getLogger("trio_transcripts")


def token_manager(config: Config) -> TokenManager | None:
    """Genesys tokens, when the configuration has credentials (the fragment stream may not)."""
    if not (config.client_id and config.client_secret and config.login_url):
        return None
    return TokenManager(Credentials(config.client_id, config.client_secret, config.login_url))


def configured_source(
    config: Config,
    tokens: TokenManager | None,
    completeness: Completeness | None = None,
    repeats: Repeats | None = None,
) -> Source:
    if config.stream_url:
        conversation = config.conversation_ids[0] if config.conversation_ids else None
        return FragmentStreamSource(
            FragmentStreamSettings(config.stream_url, conversation), tokens, repeats=repeats
        )
    if tokens is None or not config.api_url:
        raise SourceError(
            "the Notifications source needs GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET and a "
            "region or GENESYS_API_URL"
        )
    conversations = config.conversation_ids
    if config.shard is not None:
        conversations = tuple(c for c in conversations if config.shard.owns(c))
    settings = NotificationsSettings(
        config.api_url,
        conversations,
        config.queue_ids,
        heartbeat_timeout_s=config.heartbeat_timeout_s,
        shard=config.shard,
        keepalive_s=config.keepalive_s,
        silence_margin_s=config.silence_margin_s,
        liveness_check_s=min(NotificationsSettings.liveness_check_s, config.keepalive_s / 10),
        decorated_text=config.text == "decorated",
    )
    report = completeness.report if completeness is not None else None
    return NotificationsSource(settings, tokens, report=report, repeats=repeats)


def configured_sink(
    config: Config, disk: Disk | None = None, repeats: Repeats | None = None
) -> Sink:
    """The configured store: InfluxDB, or the line-protocol file (its refusals on ``disk``)."""
    if config.influx is not None:
        return InfluxSink(config.influx, repeats=repeats)
    return FileSink(config.output_path, config.schema, disk=disk)


def spool(config: Config) -> Spool | None:
    """The durable spool, when ``--spool`` is set."""
    if config.spool_dir is None:
        return None
    try:
        return Spool(config.spool_dir, max_bytes=config.spool_max_bytes)
    except OSError as exc:
        raise spool_unusable(config.spool_dir, exc) from exc


def stored_lookup(config: Config) -> StoredLookup:
    """What the configured store holds of a conversation (``stored.py``, in a thread)."""

    def read(conversation_id: str) -> list[StoredUtterance]:
        if config.influx is not None:
            rows = read_influx(config.influx, conversation_id, None)
        elif config.output_path.exists():
            rows = read_file(config.output_path, conversation_id, None)
        else:
            rows = []
        return [row.stored() for row in rows]

    async def lookup(conversation_id: str) -> list[StoredUtterance]:
        return await trio.to_thread.run_sync(read, conversation_id)

    return lookup


def backfills(config: Config, tokens: TokenManager | None) -> bool:
    """Whether ``config`` asks for the backfill and has what it needs: the Genesys API, and a
    store it can read back (``stored.py`` does not read InfluxDB 3.x yet: one line says so)."""
    if not (config.backfill and not config.stream_url and tokens and config.api_url):
        return False
    if config.influx is not None and config.influx.api() is Api.V3:
        log.warning(
            "backfill off: it compares post-call transcripts with what is stored, and reading "
            "InfluxDB 3.x back is not supported yet; gaps are logged and counted only"
        )
        return False
    return True


def assemble(
    config: Config,
    *,
    store: Sink | None = None,
    observer: WriteObserver | None = None,
    disk: Disk | None = None,
    repeats: Repeats | None = None,
) -> Worker:
    """The worker ``config`` describes; ``store`` replaces the configured sink (the spool,
    when configured, still goes around it); ``observer`` is told of every write (metrics).
    A ``store`` of the caller's that writes files or logs floods takes the worker's ``disk``
    and ``repeats`` (``demo.py``): given here, they are the ones the worker reports."""
    tokens = token_manager(config)
    disk = disk or Disk()  # every file below is written through it: which a full disk refuses
    repeats = repeats or Repeats()  # every part's flood of one kind of line: one line an interval
    dead_letters = DeadLetters(config.dead_letter_path, schema=config.schema, disk=disk)
    # The backfill compares with what is stored, so only a store it can read back: the
    # configured one, not a caller's own (a channel of utterances, a sink of theirs).
    own_store = store is not None and config.backfill and not config.stream_url
    if own_store:
        log.info("backfill off: the store is the caller's own, and cannot be read back")
    completeness = None
    if not own_store and backfills(config, tokens):
        state = config.state_path
        completeness = Completeness(BackfillQueue(state), Journal(state), disk=disk)
    source = configured_source(config, tokens, completeness, repeats)
    backfill = None
    if completeness is not None and tokens is not None and isinstance(source, NotificationsSource):
        backfill = Backfiller(
            completeness,
            PostCallClient(config.api_url or "", tokens),
            stored_lookup(config),
            dead_letters,
            source,
            settings=BackfillSettings(
                give_up_s=config.backfill_give_up_s,
                retry=Backoff(base_s=config.backfill_retry_s, cap_s=RETRY_CAP_S),
                check_s=min(BackfillSettings.check_s, config.backfill_retry_s),
                decorated_text=config.text == "decorated",
                queues=source.settings.queue_ids,
                conversations=source.settings.conversation_ids,
                lookback_s=config.queue_lookback_s,
                shard=config.shard,
            ),
        )
    return Worker(
        source=source,
        sink=store if store is not None else configured_sink(config, disk, repeats),
        spool=spool(config),
        disk=disk,
        repeats=repeats,
        dead_letters=dead_letters,
        tokens=tokens,
        settings=config,
        observer=observer,
        backfill=backfill,
    )
