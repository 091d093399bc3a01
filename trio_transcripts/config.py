"""Settings from flags, the environment, ``.env`` and a config file, checked at once.

The variable names of our reference design are kept (``GENESYS_CLIENT_ID``,
``GENESYS_CLIENT_SECRET``, ``GENESYS_REGION``, ``CONVERSATION_ID``, ``INFLUX_URL``,
``INFLUX_TOKEN``, ``INFLUX_ORG``, ``INFLUX_BUCKET``), plus ``GENESYS_QUEUE_ID``,
``GENESYS_LOGIN_URL``, ``GENESYS_API_URL``, ``GENESYS_STREAM_URL``, ``INFLUX_DATABASE``,
``INFLUX_USERNAME``, ``INFLUX_PASSWORD`` and ``METRICS_ADDRESS``. Precedence: flags, then the
process environment, then ``.env`` in the working directory, then a TOML config file
(``--config``, the same names in lower case). ``GENESYS_CLIENT_SECRET_FILE``,
``INFLUX_TOKEN_FILE`` and ``INFLUX_PASSWORD_FILE`` name files holding those secrets.
:func:`load_config` reports every missing or invalid setting in one
:class:`~trio_transcripts.errors.ConfigError`, each with the variable's name and an example;
secrets are never echoed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import regions, settings
from .coalesce import DEFAULT_IDLE_TIMEOUT_MS
from .errors import ConfigError
from .influx_settings import InfluxSettings
from .lineproto import Schema
from .liveness import KEEPALIVE_MS, MARGIN_MS
from .redaction import redact_url
from .sensitive import DEFAULT_KINDS, PHONE_REGIONS, Kind
from .settings import KNOWN, SECRET_FILES, SETTINGS
from .shard import Shard, budget_problem, parse_shard


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker buffers, batches and times out (its parts come separately)."""

    buffer_capacity: int = 10_000
    high_water: float = 0.85
    low_water: float = 0.30
    batch_size: int = 5_000
    batch_wait_ms: int = 100
    idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS
    shutdown_timeout_s: float = 30.0
    status_interval_s: float = 10.0
    ready_sink_s: float = 60.0  # ready while the sink acknowledged a write or a ping within
    spool_after_s: float = 5.0  # how long a batch may wait on the sink before it is spooled
    # What is taken out of every text before anything is written (``sensitive.py``): card
    # numbers and security codes unless told otherwise, embedded or not.
    redact: frozenset[Kind] = DEFAULT_KINDS
    phone_regions: tuple[str, ...] = PHONE_REGIONS  # national forms read as phones there


@dataclass(frozen=True)
class Config(WorkerSettings):
    """Everything the worker needs: its settings, and what its parts are made from
    (``assemble.py``). Build it with :func:`load_config`, or directly."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    login_url: str | None = None
    api_url: str | None = None
    conversation_ids: tuple[str, ...] = ()
    queue_ids: tuple[str, ...] = ()
    stream_url: str | None = None
    influx: InfluxSettings | None = None
    output_path: Path = Path("transcripts.lp")
    dead_letter_path: Path = Path("deadletter.jsonl")
    heartbeat_timeout_s: float = 35.0
    schema: Schema = Schema()
    metrics_address: str | None = None  # HOST:PORT for /metrics, /healthz, /readyz
    shard: Shard | None = None  # follow only this shard's conversations (shard.py)
    spool_dir: Path | None = None
    spool_max_bytes: int = 1 << 30
    backfill: bool = True  # fill gaps from post-call transcripts (Notifications source only)
    state_dir: Path | None = None  # gap records and the journal; None: next to the spool
    backfill_give_up_s: float = 86_400.0
    backfill_retry_s: float = 30.0  # the first wait for a transcript not there yet, doubling
    keepalive_s: float = KEEPALIVE_MS / 1000  # the platform's per-session keepalive
    text: str = "raw"  # "decorated": the platform's decoratedTranscript where it gives one
    silence_margin_s: float = MARGIN_MS / 1000  # silent this much past it: the session ended
    # How far before the last time alive (or before a first start) the catch-up of a
    # followed queue looks (absence.py): a call that began up to an hour before and was on
    # the queue afterwards is found. An hour holds all but the rarest contact-centre call;
    # on a first start, the calls that ended within it are backfilled too.
    queue_lookback_s: float = 3_600.0

    @property
    def state_path(self) -> Path:
        """Where gap records and the journal live: ``state_dir``, else a ``state``
        directory next to the spool's (or in the working directory, as the other files)."""
        if self.state_dir is not None:
            return self.state_dir
        return (self.spool_dir.parent if self.spool_dir is not None else Path(".")) / "state"


DEFAULTS = settings.field_defaults(Config)
"""Each field's default, by name: the one source of each setting's default."""


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """``command``'s flags, from ``settings.py``'s table."""
    settings.add_flags(parser, command, DEFAULTS)


def read_config_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """A TOML file of settings: ``genesys_client_id = "..."``; lists for the id lists.

    Returns the settings by variable name, and a problem for each key that is not one (with
    the closest valid key) or whose value is not a string, number or list of strings.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}, [f"--config {path}: no such file"]
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"--config {path}: not readable TOML ({exc})"]
    values: dict[str, str] = {}
    problems: list[str] = []
    valid = [name.lower() for name in KNOWN]
    for key, value in data.items():
        if key not in valid:
            close = difflib.get_close_matches(key.lower(), valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
            problems.append(f"--config {path}: unknown key {key!r}{hint}")
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[key.upper()] = ",".join(value)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            values[key.upper()] = str(value)
        else:
            problems.append(
                f"--config {path}: {key} must be a string, a number or a list of strings"
            )
    return values, problems


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, ``export`` prefixes and matching quotes allowed."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def load_config(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
    config_file: Path | None = None,
    source_required: bool = True,
) -> Config:
    """Merge flags (``flags``, by setting name: ``settings.given``), the environment,
    ``.env`` and a config file, in that order of precedence; read ``*_FILE`` secrets;
    validate everything at once.

    A variable (``GENESYS_REGION``, ...) is looked for in each layer; a tuning
    (``buffer_capacity``, ``influx.no_sync``, ...) is its flag, else its field's default.
    ``source_required=False`` is for commands that only read what was stored (``show``).
    """
    flags = dict(flags or {})
    tuning: dict[str, Any] = {}
    for setting in SETTINGS:
        if not setting.env and setting.name in flags:
            value = flags[setting.name]
            tuning[setting.name] = setting.to_field(value) if setting.to_field else value
    influx_tuning = {
        name.removeprefix("influx."): tuning.pop(name)
        for name in list(tuning)
        if name.startswith("influx.")
    }
    problems: list[str] = []
    merged: dict[str, str] = {}
    if config_file is not None:
        from_file, file_problems = read_config_file(config_file)
        merged.update(from_file)
        problems.extend(file_problems)
    if env_file:
        merged.update(read_env_file(env_file))
    merged.update(os.environ if environ is None else environ)
    merged.update({k: v for k, v in flags.items() if k in settings.VARIABLES and v is not None})
    problems.extend(_read_secret_files(merged))

    def get(name: str) -> str | None:
        value = merged.get(name, "").strip()
        return value or settings.VARIABLE_DEFAULTS.get(name)

    # A variable that is one field: its text parsed by its row (each problem named).
    for setting in SETTINGS:
        text = get(setting.name) if setting.env and setting.field else None
        if text is not None and setting.field is not None:
            try:
                tuning[setting.field] = setting.parse(text)
            except ValueError as exc:
                problems.append(f"{setting.name} {exc}")

    stream_url = get("GENESYS_STREAM_URL")
    client_id, client_secret = get("GENESYS_CLIENT_ID"), get("GENESYS_CLIENT_SECRET")
    login_url, api_url = get("GENESYS_LOGIN_URL"), get("GENESYS_API_URL")
    conversations = _split(get("CONVERSATION_ID"))
    queues = _split(get("GENESYS_QUEUE_ID"))

    if stream_url:
        if not stream_url.startswith(("ws://", "wss://")):
            problems.append(
                f"GENESYS_STREAM_URL must be a ws:// or wss:// URL, e.g. "
                f"wss://relay.example.com/transcripts (got {redact_url(stream_url)!r})"
            )
    elif source_required:
        if not client_id:
            problems.append(
                "GENESYS_CLIENT_ID is missing: the OAuth client id, e.g. "
                "GENESYS_CLIENT_ID=3f2a...-client-credentials-id"
            )
        if not client_secret:
            problems.append("GENESYS_CLIENT_SECRET is missing: the OAuth client secret")
        if not conversations and not queues:
            problems.append(
                "CONVERSATION_ID or GENESYS_QUEUE_ID is missing: which calls to "
                "follow, e.g. CONVERSATION_ID=97b9dcb3-...,5b778cb0-... or "
                "GENESYS_QUEUE_ID=<queue id> to follow every call on a queue"
            )
    if client_id and (not login_url or not api_url):
        region = get("GENESYS_REGION") or ""
        try:
            hosts = regions.resolve(region)
        except ValueError as exc:
            problems.append(f"GENESYS_REGION: {exc}")
        else:
            login_url = login_url or hosts.login_url
            api_url = api_url or hosts.api_url
    for name, url in (("GENESYS_LOGIN_URL", login_url), ("GENESYS_API_URL", api_url)):
        if url and not url.startswith(("http://", "https://")):
            problems.append(f"{name} must be an http(s) URL, e.g. https://login.mypurecloud.ie")

    influx: InfluxSettings | None = None
    influx_url = get("INFLUX_URL")
    influx_vars = [
        n for n in ("INFLUX_TOKEN", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_DATABASE") if get(n)
    ]
    if influx_url:
        if not influx_url.startswith(("http://", "https://")):
            problems.append(
                f"INFLUX_URL must be an http(s) URL, e.g. http://localhost:8086 "
                f"(got {redact_url(influx_url)!r})"
            )
        influx = InfluxSettings(
            url=influx_url,
            database=get("INFLUX_DATABASE"),
            username=get("INFLUX_USERNAME"),
            password=get("INFLUX_PASSWORD"),
            token=get("INFLUX_TOKEN"),
            org=get("INFLUX_ORG"),
            bucket=get("INFLUX_BUCKET"),
            api_version=get("INFLUX_API"),
            schema=tuning.get("schema", Schema()),
            **influx_tuning,
        )
        try:
            influx.api()
        except ConfigError as exc:
            problems.extend(exc.problems)
    elif influx_vars:
        problems.append(
            f"INFLUX_URL is missing while {', '.join(influx_vars)} is set: e.g. "
            f"INFLUX_URL=http://localhost:8086"
        )
    shard: Shard | None = None
    if get("SHARD") is not None:
        try:
            shard = parse_shard(get("SHARD") or "", get("HOSTNAME") or socket.gethostname())
        except ValueError as exc:
            problems.append(str(exc))
        if shard is not None and stream_url:
            problems.append("SHARD applies to the Notifications source, not GENESYS_STREAM_URL")
    if source_required and not stream_url:
        budget = budget_problem(shard, conversations, queues)
        if budget is not None:
            problems.append(budget)
    if problems:
        raise ConfigError(problems)
    return Config(
        client_id=client_id,
        client_secret=client_secret,
        login_url=login_url,
        api_url=api_url,
        conversation_ids=conversations,
        queue_ids=queues,
        stream_url=stream_url,
        influx=influx,
        shard=shard,
        **tuning,
    )


def _read_secret_files(merged: dict[str, str]) -> list[str]:
    """Put the content of each ``X_FILE`` in ``X``; the problems (never the secret)."""
    problems = []
    for file_var, var in SECRET_FILES.items():
        path = merged.get(file_var, "").strip()
        if not path:
            continue
        if merged.get(var, "").strip():
            problems.append(f"{var} and {file_var} are both set: keep one")
            continue
        try:
            merged[var] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"{file_var}: cannot read {path} ({exc.strerror or exc})")
    return problems
