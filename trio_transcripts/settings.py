"""Every setting of ``run`` in one table: its flag, its environment name (and config-file
key), its type and its default. Pure: no I/O.

A row is a :class:`Setting`. Two kinds:

* a **variable** (``env`` set): read from the flag, the process environment, ``.env`` or the
  TOML config file (the name in lower case), in that order, as text. One that is a field of
  its own (``field``: ``METRICS_ADDRESS``) is parsed by its row; the others ``config.py``
  checks together (a region and its hosts, the InfluxDB API the variables mean, the shard
  and the channel budget). Every problem is reported at once;
* a **tuning** (``env`` unset): a flag only, typed by argparse, setting one field of
  :class:`~trio_transcripts.config.Config` (or of its InfluxDB settings, ``influx.*``). Its
  default is that field's default, so each default is written once, on the dataclass.

``run``'s flags, ``demo``'s and the read-back commands' (``show``, ``backfill``) are made
from the rows (:func:`add_flags`), as the simulator's are from ``SimConfig``; the keys a
config file may hold are the variables' names (:data:`KNOWN`). A new setting is one row
and its field (a variable such as ``REDACT``: ``field`` and a ``parse`` of its text).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .influx_settings import InfluxSettings
from .lineproto import Schema
from .sensitive import (
    DEFAULT_KINDS,
    PHONE_REGIONS,
    Kind,
    describe_kinds,
    parse_kinds,
    parse_regions,
)

RUN = frozenset({"run"})
WORKER = frozenset({"run", "demo"})  # the worker's tuning: run's, and the demo's worker's
STORE = frozenset({"run", "demo", "show", "backfill"})  # where run stored, read back


@dataclass(frozen=True)
class Setting:
    name: str  # a variable's name (``GENESYS_REGION``), or the field a tuning sets
    flag: str | None = None
    help: str | None = None
    env: bool = False  # a variable: also from the environment, .env and the config file
    parse: Callable[[str], Any] = str  # what argparse makes of the flag's text
    action: str | type[argparse.Action] | None = None  # a switch instead of a value
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    commands: frozenset[str] = RUN
    # A tuning whose flag is not the field's own value: the field's value, from the flag's.
    to_field: Callable[[Any], Any] | None = None
    from_field: Callable[[Any], Any] | None = None  # the flag's default, from the field's
    # A variable that is one field of Config: ``parse`` reads its text (a ValueError says
    # what is wrong, after the variable's name), and the field's default is its default.
    field: str | None = None
    default: str | None = None  # a variable with no field of its own: its default text


def host_port(text: str) -> str:
    """``HOST:PORT`` (``METRICS_ADDRESS``)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:9464 (got {text!r})")
    return text


def _variable(name: str, flag: str | None = None, **options: Any) -> Setting:
    help_text = options.pop("help", None) or (f"overrides {name}" if flag else None)
    return Setting(name, flag, help_text, env=True, metavar=name if flag else None, **options)


SETTINGS: tuple[Setting, ...] = (
    # --- the worker's tuning (flags only) -----------------------------------------------
    Setting(
        "output_path",
        "--output",
        "the file sink's file when INFLUX_URL is not set (default: %(default)s)",
        parse=Path,
        commands=STORE,
    ),
    Setting(
        "dead_letter_path",
        "--dead-letter",
        "where rejected and unflushable data goes (default: %(default)s)",
        parse=Path,
        commands=WORKER | {"backfill"},
    ),
    Setting(
        "shutdown_timeout_s",
        "--shutdown-timeout",
        "how long the shutdown waits for the sink (default: %(default)s s)",
        parse=float,
        metavar="SECONDS",
        commands=WORKER,
    ),
    Setting("buffer_capacity", "--buffer-capacity", parse=int, commands=WORKER),
    Setting("batch_size", "--batch-size", parse=int, commands=WORKER),
    Setting("batch_wait_ms", "--batch-wait-ms", parse=int, commands=WORKER),
    Setting(
        "status_interval_s", "--status-interval", parse=float, metavar="SECONDS", commands=WORKER
    ),
    Setting(
        "ready_sink_s",
        "--ready-sink-s",
        "/readyz fails when the sink acknowledged no write or ping for this long",
        parse=float,
        metavar="SECONDS",
        commands=WORKER,
    ),
    Setting(
        "spool_dir",
        "--spool",
        "keep batches the sink cannot take on disk here (fsynced) and replay them",
        parse=Path,
        metavar="DIR",
        commands=WORKER,
    ),
    Setting(
        "spool_max_bytes",
        "--spool-max-mb",
        "the spool's limit (default: %(default)s MB)",
        parse=int,
        metavar="MB",
        commands=WORKER,
        to_field=lambda mb: mb << 20,
        from_field=lambda size: size >> 20,
    ),
    Setting(
        "spool_after_s",
        "--spool-after",
        "how long a batch may wait on the sink before it is spooled",
        parse=float,
        metavar="SECONDS",
        commands=WORKER,
    ),
    Setting(
        "backfill",
        "--backfill",
        "fill the gaps of the live stream from post-call transcripts (Genesys Notifications "
        "only; off with one log line when the OAuth client lacks the permission) (default: on)",
        action=argparse.BooleanOptionalAction,
        commands=WORKER,
    ),
    Setting(
        "state_dir",
        "--state-dir",
        "gap records and the journal of what is followed (default: a state directory next "
        "to the spool's)",
        parse=Path,
        metavar="DIR",
        commands=WORKER,
    ),
    Setting(
        "queue_lookback_s",
        "--queue-lookback",
        "at start, look for a followed queue's calls from this long before the worker was "
        "last alive (or before now, on a first start) (default: 1 h)",
        parse=float,
        metavar="SECONDS",
        commands=WORKER,
    ),
    Setting(
        "backfill_give_up_s",
        "--backfill-give-up",
        "stop asking for a post-call transcript this long after its gap (default: 24 h)",
        parse=float,
        metavar="SECONDS",
        commands=WORKER,
    ),
    Setting(
        "text",
        "--text",
        "which text to store: the recognised words (raw), or the platform's decorated form "
        "where it gives one (see the README's schema) (default: %(default)s)",
        choices=("raw", "decorated"),
        commands=WORKER | {"backfill"},
    ),
    Setting(
        "schema",
        "--utterance-id-as-tag",
        "the reference design's layout: one series per utterance (risky on InfluxDB 1.x: "
        "max-series-per-database)",
        action="store_true",
        commands=WORKER,
        to_field=lambda as_tag: Schema(utterance_id_as_tag=as_tag),
        from_field=lambda schema: schema.utterance_id_as_tag,
    ),
    # --- the variables (flag, environment, .env, config file) ----------------------------
    _variable("CONVERSATION_ID", "--conversation-id"),
    _variable("GENESYS_QUEUE_ID", "--queue-id"),
    _variable("GENESYS_REGION", "--region", default="us_east_1"),
    _variable("GENESYS_STREAM_URL", "--stream-url"),
    _variable("INFLUX_URL", "--influx-url", commands=STORE - {"demo"}),
    _variable("INFLUX_DATABASE", "--influx-database", commands=STORE - {"demo"}),
    _variable("INFLUX_ORG", "--influx-org", commands=STORE - {"demo"}),
    _variable("INFLUX_BUCKET", "--influx-bucket", commands=STORE - {"demo"}),
    _variable("INFLUX_API", "--influx-api", commands=STORE - {"demo"}),
    _variable("METRICS_ADDRESS", "--metrics-address", field="metrics_address", parse=host_port),
    _variable(
        "REDACT",
        "--redact",
        field="redact",
        parse=parse_kinds,
        commands=WORKER,
        help=(
            "what is taken out of every text before anything is written: a comma-separated "
            f"set of {', '.join(k.value for k in Kind)}, or none (default: "
            f"{describe_kinds(DEFAULT_KINDS)})"
        ),
    ),
    _variable(
        "PHONE_REGIONS",
        "--phone-regions",
        field="phone_regions",
        parse=parse_regions,
        commands=WORKER,
        help=(
            "with --redact phone: the regions (ISO 3166 codes) whose national numbers count "
            f"(default: {','.join(PHONE_REGIONS)}; +44 ... counts whatever they are)"
        ),
    ),
    _variable("SHARD", "--shard"),
    _variable("GENESYS_CLIENT_ID"),
    _variable("GENESYS_CLIENT_SECRET"),
    _variable("GENESYS_LOGIN_URL"),
    _variable("GENESYS_API_URL"),
    _variable("INFLUX_USERNAME"),
    _variable("INFLUX_PASSWORD"),
    _variable("INFLUX_TOKEN"),
    # --- InfluxDB's switches (flags only, run's) ----------------------------------------
    Setting(
        "influx.no_sync",
        "--influx-no-sync",
        "InfluxDB 3.x: acknowledged before the WAL is persisted (faster, less durable)",
        action="store_true",
    ),
    Setting(
        "influx.create_database",
        "--no-create-database",
        "InfluxDB 1.x: fail instead of creating a missing database",
        action="store_true",
        to_field=lambda refuse: not refuse,
        from_field=lambda create: not create,
    ),
)

VARIABLES = tuple(s.name for s in SETTINGS if s.env)
VARIABLE_DEFAULTS = {s.name: s.default for s in SETTINGS if s.env and s.default is not None}
"""Every variable, by name; a config file uses them in lower case."""

SECRET_FILES = {
    "GENESYS_CLIENT_SECRET_FILE": "GENESYS_CLIENT_SECRET",
    "INFLUX_TOKEN_FILE": "INFLUX_TOKEN",
    "INFLUX_PASSWORD_FILE": "INFLUX_PASSWORD",
}
"""``X_FILE`` names a file holding the secret ``X`` (the container-secrets convention)."""

KNOWN = (*VARIABLES, *SECRET_FILES)
"""The names the environment and a config file may set."""


METAVARS: dict[Callable[[str], Any], str] = {int: "N", Path: "FILE"}


def tuning_default(setting: Setting, defaults: Mapping[str, Any]) -> Any:
    """A tuning's flag default, from the field's (``defaults``: field -> default)."""
    value = defaults[setting.name]
    return setting.from_field(value) if setting.from_field is not None else value


def add_flags(parser: argparse.ArgumentParser, command: str, defaults: Mapping[str, Any]) -> None:
    """The flags of ``command``'s settings. A flag not given is absent from the parsed
    namespace (``default=SUPPRESS``), so the layers below it (environment, file, field
    default) decide; help shows the default all the same."""
    for setting in SETTINGS:
        if setting.flag is None or command not in setting.commands:
            continue
        options: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS}
        help_text = setting.help or ""
        if not setting.env:
            default = tuning_default(setting, defaults)
            help_text = help_text.replace("%(default)s", str(default))
            if "default:" not in help_text and default not in (None, False):
                help_text = f"{help_text} (default: {default})".strip()
        options["help"] = help_text or None
        if setting.action is not None:
            options["action"] = setting.action
        else:
            options["type"] = setting.parse
            metavar = setting.metavar or METAVARS.get(setting.parse)
            if metavar is not None:
                options["metavar"] = metavar
            if setting.choices is not None:
                options["choices"] = setting.choices
        parser.add_argument(setting.flag, **options)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave, by name (a flag not given is not here)."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if hasattr(args, s.name)}


def field_defaults(cls: type[Any]) -> dict[str, Any]:
    """A dataclass's field defaults, by name (``influx.*`` for its InfluxDB settings')."""
    found = {f.name: f.default for f in dataclasses.fields(cls)}
    found.update({f"influx.{f.name}": f.default for f in dataclasses.fields(InfluxSettings)})
    return found
