"""Keys and other secrets (issue 10, "Keys"): whatever a provider echoes, whatever a model writes, whatever a
URL setting carries, no secret reaches the terminal, a log, the trace or the checkpoint, and no redaction
breaks a run. Every end-to-end case runs `fbloop` over real HTTP against the fake provider server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from feedback_cli.config import Settings
from feedback_cli.redaction import MIN_SECRET_LENGTH, REDACTED, Redactor, mask_url
from feedback_cli.workflow import checkpoint
from tests.conftest import EXAMPLE, only_run, read_json
from tests.fakes.provider_server import FakeProviderServer
from tests.test_cloud import run_cloud

OPENAI_KEY = "sk-proj-LEAKCHECK-openai-9f8e7d6c5b4a3210"
REPLICATE_TOKEN = "r8_LEAKCHECK_replicate_1a2b3c4d5e6f"
IMAGE_MODEL = "black-forest-labs/flux-schnell"


@pytest.fixture
def server(fake_provider_env: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> FakeProviderServer:
    for key, value in {
        "OPENAI_API_KEY": OPENAI_KEY,
        "REPLICATE_API_TOKEN": REPLICATE_TOKEN,
        "FBLOOP_POLL_INTERVAL_S": "0.02",
        "FBLOOP_SCORERS": "offline",
        "FBLOOP_LLM_RETRIES": "0",
        "COLUMNS": "500",
    }.items():
        monkeypatch.setenv(key, value)
    return fake_provider_env


def assert_nowhere(values: list[str], run: Path, *outputs: str) -> None:
    """None of `values` in what was printed, nor in any file of the run folder (bytes, so also in binary)."""
    assert run.is_dir()
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "workflow_checkpoint.json" for p in files) and any(p.name == "run.log" for p in files)
    for value in values:
        for text in outputs:
            assert value not in text, f"{value!r} was printed"
        for path in files:
            assert value.encode() not in path.read_bytes(), f"{value!r} is in {path}"


def polls_of(server: FakeProviderServer, prediction_ids: set[str]) -> int:
    return sum(1 for r in server.requests_for("poll") if r.path.rsplit("/", 1)[-1] in prediction_ids)


# --- provider text that echoes the key ---------------------------------------------------------------

ECHOES: dict[str, tuple[Any, int]] = {
    # id: (inject, exit code of the run)
    "chat-400": (lambda s: s.fail_next_chats(400, retry_after=None, echo_auth=True), 1),
    "chat-401": (lambda s: s.fail_next_chats(401, retry_after=None, echo_auth=True), 1),
    "chat-500": (lambda s: s.fail_next_chats(500, retry_after=None, echo_auth=True), 1),
    "create-401": (lambda s: s.fail_next_creates(401, echo_auth=True), 0),
    "create-422": (lambda s: s.fail_next_creates(422, echo_auth=True), 0),
    "prediction-error-and-logs": (lambda s: s.fail_next_predictions("CUDA out of memory", echo_auth=True), 0),
    "every-prediction": (lambda s: s.fail_next_predictions("CUDA OOM", count=3, model=IMAGE_MODEL, echo_auth=True), 1),
}


@pytest.mark.parametrize("case", list(ECHOES))
def test_a_provider_error_that_echoes_the_key_is_redacted_and_the_run_ends_cleanly(
    cli: Any, server: FakeProviderServer, tmp_path: Path, case: str
) -> None:
    inject, code = ECHOES[case]
    inject(server)
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only", "--verbose")
    assert not server.script.pending(), "the fault was used"
    run = only_run(out)
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # the provider really echoed the header, and the user sees that it was redacted
    assert f"Authorization: Bearer {REDACTED}" in result.stderr, result.stderr
    assert_nowhere([OPENAI_KEY, REPLICATE_TOKEN], run, result.stdout, result.stderr)
    # the run ended: the checkpoint was saved, loads, and says how it ended (never left "running")
    _, state = checkpoint.load(run)
    assert state.status == ("completed" if code == 0 else "failed")
    assert read_json(run / "workflow_summary.json")["status"] == state.status
    if code:  # "Checkpoint saved" is said only when it is true
        assert "Checkpoint saved; resume with: fbloop resume" in result.stderr
    recorded = [i.error for s in state.stages for i in s.items if i.error] + [s.error for s in state.stages if s.error]
    assert any(f"Authorization: Bearer {REDACTED}" in (e or "") for e in recorded), recorded


def test_a_resume_after_an_echoed_key_does_not_poll_the_failed_predictions_again(
    cli: Any, server: FakeProviderServer, tmp_path: Path
) -> None:
    server.fail_next_predictions("CUDA OOM", count=3, model=IMAGE_MODEL, echo_auth=True)
    out = tmp_path / "runs"
    first = run_cloud(cli, out, "--workflow", "image-only")
    assert first.exit_code == 1, first.stderr
    run = only_run(out)
    items = [i for s in checkpoint.load(run)[1].stages for i in s.items if i.status == "failed"]
    failed = {i.job_id for i in items if i.job_id}
    assert len(items) == len(failed) == 3, "each failed item keeps the id of its prediction"
    for job_id in failed:  # the provider's own record of each: its error and its logs carry the token
        shown = server.predictions[job_id].to_json(server.url, lambda p, o: "")
        assert REPLICATE_TOKEN in shown["error"] and REPLICATE_TOKEN in shown["logs"]
    polls = polls_of(server, failed)
    plain = cli("resume", run)
    assert plain.exit_code == 1 and "--retry-failed" in plain.stderr, plain.stderr
    assert polls_of(server, failed) == polls, "a plain resume never polls a failed prediction again"
    retried = cli("resume", run, "--retry-failed")  # the fault is gone: fresh predictions finish the run
    assert retried.exit_code == 0, retried.stderr
    assert polls_of(server, failed) == polls
    assert read_json(run / "workflow_summary.json")["status"] == "completed"
    assert_nowhere([OPENAI_KEY, REPLICATE_TOKEN], run, *(r.stdout + r.stderr for r in (first, plain, retried)))


def test_a_key_echoed_on_retried_creates_is_redacted_in_the_notices(
    cli: Any, server: FakeProviderServer, tmp_path: Path
) -> None:
    server.fail_next_creates(503, retry_after=0, count=2, echo_auth=True)
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only")
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "answered HTTP 503" in line]
    assert len(notes) == 2 and all(f"Authorization: Bearer {REDACTED}" in n for n in notes), result.stderr
    assert_nowhere([OPENAI_KEY, REPLICATE_TOKEN], only_run(out), result.stdout, result.stderr)


@pytest.mark.parametrize("status", [400, 401])
def test_a_long_echoed_key_is_redacted_before_the_line_is_shortened(
    cli: Any, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """Provider messages are cut to one line at a word boundary (a long word is cut inside): a long token
    (a JWT-like key) cut first would leave a prefix the redactor cannot match, so redaction comes first."""
    long_key = "eyJhbGciOiJSUzI1NiJ9." + "LONGKEY" * 40  # ~300 characters, no spaces
    monkeypatch.setenv("OPENAI_API_KEY", long_key)
    server.fail_next_chats(status, retry_after=None, echo_auth=True)
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only")
    assert result.exit_code == 1, result.stderr
    run = only_run(out)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if f"HTTP {status}" in line]
    assert lines and all(f"Authorization: Bearer {REDACTED}" in line for line in lines), result.stderr
    # no part of the key long enough to matter, in anything printed or stored (the trace keeps the whole text)
    assert_nowhere([long_key[:24], "LONGKEY" * 3], run, result.stdout, result.stderr)
    trace = (run / "workflow_trace.json").read_text()
    assert f"Authorization: Bearer {REDACTED}" in trace


# --- a key too short to be a secret ------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["x", "1", "key", "ollama"])
def test_a_placeholder_key_is_not_a_secret(
    cli: Any, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    assert len(placeholder) < MIN_SECRET_LENGTH
    monkeypatch.setenv("OPENAI_API_KEY", placeholder)
    monkeypatch.setenv("REPLICATE_API_TOKEN", placeholder)
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only")
    assert result.exit_code == 0, result.stderr
    assert server.auth_tokens == {placeholder}  # the value was sent as the key...
    run = only_run(out)
    trace = read_json(run / "workflow_trace.json")
    assert trace["status"] == "completed" and trace["settings"]["openai_api_key_set"] is True
    # ...and the prompt (which has an "x" and, in its seeds and scores, every digit) is not mangled
    assert trace["source_prompt"] == EXAMPLE.read_text().strip()
    assert (run / "input" / "prompt.txt").read_text() == EXAMPLE.read_text().strip() + "\n"
    assert REDACTED not in (run / "workflow_checkpoint.json").read_text()


# --- a key inside model output -----------------------------------------------------------------------


def writer_leaks_key(body: dict[str, Any]) -> str | None:
    """Every writer draft carries the key (so the final prompt, the image requests and the review do too)."""
    if body.get("response_format", {}).get("json_schema", {}).get("name") != "WriterReply":
        return None
    return json.dumps({"prompt": f"a red fox in snow, api key {OPENAI_KEY}, golden light", "rationale": "r"})


def test_a_key_inside_model_output_is_redacted_not_fatal(cli: Any, server: FakeProviderServer, tmp_path: Path) -> None:
    server.chat_handler = writer_leaks_key
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert any(OPENAI_KEY in json.dumps(p.input) for p in server.predictions.values())  # it really was in use
    run = only_run(out)
    trace = read_json(run / "workflow_trace.json")
    assert trace["status"] == "completed"
    drafts = [it["prompt"] for s in trace["stages"] for it in s["iterations"]]
    assert drafts and all(f"api key {REDACTED}, golden light" in d for d in drafts), drafts
    assert f"image prompt: a red fox in snow, api key {REDACTED}" in result.stdout  # the summary shows it redacted
    assert_nowhere([OPENAI_KEY, REPLICATE_TOKEN], run, result.stdout, result.stderr)
    resumed = cli("resume", run)  # the redacted checkpoint is one a resume trusts
    assert resumed.exit_code == 0 and "already complete" in resumed.stderr, resumed.stderr


def test_what_a_review_shows_is_redacted(server: FakeProviderServer, tmp_path: Path) -> None:
    import asyncio

    from feedback_cli.choices import Backend, Workflow
    from feedback_cli.config import load_settings
    from feedback_cli.runstate.events import EventBus
    from feedback_cli.runstate.models import ReviewDecision, RunOptions
    from feedback_cli.workflow.api import execute, prepare_run
    from feedback_cli.workflow.review import ReviewRequest

    server.chat_handler = writer_leaks_key
    server.fail_next_predictions("CUDA OOM", echo_auth=True)  # one candidate fails with an echoed token
    shown: list[ReviewRequest] = []

    class Recorder:
        def review(self, request: ReviewRequest) -> ReviewDecision:
            shown.append(request)
            return ReviewDecision(stage=request.stage, action="continue")

    options = RunOptions(
        workflow=Workflow.image_only,
        backend=Backend.cloud,
        num_image_variations=2,
        max_iterations_image=1,
        seed=3,
        scorers="offline",
        interactive=True,
    )
    prepared = prepare_run(options, load_settings(), output_dir=tmp_path / "runs", source_prompt="a red fox")
    asyncio.run(execute(prepared, EventBus(), Recorder()))
    assert [r.stage for r in shown] == ["image_generation"]
    text = json.dumps([r.model_dump() for r in shown])
    assert OPENAI_KEY not in text and REPLICATE_TOKEN not in text
    assert f"api key {REDACTED}" in shown[0].prompt
    assert any(f"Bearer {REDACTED}" in (c.error or "") for c in shown[0].candidates)


# --- credentials inside URL settings -----------------------------------------------------------------


def test_credentials_in_the_base_urls_work_and_never_land_anywhere(
    cli: Any, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"127.0.0.1:{server.port}"
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://proxyuser:S3cretProxyPass-42@{host}/v1")
    monkeypatch.setenv("REPLICATE_BASE_URL", f"http://r8user:An0ther%2FProxyPass@{host}")
    server.fail_next_creates(422, echo_auth=True)  # echoes `Basic base64(user:password)`
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", "image-only", "--verbose")
    assert result.exit_code == 0, result.stderr
    basic = base64.b64encode(b"proxyuser:S3cretProxyPass-42").decode()
    assert basic in server.auth_tokens, server.auth_tokens  # the credentials were really used
    assert f"Authorization: Basic {REDACTED}" in result.stderr, result.stderr
    run = only_run(out)
    settings = read_json(run / "workflow_trace.json")["settings"]
    assert settings["openai_base_url"] == f"http://***@{host}/v1"
    assert settings["replicate_base_url"] == f"http://***@{host}"
    leaks = ["S3cretProxyPass-42", "An0ther/ProxyPass", "An0ther%2FProxyPass", basic, "proxyuser:", "r8user:"]
    assert_nowhere([*leaks, base64.b64encode(b"r8user:An0ther/ProxyPass").decode()], run, result.stdout, result.stderr)


def test_a_short_password_and_a_query_token_in_url_settings_are_masked(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # offline: the settings land in the trace whichever backend runs
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:pw@127.0.0.1:9/v1?api-version=2024-06&token=QueryToken-77aa")
    monkeypatch.setenv("FBLOOP_RAFT_WEIGHTS", "https://weights.example/raft.pth?sig=SignedUrlSig-55bb")
    out = tmp_path / "runs"
    result = cli("run", EXAMPLE, "--backend", "offline", "--workflow", "prompt-only", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    settings = read_json(run / "workflow_trace.json")["settings"]
    assert settings["openai_base_url"] == "http://***@127.0.0.1:9/v1?api-version=***&token=***"
    assert settings["raft_weights"] == "https://weights.example/raft.pth?sig=***"
    assert_nowhere(["user:pw", "QueryToken-77aa", "SignedUrlSig-55bb"], run, result.stdout, result.stderr)


# --- one source of secrets ---------------------------------------------------------------------------


def test_every_secret_setting_and_url_credential_is_a_secret_without_a_list() -> None:
    class MoreSettings(Settings):  # a setting added later is covered because it is a SecretStr
        hub_token: SecretStr | None = None
        webhook_url: str | None = None

    s = MoreSettings(
        OPENAI_API_KEY="sk-aaaaaaaaaaaa",
        hub_token="hf_bbbbbbbbbbbb",
        webhook_url="https://hooks.example/x?key=cccccccccccc",
        openai_base_url="https://dddddddddddd@proxy.example/v1",
    )
    assert {"sk-aaaaaaaaaaaa", "hf_bbbbbbbbbbbb", "cccccccccccc", "dddddddddddd"} <= set(s.secrets())
    public = s.public_dict()
    assert public["hub_token_set"] is True and public["replicate_api_token_set"] is False
    assert "hub_token" not in public and "openai_api_key" not in public
    assert public["webhook_url"] == "https://hooks.example/x?key=***"
    assert public["openai_base_url"] == "https://***@proxy.example/v1"
    assert not any(v in json.dumps(public) for v in s.secrets())


def test_the_redactor() -> None:
    r = Redactor(["x", "1", "short", "long-secret-value", "long-secret"])
    assert r.values == ("long-secret-value", "long-secret")  # too short is not a secret; longest first
    assert r("a fox x 1 short") == "a fox x 1 short"
    assert r("k=long-secret-value;") == f"k={REDACTED};"
    # any URL's userinfo, whatever its length, also one nobody configured
    assert r("GET https://u:p@h.example/x failed") == "GET https://***@h.example/x failed"
    assert r.scrub({"a": ["long-secret", 3, None], "b": {"c": "http://t@h/"}}) == {
        "a": [REDACTED, 3, None],
        "b": {"c": "http://***@h/"},
    }
    assert r("see https://h.example/?mail=a@b.example") == "see https://h.example/?mail=a@b.example"  # no userinfo
    assert mask_url("http://h:8/v1") == "http://h:8/v1"


def test_the_last_resort_error_line_redacts_what_the_settings_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from feedback_cli.config import load_settings
    from feedback_cli.redaction import redact_known

    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_only-known-to-this-test-42")
    assert "r8_only-known-to-this-test-42" in redact_known("x r8_only-known-to-this-test-42")  # not loaded yet
    load_settings()
    assert redact_known("internal error: bad token r8_only-known-to-this-test-42") == (
        f"internal error: bad token {REDACTED}"
    )


def test_a_checkpoint_with_a_secret_in_its_state_is_saved_redacted_and_loads(tmp_path: Path) -> None:
    from feedback_cli.runstate.models import RunOptions, RunState
    from feedback_cli.runstate.runfolder import RunFolder

    folder = RunFolder(tmp_path, Settings(OPENAI_API_KEY=OPENAI_KEY).secrets())
    state = RunState(fbloop_version="0", run_id="r", options=RunOptions(), source_prompt=f"fox {OPENAI_KEY}")
    state.error = f"HTTP 401: bad key {OPENAI_KEY}"
    path = checkpoint.save(folder, state)
    assert OPENAI_KEY.encode() not in path.read_bytes()
    _, loaded = checkpoint.load(tmp_path)
    assert loaded.source_prompt == f"fox {REDACTED}" and loaded.error == f"HTTP 401: bad key {REDACTED}"


def test_fbloop_score_redacts_a_key_the_vqa_server_echoes(
    cli: Any, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 80, 20)).save(tmp_path / "fox.png")
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    server.fail_next_chats(401, retry_after=None, echo_auth=True)
    result = cli("score", tmp_path / "fox.png", "-p", "a red fox", "-s", "vqascore", "--json")
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert f"Authorization: Bearer {REDACTED}" in result.stdout + result.stderr, result.stdout + result.stderr
    assert OPENAI_KEY not in result.stdout + result.stderr
