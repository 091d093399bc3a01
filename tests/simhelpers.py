"""Helpers to run the simulator in tests."""

from __future__ import annotations

import httpx

from trio_transcripts.testing.simulator import Simulator


def sim_transport(sim: Simulator) -> httpx.MockTransport:
    """The simulator's own HTTP logic without sockets, so MockClock can drive time."""

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, body, extra = sim.handle_http(
            request.method, str(request.url.raw_path.decode()), headers, request.content
        )
        return httpx.Response(status, content=body, headers=extra)

    return httpx.MockTransport(handle)
