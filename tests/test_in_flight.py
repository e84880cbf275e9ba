"""Money after a network outage (issue 10): an item whose prediction's end fbloop has not seen is in flight,
never failed; resume and --retry-failed re-attach to it before paying again; a prediction is booked once; the
ledger equals what the fake Replicate billed. All over real HTTP against tests/fakes, clients unpatched.

The fault matrix (tests/test_fault_matrix.py, the ``outage-*`` cases) drives each outage once through
`fbloop run`; these tests add the paths the matrix does not: the issue's own example (videos, --max-cost,
`--retry-failed` right away), checkpoints written before ``job_state`` existed, hand-edited job ids, and a
prediction that must not be booked twice when it is re-attached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from replicate.exceptions import ReplicateError

from feedback_cli.files import canonical_json, sha256_bytes
from feedback_cli.workflow import checkpoint
from tests.conftest import only_run, read_json
from tests.fakes.provider_server import FakeProviderServer
from tests.fakes.script import FailPrediction, SlowPrediction
from tests.test_cloud import run_cloud

IMAGE_MODEL = "black-forest-labs/flux-schnell"
VIDEO_MODEL = "kwaivgi/kling-v2.1"


@pytest.fixture
def server(fake_provider_env: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> FakeProviderServer:
    for key, value in {"FBLOOP_POLL_INTERVAL_S": "0.02", "FBLOOP_SCORERS": "offline", "COLUMNS": "500"}.items():
        monkeypatch.setenv(key, value)
    fake_provider_env.image_latency = 0.05
    fake_provider_env.video_latency = 0.1
    return fake_provider_env


def ledger_usd(run: Path) -> float:
    trace = read_json(run / "workflow_trace.json")
    entries = [e for e in trace["ledger"] if e["provider"] == "replicate"]
    jobs = [e["detail"]["job_id"] for e in entries]
    assert len(jobs) == len(set(jobs)), f"a prediction booked twice: {jobs}"
    return round(sum(e["usd"] for e in entries), 6)


def edit_checkpoint(run: Path, change: Any) -> None:
    """What a person (or an older fbloop) could leave: the state changed, the checksum made to match."""
    path = run / "workflow_checkpoint.json"
    envelope = json.loads(path.read_text())
    change(envelope["state"])
    envelope["checksum"] = sha256_bytes(canonical_json(envelope["state"]))
    path.write_text(json.dumps(envelope, indent=1))


def as_old_fbloop_wrote_it(stage: str, error: str | None = None) -> Any:
    """Items of `stage` as fbloop wrote them before `job_state`: a job whose end was not seen marked failed."""

    def change(state: dict[str, Any]) -> None:
        record = next(s for s in state["stages"] if s["name"] == stage)
        for item in record["items"]:
            item.pop("job_state", None)
            if item["status"] != "succeeded":
                item["status"] = "failed"
                item["error"] = error or item["error"]

    return change


def test_outage_while_videos_run_pays_each_video_once(cli: Any, server: FakeProviderServer, tmp_path: Path) -> None:
    """The issue's example: two kling predictions, polls and cancels cut; --retry-failed right after."""
    server.cut("poll", "cancel", model=VIDEO_MODEL)
    out = tmp_path / "runs"
    first = run_cloud(cli, out, "--workflow", "full", "--max-cost", "0.8")
    assert first.exit_code == 1, first.stderr
    run = only_run(out)
    _, state = checkpoint.load(run)
    videos = state.stage("video_generation").items
    assert [(i.status, i.job_state) for i in videos] == [("submitted", "in_flight")] * 2
    error_line = first.stderr.strip().splitlines()[-1]
    assert "still in flight" in error_line and error_line.endswith(f"resume with: fbloop resume {run}")
    assert "Traceback" not in first.stderr

    server.restore()
    again = cli("resume", run, "--retry-failed")  # the command the old fbloop printed: must not pay again
    assert again.exit_code == 0, again.stderr
    kling = [p for p in server.predictions.values() if p.model == VIDEO_MODEL]
    assert len(kling) == 2, "re-attached to both predictions, none created again"
    assert ledger_usd(run) == server.billed_usd <= 0.8
    assert read_json(run / "workflow_summary.json")["status"] == "completed"


@pytest.mark.parametrize("resume_flags", [(), ("--retry-failed",)])
def test_checkpoint_from_before_job_state_re_attaches(
    cli: Any, server: FakeProviderServer, tmp_path: Path, resume_flags: tuple[str, ...]
) -> None:
    """A checkpoint the old fbloop wrote after polling failed: the items `failed`, their predictions alive.
    It still loads; --retry-failed re-attaches to them (and a plain resume never pays for them again)."""
    server.cut("poll", "cancel")
    out = tmp_path / "runs"
    assert run_cloud(cli, out, "--workflow", "image-only").exit_code == 1
    run = only_run(out)
    edit_checkpoint(run, as_old_fbloop_wrote_it("image_generation", "prediction x: polling keeps failing"))
    _, state = checkpoint.load(run)
    assert {(i.status, i.job_state) for i in state.stage("image_generation").items} == {("failed", None)}

    server.restore()
    result = cli("resume", run, *resume_flags)
    if not resume_flags:  # failed items stay failed on a plain resume: nothing new is created either
        assert result.exit_code == 1 and result.stderr.rstrip().endswith("--retry-failed"), result.stderr
        assert server.predictions_created == 3
        result = cli("resume", run, "--retry-failed")
    assert result.exit_code == 0, result.stderr
    assert server.predictions_created == 3, "each item re-attached to its own prediction"
    assert ledger_usd(run) == server.billed_usd == pytest.approx(3 * 0.003)


def test_retry_failed_replaces_only_predictions_that_ended_without_output(
    cli: Any, server: FakeProviderServer, tmp_path: Path
) -> None:
    """Old-style failed items whose predictions really failed: re-attached, seen failed, then created anew."""
    server.fail_next_predictions("CUDA out of memory", count=3, model=IMAGE_MODEL)
    out = tmp_path / "runs"
    assert run_cloud(cli, out, "--workflow", "image-only").exit_code == 1
    run = only_run(out)
    edit_checkpoint(run, as_old_fbloop_wrote_it("image_generation"))
    old = set(server.predictions)

    result = cli("resume", run, "--retry-failed")
    assert result.exit_code == 0, result.stderr
    polled = {r.path.rsplit("/", 1)[-1] for r in server.requests_for("poll")}
    assert old <= polled, "each old prediction was looked at before a new one was made"
    assert server.predictions_created == 6
    assert "had ended failed at the provider; trying again" in result.stderr
    assert ledger_usd(run) == server.billed_usd == pytest.approx(3 * 0.003)


def test_a_re_attached_prediction_is_booked_once(cli: Any, server: FakeProviderServer, tmp_path: Path) -> None:
    """A prediction that succeeded but whose output could not be fetched is booked at once; re-attaching to
    it (a checkpoint without job_state) must not book it again. A retry after that pays for a new one."""
    server.break_next_outputs("missing")
    out = tmp_path / "runs"
    assert run_cloud(cli, out, "--workflow", "image-only").exit_code == 0
    run = only_run(out)
    assert ledger_usd(run) == server.billed_usd == pytest.approx(3 * 0.003)
    edit_checkpoint(run, as_old_fbloop_wrote_it("image_generation"))

    again = cli("resume", run, "--retry-failed")
    assert again.exit_code == 0, again.stderr
    assert server.predictions_created == 3, "re-attached, not created again"
    assert ledger_usd(run) == server.billed_usd, "booked once"
    _, state = checkpoint.load(run)
    broken = next(i for i in state.stage("image_generation").items if i.status == "failed")
    assert broken.job_state == "succeeded", "the provider delivered (and billed); the download failed"

    third = cli("resume", run, "--retry-failed")
    assert third.exit_code == 0, third.stderr
    assert server.predictions_created == 4, "a delivered-but-unusable prediction is replaced on request"
    assert ledger_usd(run) == server.billed_usd == pytest.approx(4 * 0.003)


def test_a_prediction_replicate_does_not_know_is_one_line(cli: Any, server: FakeProviderServer, tmp_path: Path) -> None:
    """A hand-edited job id: Replicate answers 404; the user sees one line, and --retry-failed makes a new one."""
    server.cut("poll", "cancel")
    out = tmp_path / "runs"
    assert run_cloud(cli, out, "--workflow", "image-only").exit_code == 1
    run = only_run(out)
    bogus = "notaprediction0000000000000"
    edited_away = checkpoint.load(run)[1].stage("image_generation").items[0].job_id
    assert edited_away is not None

    def change(state: dict[str, Any]) -> None:
        record = next(s for s in state["stages"] if s["name"] == "image_generation")
        record["items"][0]["job_id"] = bogus

    edit_checkpoint(run, change)
    server.restore()
    result = cli("resume", run)
    assert result.exit_code == 0, result.stderr  # two of three images are enough
    expected = f"! image_01: prediction {bogus} is not known to Replicate (HTTP 404: Prediction not found)"
    assert expected in [line.strip() for line in result.stderr.splitlines()], result.stderr
    assert "ReplicateError" not in result.stderr and "Traceback" not in result.stderr
    _, state = checkpoint.load(run)
    assert state.stage("image_generation").items[0].job_state == "gone"

    retried = cli("resume", run, "--retry-failed")
    assert retried.exit_code == 0, retried.stderr
    assert server.predictions_created == 4
    # the prediction whose id was edited away was billed but belongs to no item: the ledger has the rest
    assert ledger_usd(run) == pytest.approx(server.billed_usd - server.price_of(server.predictions[edited_away]))


def test_replicate_errors_are_one_line() -> None:
    from feedback_cli.providers.replicate_media import describe_error

    assert describe_error(ReplicateError(title="Not Found", status=404, detail="Prediction not found")) == (
        "HTTP 404: Prediction not found"
    )
    assert (
        describe_error(ReplicateError(title="Internal Server Error", status=500)) == "HTTP 500: Internal Server Error"
    )
    hostile = describe_error(ReplicateError(status=502, detail="<html>\n<body>bad gateway</body>\n</html>\n" * 300))
    assert "\n" not in hostile and len(hostile) <= 300 and hostile.startswith("HTTP 502: <html> <body>bad gateway")
    assert describe_error(ConnectionResetError()) == "ConnectionResetError"


def test_a_hostile_create_error_body_is_one_line(cli: Any, server: FakeProviderServer, tmp_path: Path) -> None:
    server.fail_next_creates(422, detail="<html>\n<body>\ninput rejected\n</body>\n</html>\n" * 200)
    result = run_cloud(cli, tmp_path / "runs", "--workflow", "image-only")
    assert result.exit_code == 0, result.stderr
    failed = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("! ")]
    assert len(failed) == 1 and "(HTTP 422): <html> <body> input rejected </body>" in failed[0], result.stderr
    assert len(failed[0]) < 400 and "</html>\n" not in result.stderr


def test_a_re_attached_prediction_counts_against_the_cap_until_booked(
    cli: Any, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On resume a kept prediction is collected while a failed item is tried again. The kept one is paid for and
    not refused, but until its cost lands, the new create must count it: together they would pass the cap."""
    monkeypatch.setenv("FBLOOP_PREDICTION_DEADLINE_S", "1")
    monkeypatch.setenv("FBLOOP_KEEP_PREDICTIONS", "1")
    # image_01 (seed 3) fails, image_03 (seed 5) is kept: on resume the retried item comes first and is refused
    server.script.add("create", FailPrediction("CUDA out of memory"), match='"seed":3,')
    server.script.add("create", SlowPrediction(1.5), match='"seed":5,')
    out = tmp_path / "runs"
    assert run_cloud(cli, out, "--workflow", "image-only").exit_code == 1
    run = only_run(out)
    _, state = checkpoint.load(run)
    states = sorted((i.status, i.job_state) for i in state.stage("image_generation").items)
    assert states == [("failed", "failed"), ("submitted", "in_flight"), ("succeeded", "succeeded")]
    cap = round(state.total_cost + 0.003 + 0.002, 6)  # room for the kept image, not for one more

    result = cli("resume", run, "--retry-failed", "--max-cost", str(cap))
    assert result.exit_code == 1 and "budget reached" in result.stderr, result.stderr
    _, state = checkpoint.load(run)
    items = {i.key: (i.status, i.job_state) for i in state.stage("image_generation").items}
    assert items["image_03"] == ("succeeded", "succeeded"), "a paid-for prediction is collected even at the cap"
    assert items["image_01"][0] == "pending", "the retry the cap cannot pay for waits"
    assert server.predictions_created == 3, "no new prediction the cap could not pay for"
    total = read_json(run / "workflow_trace.json")["ledger"]
    assert sum(e["usd"] for e in total) <= cap
    assert ledger_usd(run) == server.billed_usd == pytest.approx(2 * 0.003), "the kept image collected and booked"


def test_a_replicate_error_is_redacted_before_it_is_cut_to_one_line() -> None:
    """describe_error cuts long provider text to 300 characters: redacting after the cut would miss a token the
    cut split, and leave its first part in the message."""
    from feedback_cli.providers.replicate_media import describe_error
    from feedback_cli.redaction import Redactor

    token = "r8_SPLITCHECK_0123456789abcdef"
    redactor = Redactor([token])
    for at in range(270, 300):  # the token straddles the cut wherever it falls
        body = "x" * (at - len("HTTP 502: ")) + token + " tail" * 50
        line = describe_error(ReplicateError(status=502, detail=body), redactor)
        assert token[:8] not in line and len(line) <= 300, (at, line)
    echo = f"boom\n(request had Authorization: Bearer {token})"
    echoed = describe_error(ReplicateError(status=500, detail=echo), redactor)
    assert echoed == "HTTP 500: boom (request had Authorization: Bearer ***redacted***)"


def test_poll_and_cancel_errors_that_echo_the_token_leave_items_in_flight_redacted(
    cli: Any, server: FakeProviderServer, tmp_path: Path
) -> None:
    """Polls answer 500 with the Authorization header in the body, and the cancels are cut: each item stays in
    flight with a one-line reason whose echoed token is redacted, nowhere printed or stored; a resume collects."""
    from tests.fakes.provider_server import FAKE_OPENAI_API_KEY, FAKE_REPLICATE_API_TOKEN

    server.fail_next_polls(500, count=1000, retry_after=None, echo_auth=True)
    server.cut("cancel")
    out = tmp_path / "runs"
    first = run_cloud(cli, out, "--workflow", "image-only")
    assert first.exit_code == 1, first.stderr
    run = only_run(out)
    _, state = checkpoint.load(run)
    items = state.stage("image_generation").items
    assert [(i.status, i.job_state) for i in items] == [("submitted", "in_flight")] * 3
    for item in items:
        assert item.error is not None and "\n" not in item.error
        assert "could not be polled: 6 failures in a row (HTTP 500:" in item.error, item.error
        assert "Authorization: Bearer ***redacted***" in item.error, item.error
    assert "3 of 3 items still in flight" in first.stderr

    server.script.clear()
    server.restore()
    resumed = cli("resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert server.predictions_created == 3 and ledger_usd(run) == server.billed_usd
    assert FAKE_REPLICATE_API_TOKEN in server.auth_tokens  # it was really sent, and echoed
    for key in (FAKE_OPENAI_API_KEY, FAKE_REPLICATE_API_TOKEN):
        for text in (first.stdout, first.stderr, resumed.stdout, resumed.stderr):
            assert key not in text
        assert not [p.name for p in run.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]


def test_an_estimate_held_for_a_re_attached_prediction_or_a_call_counts_against_the_batch_budget() -> None:
    """A re-attached prediction not yet booked (stages/generation.py) and a chat request in flight are held through the
    ledger's one hold/release, so a batch's shared budget counts them too, not only the run's own cap."""
    from feedback_cli.errors import BudgetError
    from feedback_cli.runstate.models import CallInFlight, RunOptions, RunState
    from feedback_cli.workflow.batch_shared import BatchBudget, BatchLedger

    budget = BatchBudget(max_cost=1.0)
    state = RunState(fbloop_version="0", run_id="run-a", options=RunOptions())
    ledger = BatchLedger(state, None, budget)  # no cap of its own: only the batch's
    ledger.hold(0.6)  # a kept prediction collected on resume, its cost not yet booked
    call = CallInFlight(id="c1", stage="image_prompt", provider="openai", model="m", what="w", estimate_usd=0.3)
    ledger.open_call(call)
    assert budget.reserved == pytest.approx(0.9)
    with pytest.raises(BudgetError, match="batch budget reached"):
        ledger.check(0.2, "image_02 (flux)")  # 0.6 + 0.3 + 0.2 would pass the batch cap of 1.0
    ledger.close_call("c1")
    ledger.release(0.6)
    assert budget.reserved == pytest.approx(0.0) and ledger.reserved == pytest.approx(0.0)
    ledger.check(0.2, "image_02 (flux)")
