"""Providers are plugins: every fact about a provider (roles, keys, what configures it, models and prices) is its
class's declaration, and third-party providers come in through the `fbloop.providers` entry points the built-ins
use too (issue 12).

The entry-point route is proven end to end: the package in tests/plugin_provider/ (a media provider talking HTTP
to a local render service, keyed by ACME_API_KEY) is pip-installed into a temporary venv, and that venv's fbloop
lists it, prices it in a dry run, refuses it without its key, and makes a run's images with it, its key in no
file of the run folder and in no output.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image
from pydantic import Field, SecretStr

from feedback_cli.config import ProviderOptions, Settings
from feedback_cli.errors import UsageError
from feedback_cli.providers import registry
from feedback_cli.providers.provider import Provider, Role
from feedback_cli.redaction import REDACTED
from tests.conftest import EXAMPLE
from tests.plugin_venv import install_plugin, run_fbloop

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "plugin_provider"
THIS = "tests.test_provider_plugins"
VAULT_TOKEN = "vault-token-0123456789abcdef"
ACME_KEY = "acme-key-Zq8v3XfT0pLr6WnYb2"


class VaultOptions(ProviderOptions):
    vault_token: SecretStr | None = Field(default=None, validation_alias="VAULT_TEST_TOKEN")
    vault_url: str | None = Field(default=None, validation_alias="VAULT_TEST_URL")


class VaultProvider(Provider):
    """A provider fbloop has never heard of, registered in process: a key of its own, media only."""

    name: ClassVar[str] = "vault-test"
    roles: ClassVar[tuple[Role, ...]] = ("media",)
    Options = VaultOptions
    configured_by: ClassVar[tuple[str, ...]] = ("vault_token",)


@pytest.fixture
def vault() -> Iterator[None]:
    registry.register("vault-test", f"{THIS}:VaultProvider")
    yield
    registry.unregister("vault-test")


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- declarations, in process


def test_a_providers_own_keys_are_secrets_without_being_listed(vault, monkeypatch) -> None:
    """The defect class: secrets() was a hand-kept list, so a new provider's key was never redacted."""
    monkeypatch.setenv("VAULT_TEST_TOKEN", VAULT_TOKEN)
    monkeypatch.setenv("VAULT_TEST_URL", "https://user:url-password-123456@vault.example/v1")
    registry.provider_class("vault-test")
    found = settings().secrets()
    assert VAULT_TOKEN in found and "url-password-123456" in found
    line = settings().redactor().redact(f"token {VAULT_TOKEN} in a provider's error")
    assert VAULT_TOKEN not in line and REDACTED in line


def test_the_backend_choice_reads_the_chosen_providers_declaration(vault, monkeypatch) -> None:
    chosen = settings(media_provider="vault-test")
    auto = registry.resolve_backend("auto", chosen)
    assert auto.providers == {"agents": "offline", "media": "offline"}
    assert "images and videos: offline (VAULT_TEST_TOKEN not set)" in auto.reason
    with pytest.raises(UsageError) as refused:
        registry.resolve_backend("cloud", chosen, ("media",))
    assert refused.value.message == "--backend cloud needs VAULT_TEST_TOKEN for the images and videos of this run"
    priced = registry.resolve_backend("cloud", chosen, ("media",), dry_run=True)
    assert priced.unconfigured == ("media",) and priced.unconfigured_keys == ("VAULT_TEST_TOKEN",)
    monkeypatch.setenv("VAULT_TEST_TOKEN", VAULT_TOKEN)
    configured = registry.resolve_backend("auto", chosen, ("media",))
    assert configured.providers["media"] == "vault-test" and configured.backend == "cloud"
    assert "images and videos: vault-test (VAULT_TEST_TOKEN is set)" in configured.reason
    assert configured.reason.startswith("cloud: agents: not used")


def test_a_provider_named_for_a_role_it_does_not_play_is_one_line() -> None:
    with pytest.raises(UsageError, match=r"^FBLOOP_MEDIA_PROVIDER: provider 'openai' has no images and videos"):
        registry.resolve_backend("auto", settings(media_provider="openai"))
    with pytest.raises(UsageError, match=r"^FBLOOP_AGENTS_PROVIDER: unknown provider 'nope'; known: offline, openai"):
        registry.resolve_backend("cloud", settings(agents_provider="nope"))
    # offline needs no provider at all, so a name it does not use is not looked up
    assert registry.resolve_backend("offline", settings(agents_provider="nope")).backend == "offline"


def test_a_broken_registration_is_one_clear_line() -> None:
    try:
        registry.register("test-broken", "fbloop_no_such_package.mod:Cls")
        registry.register("test-notaprovider", "json:dumps")
        with pytest.raises(UsageError, match=r"provider 'test-broken': fbloop_no_such_package\.mod cannot be"):
            registry.provider_class("test-broken")
        with pytest.raises(UsageError, match="not a Provider subclass"):
            registry.resolve_backend("auto", settings(media_provider="test-notaprovider"))
        listed = {row.name: row for row in registry.describe(settings())}
        assert "cannot be imported" in listed["test-broken"].problem and listed["openai"].problem == ""
    finally:
        registry.unregister("test-broken")
        registry.unregister("test-notaprovider")


def test_no_provider_or_key_name_is_written_outside_the_providers_own_modules() -> None:
    """The engine and the registry read declarations; names live in builtin.py, the implementations, the
    Settings fields of the built-ins' keys, and the one table of registration lines."""
    src = REPO / "src" / "feedback_cli"
    names = re.compile(r"OPENAI_API_KEY|OPENAI_BASE_URL|REPLICATE_API_TOKEN|\"(openai|replicate)\"")
    checked = [
        src / "providers" / "registry.py",
        src / "providers" / "provider.py",
        src / "commands" / "run.py",
        *sorted((src / "workflow").glob("*.py")),
    ]
    found = []
    for path in checked:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if (
                names.search(line)
                and "feedback_cli.providers.builtin:" not in line
                and not line.strip().startswith(("#", '"""'))
            ):
                found.append(f"{path.relative_to(src)}:{number}: {line.strip()}")
    assert found == []


def test_reading_every_declaration_imports_no_client_library() -> None:
    code = (
        "import sys\n"
        "from feedback_cli.config import Settings\n"
        "from feedback_cli.providers import registry\n"
        "s = Settings(_env_file=None)\n"
        "s.secrets()\n"
        "registry.describe(s)\n"
        "registry.resolve_backend('auto', s)\n"
        "print(len(registry.classes()), [m for m in ('openai', 'replicate', 'httpx') if m in sys.modules])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "FBLOOP_"))}
    env["PYTHONPATH"] = f"{REPO / 'src'}{os.pathsep}{REPO}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.split() == [str(len(registry.BUILTIN_PROVIDERS)), "[]"], out.stderr


# --------------------------------------------------------------------------- the entry-point route, for real


class RenderService:
    """A tiny local image service: POST /v1/renders with a bearer key answers a PNG, and what it received."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.renders: list[dict[str, Any]] = []
        self.refused = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {service.key}":
                    service.refused += 1
                    return self._answer(401, {"error": "bad key"})
                shade = (body["seed"] * 37) % 256
                png = io.BytesIO()
                Image.new("RGB", (64, 48), (shade, 90, 255 - shade)).save(png, format="PNG")
                render = {
                    "id": f"acme-{len(service.renders) + 1}",
                    "png_base64": base64.b64encode(png.getvalue()).decode(),
                    "received": {"authorization": self.headers.get("Authorization")},
                }
                service.renders.append({**body, "png": png.getvalue()})
                self._answer(200, render)

            def _answer(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RenderService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv whose only installed distribution is the test provider package (pip-installed, so its entry
    point is real metadata); fbloop and its dependencies come from this interpreter's site-packages, this
    checkout's src first (as tests/test_scorer_plugins.py does it)."""
    return install_plugin(tmp_path_factory.mktemp("provider-plugin"), PLUGIN)


def fbloop(python: Path, *args: object, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_fbloop(python, *args, cwd=cwd, drop=("FBLOOP_", "OPENAI_", "REPLICATE_", "ACME_"), **env)


def backend_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("backend:")]


@pytest.mark.slow
def test_an_installed_provider_is_listed_priced_refused_without_its_key_and_used(
    plugin_python: Path, tmp_path: Path
) -> None:
    acme = {"FBLOOP_MEDIA_PROVIDER": "acme"}

    listed = fbloop(plugin_python, "models", "providers", "--json", cwd=tmp_path, **acme)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["acme"] == {
        "name": "acme",
        "roles": ["media"],
        "chosen_for": ["media"],
        "needs": "ACME_API_KEY",
        "configured": None,
        "problem": "",
    }

    # its key is a secret as soon as the plugin is installed, before anything asks for it by name
    probe = subprocess.run(
        [plugin_python, "-c", "from feedback_cli.config import Settings; print(Settings().secrets())"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "ACME_API_KEY": ACME_KEY},
        cwd=tmp_path,
        check=True,
    )
    assert ACME_KEY in probe.stdout

    run_args = ("run", EXAMPLE, "--workflow", "image-only", "-n", "2", "--max-rounds-image", "1")
    out = tmp_path / "runs"

    # a price before signing up: the dry run prices its model at its declared price, without the key
    dry = fbloop(plugin_python, *run_args, "--backend", "cloud", "--dry-run", "--json", cwd=tmp_path, **acme)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["providers"]["media"] == "acme"
    (generation,) = [stage for stage in plan["stages"] if stage["name"] == "image_generation"]
    assert generation["models"] == ["acme-render-1"] and generation["cost_min_usd"] >= 2 * 0.004
    assert "priced without keys; a run needs OPENAI_API_KEY and ACME_API_KEY" in plan["notes"]

    # without its key: one line naming it, exit 2, nothing made
    refused = fbloop(
        plugin_python, *run_args, "--backend", "cloud", "--output-dir", out, cwd=tmp_path,
        FBLOOP_AGENTS_PROVIDER="offline", **acme,
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("fbloop: error: --backend cloud needs ACME_API_KEY for the images and videos of this run")
    assert not out.exists()

    with RenderService(ACME_KEY) as service:
        ran = fbloop(
            plugin_python, *run_args, "--scorers", "offline", "--seed", "5", "--output-dir", out, "--json",
            cwd=tmp_path, ACME_API_KEY=ACME_KEY, ACME_BASE_URL=service.url, **acme,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["providers"] == {"agents": "offline", "media": "acme"} and result["backend"] == "cloud"
    (line,) = backend_lines(ran.stderr)
    assert "images and videos: acme (ACME_API_KEY is set)" in line
    assert len(service.renders) == 2 and service.refused == 0
    run = Path(result["run_dir"])
    made = {path.read_bytes() for path in run.rglob("*.png")}
    assert {render["png"] for render in service.renders} <= made, "the run's images are the service's"
    # the key went to the service (and came back in its answer), but reached no file and no output
    files = [path for path in run.rglob("*") if path.is_file()]
    assert [p for p in files if ACME_KEY.encode() in p.read_bytes()] == []
    assert ACME_KEY not in ran.stdout + ran.stderr + listed.stdout + dry.stdout + dry.stderr + refused.stderr
    assert any(REDACTED.encode() in p.read_bytes() for p in files), "the service's echo of the key was redacted"
    ledger = json.dumps(json.loads((run / "workflow_checkpoint.json").read_text()))
    assert "acme-render-1" in ledger

    # the same run without the plugin installed: an unknown provider, one line, exit 2
    plain = fbloop(Path(sys.executable), *run_args, "--output-dir", out, cwd=tmp_path, **acme)
    assert plain.returncode == 2
    assert "FBLOOP_MEDIA_PROVIDER: unknown provider 'acme'; known: offline, openai, replicate" in plain.stderr


def test_the_backend_choice_is_written_once() -> None:
    from feedback_cli.choices import Backend

    assert Settings.model_fields["backend"].annotation is Backend
    assert settings(backend="cloud").backend is Backend.cloud
