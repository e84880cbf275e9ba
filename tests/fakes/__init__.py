"""Test doubles for fbloop's external providers.

* :mod:`tests.fakes.provider_server` — a fake OpenAI + Replicate HTTP server on 127.0.0.1
  (``FakeProviderServer``); its module docstring documents the whole scripting API.
* :mod:`tests.fakes.fixtures` — the ``fake_server`` and ``fake_provider_env`` pytest fixtures
  (register with ``pytest_plugins = ["tests.fakes.fixtures"]``).
"""
