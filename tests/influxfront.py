"""Test-only InfluxDB 2.x and 3.x write endpoints that store into a real 1.x server.

``POST /api/v2/write?org&bucket&precision`` with ``Authorization: Token <t>``: checks the token,
org and bucket as 2.x does (401, 404). ``POST /api/v3/write_lp?db&precision&accept_partial``
with ``Authorization: Bearer <t>``: checks the token and database as InfluxDB 3 does (401,
404), and answers a refused write with 3.x's body (400, ``{"error": ..., "data": {"line_number",
"original_line", "error_message"}}``, the shape of ``accept_partial=false``). Both forward the
lines to the real 1.6 server's ``/write?db=<bucket or db>``, so reading the real server back
proves what was stored. Faults are
scripted: each request takes the next entry of :attr:`InfluxFront.faults` (if any) instead of, or
before, being forwarded. A thread with the standard library's HTTP server: real sockets, no
mocks, and independent of the Trio code under test.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    """What to do with one request: answer ``status`` (with headers and body) without
    storing; ``partial`` (store what 1.x accepts, answer 422 like 2.5+); ``reset`` the
    connection; or delay ``slow_s`` seconds before handling normally."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    reset: bool = False
    slow_s: float = 0.0
    partial: bool = False


class InfluxFront:
    def __init__(
        self,
        influx_url: str,
        *,
        token: str = "t0ken",
        org: str = "acme",
        buckets: set[str] | None = None,
    ) -> None:
        self.influx_url = influx_url
        self.token, self.org = token, org
        self.buckets = buckets if buckets is not None else set()
        self.faults: deque[Fault] = deque()
        self.v3_queries: list[dict[str, str]] = []  # the query of each 3.x write
        self.requests: list[tuple[str, int]] = []  # (path, status answered)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> InfluxFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(
                self, status: int, body: str = "", headers: dict[str, str] | None = None
            ) -> None:
                outer.requests.append((self.path.split("?")[0], status))
                data = body.encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith("/ping"):
                    self._answer(204)
                else:
                    self._answer(404, "not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                fault = outer.faults.popleft() if outer.faults else Fault()
                if fault.slow_s:
                    time.sleep(fault.slow_s)
                if fault.reset:
                    outer.requests.append((self.path, 0))
                    self.connection.shutdown(2)
                    self.close_connection = True
                    return
                if fault.status:
                    self._answer(fault.status, fault.body, fault.headers)
                    return
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/api/v3/write_lp":
                    self._v3(query, body)
                    return
                if url.path != "/api/v2/write":
                    self._answer(404, '{"code":"not found"}')
                    return
                if self.headers.get("Authorization") != f"Token {outer.token}":
                    self._answer(401, '{"code":"unauthorized","message":"unauthorized access"}')
                    return
                if query.get("org") != outer.org or query.get("bucket") not in outer.buckets:
                    self._answer(
                        404,
                        f'{{"code":"not found","message":"bucket '
                        f'\\"{query.get("bucket")}\\" not found"}}',
                    )
                    return
                status, text = self._forward(query["bucket"], body)
                if status == 204:
                    self._answer(204)
                elif fault.partial or "partial write" in text:
                    self._answer(422, f'{{"code":"unprocessable entity","message":{text!r}}}')
                else:
                    self._answer(status if status < 500 else 500, text)

            def _v3(self, query: dict[str, str], body: bytes) -> None:
                outer.v3_queries.append(query)
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._answer(401, '{"error":"the request was not authenticated"}')
                    return
                if query.get("db") not in outer.buckets:
                    self._answer(404, f'{{"error":"database not found: {query.get("db")}"}}')
                    return
                if query.get("precision") not in (None, "auto", "nanosecond"):
                    self._answer(400, '{"error":"this front forwards nanoseconds only"}')
                    return
                status, text = self._forward(query["db"], body)
                if status == 204:
                    self._answer(204)
                elif status == 400:
                    first = body.decode(errors="replace").splitlines()[0]
                    message = json.loads(text).get("error", text) if text.startswith("{") else text
                    error = {
                        "error": "parsing failed for write_lp endpoint",
                        "data": {
                            "original_line": first,
                            "line_number": 1,
                            "error_message": message,
                        },
                    }
                    self._answer(400, json.dumps(error))
                else:
                    self._answer(status if status < 500 else 500, text)

            def _forward(self, db: str, body: bytes) -> tuple[int, str]:
                request = urllib.request.Request(
                    f"{outer.influx_url}/write?db={db}&precision=ns", data=body, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return response.status, ""
                except urllib.error.HTTPError as exc:
                    return exc.code, exc.read().decode(errors="replace")

        return Handler
