"""Fault matrix (issue 6): every provider fault the fake server can script, each driven through a whole
`fbloop run --backend cloud --scorers offline` over real HTTP.

For each fault the test checks, in order:

- ``exit``: the exit code (0 when the run recovers, 1 when it stops), and no traceback;
- ``message``: the one specific line the user sees on stderr (``! image_01: ...`` for a failed item,
  ``fbloop: error: ... resume with: fbloop resume RUN`` for a run that stops);
- ``tidy``: that line reads cleanly (no doubled full stop);
- ``trace``: what ``workflow_trace.json`` records (the failed item's status/error, or the stage's error);
- ``outcome``: a recovered run completed with its best pick among the successful items; a stopped run has a
  loadable checkpoint (status failed) and the resume command the user was shown finishes the run;
- ``paid_once``: every prediction the server created belongs to exactly one item;
- ``ledger``: every prediction that delivered an output (what Replicate bills) is in the cost ledger once, and
  the ledger's Replicate total equals the fake server's bill; every chat completion the server answered with
  token usage (what OpenAI bills) is one ledger entry with those tokens, whatever became of the reply (failed
  validation, repair, refusal, cut off);
- ``extra``: what is particular to the fault (the wait a 429 named was honoured, a create without an answer
  is not retried, a prediction past its deadline is canceled on the server, ...);
- ``secrets``: neither key is in anything printed (the run and any resume) nor in any file of the run folder,
  also when the provider's error echoed the request's Authorization header (the ``*-echoes-key`` faults).

A fault that shows a bug in fbloop lists the checks it breaks in ``gaps`` with the reason: the case is an
``xfail(strict=True)`` that fails *only* with :class:`KnownGap`, i.e. only on those checks; any other check
failing is still a real failure, and a fixed bug turns the case into an XPASS that fails until the gap is
removed. docs/fault_matrix.md has the table (the lines quoted there come from these runs: ``pytest -s``).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from feedback_cli.workflow import checkpoint
from tests.conftest import only_run, read_json
from tests.fakes.provider_server import FAKE_OPENAI_API_KEY, FAKE_REPLICATE_API_TOKEN, FakeProviderServer
from tests.fakes.script import ChatReply, SlowPrediction
from tests.test_cloud import assert_each_prediction_paid_once, run_cloud

IMAGE_MODEL = "black-forest-labs/flux-schnell"
CRITIC = "ImageCriticReply"  # the schema name in every image critic request
VIDEO_MODEL = "kwaivgi/kling-v2.1"
BASE_ENV = {
    "FBLOOP_POLL_INTERVAL_S": "0.02",
    "FBLOOP_SCORERS": "offline",
    "COLUMNS": "500",  # progress lines unwrapped: each message is one line, as in a wide terminal
}
SHORT_TIMEOUT = {"FBLOOP_REQUEST_TIMEOUT_S": "0.5"}
STAGE_OF = {"image": "image_generation", "video": "video_generation"}
KEYS = (FAKE_OPENAI_API_KEY, FAKE_REPLICATE_API_TOKEN)
ECHOED = "(request had Authorization: Bearer ***redacted***)"  # what an echoed key becomes

Check = Literal["exit", "message", "tidy", "trace", "outcome", "paid_once", "ledger", "extra", "secrets"]
Where = Literal["item", "stage", "retry", "note", "repair"]

# The matrix found six bugs when it was written (silent retries, a blind retry of a 5xx that came after the
# prediction existed, untracked predictions behind unanswered creates, a billed output missing from the ledger
# when its download failed, a resume command that could never finish, a doubled full stop); all are fixed and
# their cases pass as plain checks. A future known gap goes in a fault's `gaps`, as a strict xfail.


class KnownGap(AssertionError):
    """A check a documented fbloop bug breaks: the only failure an xfail case accepts."""


@dataclass(frozen=True)
class Fault:
    inject: Callable[[FakeProviderServer], None]
    recovers: bool
    #: in the user's stderr line and in the trace's error (for "retry": the HTTP status retried)
    says: str
    where: Where
    kind: Literal["image", "video"] = "image"
    stage: str = "image_generation"  # the stage that records a "stage" fault
    workflow: str = "image-only"
    env: dict[str, str] = field(default_factory=dict)
    #: the failed item keeps the id of its prediction (the fault came after the create was answered)
    job_recorded: bool = True
    extra: Callable[[FakeProviderServer, dict[str, Any]], None] | None = None
    gaps: dict[Check, str] = field(default_factory=dict)


# --- extra checks -------------------------------------------------------------------------------------


def _retried_once(created: int) -> Callable[[FakeProviderServer, dict[str, Any]], None]:
    def check(server: FakeProviderServer, trace: dict[str, Any]) -> None:
        assert len(server.requests_for("create")) == 4, "the rejected create was tried again once"
        assert server.predictions_created == created

    return check


def _waited_as_told(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    _retried_once(3)(server, trace)
    first, retry = _the_rejected_create_and_its_retry(server)
    assert retry - first >= 0.9, f"the 429 named a 1 s wait; the retry came after {retry - first:.2f} s"


def _the_rejected_create_and_its_retry(server: FakeProviderServer) -> tuple[float, float]:
    creates = server.requests_for("create")
    bodies = [json.dumps(r.body, sort_keys=True) for r in creates]
    again = next(i for i in range(1, len(bodies)) if bodies[i] in bodies[:i])
    return creates[bodies.index(bodies[again])].at, creates[again].at


def _adopted(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    assert len(server.requests_for("create")) == 3, "the create that failed after creating is not sent again"
    assert server.predictions_created == 3


def _not_retried(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    assert len(server.requests_for("create")) == 3, "a create without an answer is never sent again"


def _canceled_on_the_server(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    failed = _failed_items(trace, "image_generation")[0]
    assert server.predictions[failed["job_id"]].status() == "canceled", "past its deadline: canceled, not paid on"
    assert server.requests_for("cancel")


def _events(trace: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in trace["events"] if e["kind"] == kind]


def _in_flight_then_collected(items: int, model: str = IMAGE_MODEL) -> Callable[[FakeProviderServer, dict], None]:
    """The first run left its items in flight (never failed); the resume re-attached and collected them."""

    def check(server: FakeProviderServer, trace: dict[str, Any]) -> None:
        waiting = {e["data"]["key"] for e in _events(trace, "item_in_flight")}
        assert len(waiting) == items, _events(trace, "item_in_flight")
        assert not {e["data"]["key"] for e in _events(trace, "item_failed")} & waiting, "in flight, never failed"
        made = [p for p in server.predictions.values() if p.model == model]
        assert len(made) == items, "re-attached, not created again"
        assert all(p.status() == "succeeded" for p in made)

    return check


def _canceled_when_given_up(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    canceled = [p for p in server.predictions.values() if p.status() == "canceled"]
    assert len(canceled) == 3 and len(_events(trace, "job_canceled")) == 3, "each prediction given up on is canceled"
    assert server.predictions_created == 6, "--retry-failed made a new one for each canceled prediction"


def _kept_running(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    assert not server.requests_for("cancel") and not server.cut_requests["cancel"], "kept: never canceled"
    _in_flight_then_collected(3)(server, trace)


def _cancel_found_it_done(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    assert len(server.requests_for("cancel")) == 3, "fbloop gave up on each and sent a cancel"
    assert server.predictions_created == 3
    assert all(p.status() == "succeeded" for p in server.predictions.values()), "finished before the cancel"
    assert not _events(trace, "job_canceled")


def _stalled_canceled_on_resume(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    assert server.cut_requests["cancel"] >= 1, "the first cancel was cut"
    stalled = [p for p in server.predictions.values() if p.outcome == "stall"]
    assert len(stalled) == 1 and stalled[0].status() == "canceled", "the resume re-attached and canceled it"
    assert server.predictions_created == 3
    item = next(i for i in _stage(trace, "image_generation")["items"] if i["job_id"] == stalled[0].id)
    assert item["status"] == "failed" and item["job_state"] == "canceled", item


def _orphan_collected(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    assert len(server.requests_for("create")) == 3, "the unanswered create was looked up, never sent again"
    assert server.predictions_created == 3
    assert len(_events(trace, "item_in_flight")) == 1


def _chat_retried(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    calls = [e for e in trace["ledger"] if e["provider"] == "openai"]
    assert len(server.requests_for("chat")) == len(calls) + 1, "one call was rejected, then answered on its retry"


def _booked_at_estimate(count: int, why: str) -> Callable[[FakeProviderServer, dict[str, Any]], None]:
    """Requests without usage that may still be billed (no answer; the gateway's error after the model ran)."""

    def check(server: FakeProviderServer, trace: dict[str, Any]) -> None:
        marked = [e for e in trace["ledger"] if e["provider"] == "openai" and e["estimated"]]
        assert len(marked) == count and all(why in e["detail"]["note"] for e in marked), marked

    return check


def _repaired_once(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    critic = [r for r in server.requests_for("chat") if CRITIC in r.raw.decode()]
    repairs = [r for r in critic if "Reply again with only the corrected JSON object" in r.raw.decode()]
    assert len(repairs) == 1, "one repair request, no blind retry"


# --- the matrix ---------------------------------------------------------------------------------------


def _creates(status: int, **kw: Any) -> Callable[[FakeProviderServer], None]:
    return lambda s: s.fail_next_creates(status, **kw)


FAULTS: dict[str, Fault] = {
    "create-429-wait": Fault(_creates(429, retry_after=1), True, "429", "retry", extra=_waited_as_told),
    "create-500": Fault(_creates(500), True, "500", "retry", extra=_retried_once(3)),
    "create-502": Fault(_creates(502), True, "502", "retry", extra=_retried_once(3)),
    "create-503": Fault(_creates(503), True, "503", "retry", extra=_retried_once(3)),
    # the 5xx came after the prediction existed: fbloop finds it and uses it instead of paying again
    "create-502-after-create": Fault(_creates(502, after_create=True), True, "502", "retry", extra=_adopted),
    "create-connection-reset": Fault(
        lambda s: s.reset_next_creates(),
        True,
        "no answer to the create request (ReadError); not retried",
        "item",
        job_recorded=False,
        extra=_not_retried,
    ),
    "create-reset-after-create": Fault(
        lambda s: s.reset_next_creates(after_create=True), True, "ReadError", "retry", extra=_adopted
    ),
    "create-read-timeout": Fault(
        lambda s: s.hang_next_creates(seconds=2),
        True,
        "no answer to the create request (TimeoutError); not retried",
        "item",
        env=SHORT_TIMEOUT,
        job_recorded=False,
        extra=_not_retried,
    ),
    "create-read-timeout-after-create": Fault(
        lambda s: s.hang_next_creates(seconds=2, after_create=True),
        True,
        "TimeoutError",
        "retry",
        env=SHORT_TIMEOUT,
        extra=_adopted,
    ),
    "prediction-failed": Fault(
        lambda s: s.fail_next_predictions("CUDA out of memory"), True, "failed: CUDA out of memory", "item"
    ),
    "prediction-canceled": Fault(lambda s: s.cancel_next_predictions(), True, "was canceled", "item"),
    "prediction-never-finishes": Fault(
        lambda s: s.stall_next_predictions(),
        True,
        "did not finish within 1s; canceled",
        "item",
        env={"FBLOOP_PREDICTION_DEADLINE_S": "1"},
        extra=_canceled_on_the_server,
    ),
    "output-url-404": Fault(lambda s: s.break_next_outputs("missing"), True, "failed: HTTP 404", "item"),
    "output-corrupt-image": Fault(
        lambda s: s.break_next_outputs("corrupt"), True, "provider output is not a valid image", "item"
    ),
    "video-prediction-failed": Fault(
        lambda s: s.fail_next_predictions("CUDA out of memory", model=VIDEO_MODEL),
        True,
        "failed: CUDA out of memory",
        "item",
        kind="video",
        workflow="full",
    ),
    "every-image-fails": Fault(
        lambda s: s.fail_next_predictions("CUDA out of memory", count=3, model=IMAGE_MODEL),
        False,
        "image_generation: 0 of 3 items succeeded",
        "stage",
    ),
    "llm-not-json-twice": Fault(
        lambda s: s.queue_chat_replies(ChatReply.not_json(), ChatReply.not_json()),
        False,
        "did not return valid JSON after one repair",
        "stage",
        stage="image_prompt",
    ),
    "llm-not-json-twice-json-mode": Fault(
        lambda s: (
            setattr(s, "json_mode_only", True),
            s.queue_chat_replies(ChatReply.not_json(), ChatReply.not_json(), match="json_object"),
        ),
        False,
        "did not return valid JSON after one repair",
        "stage",
        stage="image_prompt",
    ),
    "llm-cut-off": Fault(
        lambda s: s.queue_chat_replies(ChatReply.cut_off()),
        False,
        "the reply was cut off at the token limit",
        "stage",
        stage="image_prompt",
    ),
    "llm-refusal": Fault(
        lambda s: s.queue_chat_replies(ChatReply.refuse()),
        False,
        "refused: I'm sorry, but I can't help with that request",
        "stage",
        stage="image_prompt",
    ),
    # --- network outages while fbloop waits (issue 10): an item whose prediction's end is unseen is in flight
    "outage-polls-and-cancel": Fault(
        lambda s: s.cut("poll", "cancel"),
        False,
        "3 of 3 items still in flight",
        "stage",
        extra=_in_flight_then_collected(3),
    ),
    "outage-polls-and-cancel-video": Fault(
        lambda s: s.cut("poll", "cancel", model=VIDEO_MODEL),
        False,
        "2 of 2 items still in flight",
        "stage",
        kind="video",
        stage="video_generation",
        workflow="full",
        extra=_in_flight_then_collected(2, VIDEO_MODEL),
    ),
    "outage-polls-cancel-works": Fault(
        lambda s: (s.script.add("create", SlowPrediction(60), times=3), s.cut("poll")),
        False,
        "image_generation: 0 of 3 items succeeded",
        "stage",
        extra=_canceled_when_given_up,
    ),
    "outage-polls-finished-meanwhile": Fault(
        lambda s: s.cut("poll"),
        True,
        "but it had succeeded: using it",
        "note",
        extra=_cancel_found_it_done,
    ),
    "outage-polls-keep-predictions": Fault(
        lambda s: s.cut("poll"),
        False,
        "3 of 3 items still in flight",
        "stage",
        env={"FBLOOP_KEEP_PREDICTIONS": "1"},
        extra=_kept_running,
    ),
    "deadline-cancel-cut": Fault(
        lambda s: (s.stall_next_predictions(), s.cut("cancel")),
        False,
        "1 of 3 items still in flight",
        "stage",
        env={"FBLOOP_PREDICTION_DEADLINE_S": "1"},
        extra=_stalled_canceled_on_resume,
    ),
    "create-unanswered-lookup-cut": Fault(
        lambda s: (s.reset_next_creates(after_create=True), s.cut("list")),
        False,
        "1 of 3 items still in flight",
        "stage",
        extra=_orphan_collected,
    ),
    "llm-missing-field-twice": Fault(
        lambda s: s.queue_chat_replies(ChatReply.missing("scores"), ChatReply.missing("scores"), match=CRITIC),
        False,
        "returned JSON that did not match the schema after one repair: field 'scores' is missing",
        "stage",
        stage="image_prompt",
    ),
    "llm-missing-field-repaired": Fault(
        lambda s: s.queue_chat_replies(ChatReply.missing("scores"), match=CRITIC),
        True,
        "critic",
        "repair",
        extra=_repaired_once,
    ),
    "llm-gateway-schema-500-twice": Fault(
        lambda s: s.schema_error_next_chats(2, match=CRITIC),
        False,
        "returned a reply the server found did not match the schema after one repair: HTTP 500",
        "stage",
        stage="image_prompt",
        extra=_booked_at_estimate(2, "its reply failed the schema"),
    ),
    "llm-gateway-schema-500-repaired": Fault(
        lambda s: s.schema_error_next_chats(1, match=CRITIC),
        True,
        "critic",
        "repair",
        extra=lambda s, t: (_repaired_once(s, t), _booked_at_estimate(1, "its reply failed the schema")(s, t)),
    ),
    "chat-timeout-then-success": Fault(
        lambda s: s.hang_next_chats(seconds=2, match=CRITIC),
        True,
        "APITimeoutError",
        "retry",
        env=SHORT_TIMEOUT,
        extra=_booked_at_estimate(1, "no answer within 0.5s"),
    ),
    # the provider's error body repeats the request's Authorization header (some providers and proxies do)
    "chat-401-echoes-key": Fault(
        lambda s: s.fail_next_chats(401, retry_after=None, echo_auth=True),
        False,
        f"gpt-4.1-mini: HTTP 401: Fake error 401 {ECHOED}",
        "stage",
        stage="image_prompt",
    ),
    "create-422-echoes-key": Fault(
        _creates(422, echo_auth=True),
        True,
        f"creating the prediction failed (HTTP 422): Unprocessable Entity {ECHOED}",
        "item",
        job_recorded=False,
    ),
    "prediction-failed-echoes-key": Fault(
        lambda s: s.fail_next_predictions("CUDA out of memory", echo_auth=True),
        True,
        f"failed: CUDA out of memory {ECHOED}",
        "item",
    ),
    "chat-429-then-success": Fault(
        lambda s: s.fail_next_chats(429, retry_after=0.01),
        True,
        "429",
        "retry",
        extra=_chat_retried,
    ),
}


def _params() -> list[Any]:
    params = []
    for name, fault in FAULTS.items():
        marks = []
        if fault.gaps:
            reason = " | ".join(dict.fromkeys(fault.gaps.values()))
            marks.append(pytest.mark.xfail(strict=True, raises=KnownGap, reason=reason))
        params.append(pytest.param(fault, id=name, marks=marks))
    return params


# --- helpers ------------------------------------------------------------------------------------------


class Checks:
    """Runs named checks; a failing check listed in the fault's gaps is collected as a KnownGap (``exit``
    at once, since nothing after it means anything then), any other failure is raised as it is."""

    def __init__(self, gaps: dict[Check, str]) -> None:
        self.gaps = gaps
        self.open: list[str] = []

    @contextlib.contextmanager
    def __call__(self, name: Check) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            if name not in self.gaps:
                raise
            first = (str(exc).splitlines() or [""])[0][:300]
            if name == "exit":
                raise KnownGap(f"{name}: {self.gaps[name]} [{first}]") from exc
            self.open.append(f"{name}: {self.gaps[name]} [{first}]")

    def close(self) -> None:
        if self.open:
            raise KnownGap("; ".join(self.open))


def _stage(trace: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in trace["stages"] if s["name"] == name)


def _failed_items(trace: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    return [i for i in _stage(trace, stage)["items"] if i["status"] == "failed"]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _mentions_retry(text: str, status: str) -> bool:
    """A line naming the status code and that fbloop retries or waits."""
    return any(
        re.search(rf"\b{status}\b", line) and re.search(r"(?i)retr|wait|again|throttl|rate.limit", line)
        for line in text.splitlines()
    )


def _without_paths(text: str, tmp_path: Path, run: Path) -> str:
    return text.replace(str(tmp_path), "<tmp>").replace(run.name, "<run>")


def _best_among_succeeded(run: Path, stage: dict[str, Any]) -> None:
    succeeded = {i["key"] for i in stage["items"] if i["status"] == "succeeded"}
    scores = read_json(run / stage["folder"] / "scores.json")
    for group in scores["groups"].values():
        assert group["best"] in succeeded, (group["best"], succeeded)


def _assert_ledger_has_every_delivered_prediction(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    billed = {pid for pid, p in server.predictions.items() if p.status() == "succeeded"}
    entries = [e for e in trace["ledger"] if e["provider"] == "replicate"]
    ledgered = [e["detail"].get("job_id") for e in entries]
    assert billed <= set(ledgered), f"delivered but not in the ledger: {sorted(billed - set(ledgered))}"
    assert len(ledgered) == len(set(ledgered)), "a prediction booked twice"
    # the fake bills at Replicate's prices by its own table: fbloop's ledger must come to the same sum
    assert round(sum(e["usd"] for e in entries), 6) == server.billed_usd, (entries, server.billed_usd)


def _assert_ledger_has_every_billed_chat(server: FakeProviderServer, trace: dict[str, Any]) -> None:
    fields = ("model", "prompt_tokens", "completion_tokens", "cached_tokens")
    billed = sorted(tuple(b[f] for f in fields) for b in server.billed_chats)
    booked = sorted(
        (e["model"], *(e["detail"].get(f, 0) for f in fields[1:]))
        for e in trace["ledger"]
        if e["provider"] == "openai" and not e["estimated"]
    )
    assert booked == billed, f"{len(billed)} chat completions billed, {len(booked)} booked"


def _assert_paid_once_after_retry(server: FakeProviderServer, run: Path) -> None:
    """--retry-failed gives failed items a fresh prediction: the failed ones stay in the trace's events, and
    every prediction that delivered an output belongs to exactly one item."""
    trace = read_json(run / "workflow_trace.json")
    owned = [i["job_id"] for s in trace["stages"] for i in s["items"] if i["job_id"]]
    assert len(owned) == len(set(owned))
    submitted = {e["data"].get("job_id") for e in trace["events"] if e["kind"] == "item_submitted"}
    assert set(server.predictions) <= submitted | set(owned)
    delivered = {pid for pid, p in server.predictions.items() if p.status() == "succeeded"}
    assert delivered <= set(owned)


def _resume(cli: Any, line: str) -> Any:
    command = re.search(r"resume with: (fbloop resume .+)$", line)
    assert command, line
    return cli(*shlex.split(command.group(1))[1:])


def _assert_no_key_anywhere(run: Path, printed: list[str]) -> None:
    files = [p for p in run.rglob("*") if p.is_file()]
    for key in KEYS:
        assert not any(key in text for text in printed), f"{key} was printed"
        leaked = [p.name for p in files if key.encode() in p.read_bytes()]
        assert not leaked, f"{key} is in {leaked}"


@pytest.fixture
def server(fake_provider_env: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> FakeProviderServer:
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    fake_provider_env.image_latency = 0.05
    fake_provider_env.video_latency = 0.1
    return fake_provider_env


# --- the test -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", _params())
def test_fault(
    cli: Any, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Fault
) -> None:
    for key, value in fault.env.items():
        monkeypatch.setenv(key, value)
    fault.inject(server)
    out = tmp_path / "runs"
    result = run_cloud(cli, out, "--workflow", fault.workflow)  # 3 images, 2 videos
    assert not server.script.pending(), "the scripted fault was used"
    assert all(server.cut_requests[route] for route in server.cut_routes), "the outage cut requests"
    run = only_run(out)
    trace = read_json(run / "workflow_trace.json")
    lines = _lines(result.stderr)
    check = Checks(fault.gaps)
    user_sees = ""
    printed = [result.stdout, result.stderr]

    with check("exit"):
        assert result.exit_code == (0 if fault.recovers else 1), result.stderr
        assert "Traceback" not in result.stderr + result.stdout and "internal error" not in result.stderr

    with check("message"):
        if fault.where == "item":
            failed = _failed_items(trace, STAGE_OF[fault.kind])
            assert len(failed) == 1, failed
            user_sees = f"! {failed[0]['key']}: {failed[0]['error']}"
            assert user_sees in lines, result.stderr
            assert fault.says in user_sees
        elif fault.where == "stage":
            errors = [line for line in lines if line.startswith("fbloop: error:")]
            assert len(errors) == 1, result.stderr
            user_sees = errors[0]
            assert fault.says in user_sees
            assert re.search(rf"resume with: fbloop resume {re.escape(str(run))}( --retry-failed)?$", user_sees)
        elif fault.where == "note":
            notes = [line for line in lines if line.startswith("note:") and fault.says in line]
            assert notes, result.stderr
            user_sees = notes[0]
        elif fault.where == "repair":  # a bad reply repaired: nothing to tell the person
            assert not [line for line in lines if line.startswith(("fbloop: error", "!"))], result.stderr
        else:
            assert _mentions_retry(_without_paths(result.stderr, tmp_path, run), fault.says), result.stderr

    with check("tidy"):
        assert ".." not in user_sees.replace(str(tmp_path), ""), user_sees

    with check("trace"):
        if fault.where == "item":
            failed = _failed_items(trace, STAGE_OF[fault.kind])
            assert len(failed) == 1 and fault.says in failed[0]["error"], failed
            assert failed[0]["artifact"] is None
            assert bool(failed[0]["job_id"]) == fault.job_recorded, failed[0]
            if fault.job_recorded:
                assert failed[0]["job_id"] in server.predictions
            assert _stage(trace, STAGE_OF[fault.kind])["error"] is None
        elif fault.where == "stage":
            stage = _stage(trace, fault.stage)
            assert stage["status"] == "failed" and fault.says in stage["error"], stage["error"]
            assert trace["status"] == "failed" and fault.says in trace["error"]
        elif fault.where == "repair":  # every request of the repaired call is in the ledger, the bad one too
            asked = [r for r in server.requests_for("chat") if CRITIC in r.raw.decode()]
            booked = [e for e in trace["ledger"] if e["provider"] == "openai" and e["what"].startswith(fault.says)]
            assert len(booked) == len(asked), (booked, len(asked))
        else:
            recorded = [e["message"] for e in trace["events"]] + trace["notices"]
            recorded += [n for s in trace["stages"] for n in s["notes"]]
            if fault.where == "note":
                assert any(fault.says in n for s in trace["stages"] for n in s["notes"]), recorded
            else:
                assert _mentions_retry(_without_paths("\n".join(recorded), tmp_path, run), fault.says), recorded

    with check("outcome"):
        if fault.recovers:
            assert trace["status"] == "completed"
            assert read_json(run / "workflow_summary.json")["status"] == "completed"
            stage = _stage(trace, STAGE_OF[fault.kind])
            ok = [i for i in stage["items"] if i["status"] == "succeeded"]
            assert len(ok) == len(stage["items"]) - (fault.where == "item")
            _best_among_succeeded(run, stage)
        else:
            _, state = checkpoint.load(run)
            assert state.status == "failed" and state.stage(fault.stage).status == "failed"
            server.script.clear()  # the fault is gone
            server.restore()
            resumed = _resume(cli, user_sees)
            printed += [resumed.stdout, resumed.stderr]
            assert resumed.exit_code == 0, resumed.stderr
            assert read_json(run / "workflow_summary.json")["status"] == "completed"
    retried = "--retry-failed" in user_sees  # the command shown retries the failed items: fresh predictions
    if not fault.recovers and read_json(run / "workflow_summary.json")["status"] != "completed":
        # the resume shown did not finish (a known gap): the run must still be recoverable
        retried = True
        again = cli("resume", run, "--retry-failed")
        printed += [again.stdout, again.stderr]
        assert again.exit_code == 0, again.stderr
        assert read_json(run / "workflow_summary.json")["status"] == "completed"
        for stage in read_json(run / "workflow_trace.json")["stages"]:
            if stage["items"]:
                _best_among_succeeded(run, stage)

    final = read_json(run / "workflow_trace.json")
    with check("paid_once"):
        if retried:
            _assert_paid_once_after_retry(server, run)
        else:
            assert_each_prediction_paid_once(server, run)
            assert not server.duplicate_predictions() or fault.workflow == "full"

    with check("ledger"):
        _assert_ledger_has_every_delivered_prediction(server, final)
        _assert_ledger_has_every_billed_chat(server, final)

    with check("extra"):
        if fault.extra is not None:
            fault.extra(server, final)

    with check("secrets"):
        assert KEYS[0] in server.auth_tokens and KEYS[1] in server.auth_tokens  # both keys were sent
        _assert_no_key_anywhere(run, printed)

    where = (
        f"item {_failed_items(trace, STAGE_OF[fault.kind])[0]['key']}"
        if fault.where == "item"
        else f"stage {fault.stage}"
        if fault.where == "stage"
        else "nothing"
    )
    print(f"\nFAULT exit={result.exit_code} trace={where} user={user_sees or '(no line)'}")
    check.close()
