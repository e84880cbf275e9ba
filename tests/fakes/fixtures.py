"""pytest fixtures for the fake provider server.

Register them from a conftest with ``pytest_plugins = ["tests.fakes.fixtures"]``.

* ``fake_server`` — a started :class:`~tests.fakes.provider_server.FakeProviderServer` (fresh per
  test); the test fails at teardown if the fake itself crashed while handling a request.
* ``fake_provider_env`` — the same server with its :meth:`env` exported into ``os.environ``
  (``OPENAI_BASE_URL``, ``REPLICATE_BASE_URL``, ``OPENAI_API_KEY``, ``REPLICATE_API_TOKEN``).
  It also drops the HTTP connection cached by ``replicate``'s module-level default client (which
  otherwise keeps talking to the first base URL it ever used) and sets ``REPLICATE_POLL_INTERVAL``
  to 0.05 s for clients created during the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import FakeProviderServer

FAST_POLL_INTERVAL = "0.05"


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    try:
        yield server
    finally:
        server.stop()
    if server.internal_errors:
        pytest.fail("fake provider server crashed while handling a request:\n" + server.internal_errors[0])


@pytest.fixture
def fake_provider_env(fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> FakeProviderServer:
    for name, value in fake_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", FAST_POLL_INTERVAL)
    try:
        import replicate
    except ImportError:  # pragma: no cover - replicate is a runtime dependency
        return fake_server
    client = replicate.default_client
    for attribute in ("_Client__client", "_Client__async_client"):
        monkeypatch.setattr(client, attribute, None)
    monkeypatch.setattr(client, "poll_interval", float(FAST_POLL_INTERVAL))
    return fake_server
