"""The token refresher, against the simulator's token endpoint, under a mock clock."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from trio_transcripts.auth import AuthError, Credentials, TokenManager, renewal_delay
from trio_transcripts.regions import DOMAINS, resolve
from trio_transcripts.retry import Backoff
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator

from .simhelpers import sim_transport

SECRET = "s3cret-value-never-printed"


def manager(sim: Simulator, secret: str = SECRET) -> TokenManager:
    return TokenManager(
        Credentials("sim-client", secret, "http://sim.invalid"),
        transport=sim_transport(sim),
        backoff=Backoff(0.5, 5),
    )


def simulator(**changes: object) -> Simulator:
    return Simulator(SimConfig(client_secret=SECRET, **changes))  # type: ignore[arg-type]


def test_renewal_schedule() -> None:
    assert renewal_delay(86_400) == 86_400 * 0.8  # 80 % of a long lifetime
    assert renewal_delay(120) == 60  # never later than 60 s before expiry
    assert renewal_delay(300) == 240  # Genesys' shortest lifetime: both rules hold
    assert renewal_delay(30) == 10  # shorter tokens: never a tight loop
    assert renewal_delay(2) == 1


async def test_renews_before_expiry_without_callers_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sim = simulator(token_lifetime_s=300)  # renew at 240 s
    tokens = manager(sim)
    async with trio.open_nursery() as nursery:
        await nursery.start(tokens.run)
        first = await tokens.get()
        await trio.sleep(239)
        assert await tokens.get() == first and sim.stats.tokens_issued == 1
        await trio.sleep(2)
        second = await tokens.get()
        assert second != first and sim.stats.tokens_issued == 2
        start = trio.current_time()
        await tokens.get()
        assert trio.current_time() == start
        nursery.cancel_scope.cancel()
    await tokens.aclose()


async def test_a_401_forces_a_renewal_at_once(autojump_clock: trio.testing.MockClock) -> None:
    sim = simulator()
    tokens = manager(sim)
    async with trio.open_nursery() as nursery:
        await nursery.start(tokens.run)
        old = await tokens.get()
        tokens.invalidate("some-older-token")  # a stale 401: ignored
        assert await tokens.get() == old
        tokens.invalidate(old)
        new = await tokens.get()
        assert new != old and trio.current_time() < 1
        nursery.cancel_scope.cancel()
    await tokens.aclose()


async def test_429_and_5xx_are_retried(autojump_clock: trio.testing.MockClock) -> None:
    sim = simulator(faults=Faults(token_429=2, token_500=2))
    tokens = manager(sim)
    async with trio.open_nursery() as nursery:
        await nursery.start(tokens.run)
        assert await tokens.get()
        assert trio.current_time() >= 2.0, "two Retry-After: 1 answers were honoured"
        nursery.cancel_scope.cancel()
    await tokens.aclose()


async def test_bad_credentials_are_fatal_and_never_show_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = simulator()
    tokens = manager(sim, secret="wrong-" + SECRET)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as caught:
        await tokens.run()
    message = str(caught.value)
    assert "sim-client" in message and "http://sim.invalid" in message
    assert "invalid_client" in message
    assert SECRET not in message and SECRET not in caplog.text
    assert SECRET not in repr(tokens) and SECRET not in repr(tokens.credentials)
    with pytest.raises(AuthError):
        await tokens.get()
    await tokens.aclose()


@pytest.mark.parametrize(
    ("region", "login"),
    [
        ("us_east_1", "https://login.mypurecloud.com"),
        ("eu-west-1", "https://login.mypurecloud.ie"),
        ("mypurecloud.de", "https://login.mypurecloud.de"),
        ("AP_NORTHEAST_3", "https://login.apne3.pure.cloud"),
    ],
)
def test_regions(region: str, login: str) -> None:
    assert resolve(region).login_url == login
    assert resolve(region).api_url == login.replace("login.", "api.")


def test_all_17_regions_and_a_clear_error() -> None:
    assert len(DOMAINS) == 17
    with pytest.raises(ValueError, match=r"unknown Genesys region 'mars'.*us_east_1"):
        resolve("mars")
