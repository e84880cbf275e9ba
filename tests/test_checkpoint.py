"""Checkpoints: atomic writes, full validation on resume, resume semantics, one process per run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from feedback_cli.files import canonical_json, sha256_bytes
from feedback_cli.runstate.models import SCHEMA_VERSION
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.lock import LOCK_NAME
from tests.conftest import EXAMPLE, only_run, read_json


@pytest.fixture
def finished_run(cli, tmp_path: Path) -> Path:
    out = tmp_path / "runs"
    result = cli(
        "run", EXAMPLE, "--workflow", "image-only", "--seed", "2", "--num-image-variations", "2", "--output-dir", out
    )
    assert result.exit_code == 0, result.stderr
    return only_run(out)


def rewrite_state(run: Path, mutate) -> None:
    """Edit the checkpoint's state and re-seal it with a valid checksum (a deliberate, not a torn, edit)."""
    path = run / checkpoint.CHECKPOINT_NAME
    envelope = json.loads(path.read_text())
    mutate(envelope["state"])
    envelope["checksum"] = sha256_bytes(canonical_json(envelope["state"]))
    path.write_text(json.dumps(envelope))


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}


def test_checkpoint_is_sealed_and_loads(finished_run: Path) -> None:
    envelope = read_json(finished_run / "workflow_checkpoint.json")
    assert envelope["format"] == "fbloop-checkpoint" and envelope["schema_version"] == SCHEMA_VERSION
    assert envelope["checksum"] == sha256_bytes(canonical_json(envelope["state"]))
    run_dir, state = checkpoint.load(finished_run)
    assert run_dir == finished_run and state.status == "completed"
    assert all(a.sha256 for a in state.all_artifacts())


def test_a_crash_during_save_leaves_the_old_checkpoint(finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (finished_run / "workflow_checkpoint.json").read_bytes()
    _, state = checkpoint.load(finished_run)
    state.status = "running"

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    from feedback_cli.runstate.runfolder import RunFolder

    with pytest.raises(OSError):
        checkpoint.save(RunFolder(finished_run), state)
    monkeypatch.undo()
    assert (finished_run / "workflow_checkpoint.json").read_bytes() == before
    assert not list(finished_run.glob(".workflow_checkpoint.json.*")), "temp file cleaned up"
    checkpoint.load(finished_run)


def test_resuming_a_finished_run_changes_nothing(cli, finished_run: Path) -> None:
    before = snapshot(finished_run)
    result = cli("resume", finished_run)
    assert result.exit_code == 0
    assert "already complete" in result.stderr
    assert snapshot(finished_run) == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "workflow_checkpoint.json").write_text('{"format": "fbloop-checkp'), "is not valid JSON"),
        (
            lambda run: (run / "workflow_checkpoint.json").write_text(
                (run / "workflow_checkpoint.json").read_text().replace('"status": "completed"', '"status": "running"')
            ),
            "failed its checksum",
        ),
        (
            lambda run: (
                rewrite_state(run, lambda s: None)
                or (run / "workflow_checkpoint.json").write_text(
                    (run / "workflow_checkpoint.json")
                    .read_text()
                    .replace(f'"schema_version": {SCHEMA_VERSION}', '"schema_version": 99', 1)
                )
            ),
            "newer than this fbloop supports",
        ),
        (
            lambda run: (run / "stage_2_image_generation" / "image_01.png").write_bytes(b"tampered"),
            "changed since it was recorded",
        ),
        (lambda run: (run / "stage_2_image_generation" / "image_02.png").unlink(), "is missing"),
        (
            lambda run: rewrite_state(
                run, lambda s: s["stages"][1]["items"][0]["artifact"].update(path="../../etc/passwd")
            ),
            "points outside the run folder",
        ),
        (
            lambda run: rewrite_state(run, lambda s: s["stages"][1]["items"][0]["artifact"].update(path="/etc/passwd")),
            "is absolute",
        ),
        (
            lambda run: rewrite_state(run, lambda s: s["stages"][0].update(folder="../elsewhere")),
            "points outside the run folder",
        ),
        (lambda run: rewrite_state(run, lambda s: s.update(options="nonsense")), "is invalid at options"),
        (lambda run: (run / "workflow_checkpoint.json").write_text('["a list"]'), "is not an fbloop checkpoint"),
    ],
    ids=[
        "truncated",
        "edited",
        "newer-schema",
        "artifact-changed",
        "artifact-missing",
        "path-escapes",
        "path-absolute",
        "stage-folder-escapes",
        "invalid-field",
        "not-a-checkpoint",
    ],
)
def test_untrustworthy_checkpoints_are_refused(cli, finished_run: Path, damage, message: str) -> None:
    rewrite_state(finished_run, lambda s: s.update(status="interrupted"))  # so resume would do work
    damage(finished_run)
    before = snapshot(finished_run)
    result = cli("resume", finished_run)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(finished_run) == before, "a refused resume writes nothing"


def test_resume_accepts_the_checkpoint_file_itself(cli, finished_run: Path) -> None:
    result = cli("resume", finished_run / "workflow_checkpoint.json")
    assert result.exit_code == 0 and "already complete" in result.stderr


def test_resume_continues_at_the_first_unfinished_stage(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert (
        cli(
            "run",
            EXAMPLE,
            "--seed",
            "4",
            "--num-image-variations",
            "2",
            "--num-video-attempts",
            "1",
            "--output-dir",
            out,
        ).exit_code
        == 0
    )
    run = only_run(out)
    images = {p.name: p.read_bytes() for p in (run / "stage_2_image_generation").glob("*.png")}
    video_dir = run / "stage_5_video_generation"
    # pretend the run died after stage 4: stage 5 unfinished, its files gone
    for path in video_dir.iterdir():
        path.unlink()
    video_dir.rmdir()

    def undo_stage5(state: dict) -> None:
        state["status"] = "interrupted"
        stage5 = state["stages"][-1]
        stage5.update(status="interrupted", items=[], artifacts=[], outputs={}, scores={})
        state["ledger"] = [e for e in state["ledger"] if e["stage"] != "video_generation"]

    rewrite_state(run, undo_stage5)
    result = cli("resume", run)
    assert result.exit_code == 0, result.stderr
    assert "4 of 5 stages done" in result.stderr
    assert "Stage 5" in result.stderr and "Stage 2" not in result.stderr
    assert {p.name: p.read_bytes() for p in (run / "stage_2_image_generation").glob("*.png")} == images
    summary = read_json(run / "workflow_summary.json")
    assert summary["status"] == "completed" and summary["best_video"]


def test_run_dash_dash_resume_is_the_same_as_resume(cli, finished_run: Path) -> None:
    result = cli("run", "--resume", finished_run)
    assert result.exit_code == 0 and "already complete" in result.stderr


def test_resume_with_workflow_is_a_usage_error(cli, finished_run: Path) -> None:
    result = cli("run", "--resume", finished_run, "--workflow", "full")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "fbloop: error: --resume and --workflow cannot be used together (a run keeps its workflow)"
    )


def test_a_live_lock_refuses_a_second_process(cli, finished_run: Path) -> None:
    from feedback_cli.workflow.lock import RunLock

    rewrite_state(finished_run, lambda s: s.update(status="interrupted"))
    with RunLock(finished_run):  # held by this process, as a running fbloop would hold it
        result = cli("resume", finished_run)
    assert result.exit_code == 2 and "in use by another fbloop process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_stale_lock_is_taken_over(cli, finished_run: Path) -> None:
    rewrite_state(finished_run, lambda s: s.update(status="interrupted"))
    (finished_run / LOCK_NAME).write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename}))
    result = cli("resume", finished_run)
    assert result.exit_code == 0, result.stderr
    assert read_json(finished_run / "workflow_summary.json")["status"] == "completed"
    # the lock file stays (waiters share its inode); the lock on it is free
    from tests.test_lock import lock_is_free

    assert lock_is_free(finished_run)
