"""Secrets are never shown: URLs are printed without their user-info. Pure.

``INFLUX_URL=http://user:password@host:8086`` is a valid way to give InfluxDB 1.x its
credentials (httpx sends them as Basic auth); every log line, error, ``describe()``, status
line, metric label and ``/readyz`` body prints :func:`redact_url` of it instead.
"""

from __future__ import annotations

import urllib.parse


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
