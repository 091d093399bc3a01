"""Where and how to write to InfluxDB, and which of its APIs that means: settings, checked
in the settings layer (``config.py`` reports each problem with the others). Pure: the sink
that uses them is ``sinks/influx.py``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .errors import ConfigError
from .lineproto import Schema
from .redaction import redact_url
from .retry import Backoff


class Api(enum.Enum):
    V1 = "1.x /write"
    V2 = "2.x /api/v2/write"
    V3 = "3.x /api/v3/write_lp"


API_NAMES = {"v1": Api.V1, "v2": Api.V2, "v3": Api.V3}
"""``INFLUX_API``'s values."""

NEEDS = {
    Api.V1: ("database",),
    Api.V2: ("org", "bucket", "token"),
    Api.V3: ("database", "token"),
}


@dataclass(frozen=True)
class InfluxSettings:
    """Where and how to write. Give ``database`` for 1.x, or ``org``, ``bucket`` and
    ``token`` for 2.x; both or neither is an error (see :meth:`api`). InfluxDB 3 (``database``
    and ``token``) is chosen by ``api_version="v3"`` (``INFLUX_API``), which may also name 1.x
    or 2.x explicitly; ``no_sync`` trades 3.x's durability for latency."""

    url: str
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    org: str | None = None
    bucket: str | None = None
    create_database: bool = True
    schema: Schema = Schema()
    max_points: int = 5_000
    max_bytes: int = 2 << 20
    gzip_threshold: int = 32 << 10
    timeout_s: float = 10.0
    startup_timeout_s: float = 30.0
    backoff: Backoff = Backoff()
    api_version: str | None = None  # "v1", "v2", "v3"; None: inferred from the settings
    no_sync: bool = False

    def api(self) -> Api:
        if self.api_version is not None:
            return self._chosen_api(self.api_version)
        v2 = [name for name in ("org", "bucket", "token") if getattr(self, name)]
        if self.database and v2:
            raise ConfigError(
                [
                    f"InfluxDB settings are ambiguous: INFLUX_DATABASE (1.x) and "
                    f"{', '.join('INFLUX_' + n.upper() for n in v2)} (2.x) are both set; "
                    f"keep one set, or set INFLUX_API=v3 for InfluxDB 3 (database and token)"
                ]
            )
        if self.database:
            return Api.V1
        missing = [n for n in ("org", "bucket", "token") if not getattr(self, n)]
        if missing:
            raise ConfigError(
                [
                    "InfluxDB settings are incomplete: set INFLUX_DATABASE for 1.x, or "
                    "INFLUX_ORG, INFLUX_BUCKET and INFLUX_TOKEN for 2.x (missing: "
                    + ", ".join("INFLUX_" + n.upper() for n in missing)
                    + ")"
                ]
            )
        return Api.V2

    def _chosen_api(self, name: str) -> Api:
        api = API_NAMES.get(name.lower())
        if api is None:
            raise ConfigError([f"INFLUX_API must be v1, v2 or v3 (got {name!r})"])
        missing = [n for n in NEEDS[api] if not getattr(self, n)]
        if missing:
            raise ConfigError(
                [
                    f"INFLUX_API={name} needs "
                    + ", ".join("INFLUX_" + n.upper() for n in NEEDS[api])
                    + " (missing: "
                    + ", ".join("INFLUX_" + n.upper() for n in missing)
                    + ")"
                ]
            )
        return api

    @property
    def where(self) -> str:
        """The URL to print: without user-info (``redaction.py``)."""
        return redact_url(self.url)

    def describe(self) -> str:
        api = self.api()
        where = (
            f"org {self.org!r}, bucket {self.bucket!r}"
            if api is Api.V2
            else f"database {self.database!r}"
        )
        return f"InfluxDB {api.value} at {self.where}, {where}"
