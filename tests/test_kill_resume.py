"""A real `fbloop` process killed with SIGKILL mid-run resumes with `fbloop resume` and finishes;
what was finished before the kill is byte-identical after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feedback_cli.files import sha256_file
from tests.conftest import EXAMPLE, read_json


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the run to reach the kill point")


def checkpoint_state(out: Path) -> dict | None:
    runs = [p for p in out.glob("*") if p.is_dir()] if out.exists() else []
    if not runs:
        return None
    try:
        return json.loads((runs[0] / "workflow_checkpoint.json").read_text())["state"]
    except (OSError, ValueError, KeyError):
        return None


def finished_artifacts(state: dict) -> dict[str, str]:
    out = {}
    for stage in state["stages"]:
        for item in stage["items"]:
            if item["status"] == "succeeded" and item["artifact"]:
                out[item["artifact"]["path"]] = item["artifact"]["sha256"]
        if stage["status"] == "completed":
            out.update({a["path"]: a["sha256"] for a in stage["artifacts"]})
    return out


@pytest.mark.parametrize("kill_point", ["inside-image-generation", "inside-video-generation"])
def test_sigkill_then_resume_finishes_with_identical_outputs(tmp_path: Path, kill_point: str) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "FBLOOP_OFFLINE_LATENCY": "0.25", "FBLOOP_OFFLINE_CONCURRENCY": "2"}
    cmd = [
        sys.executable,
        "-m",
        "feedback_cli",
        "run",
        str(EXAMPLE),
        "--storyboard",
        "--clips",
        "2",
        "--seed",
        "11",
        "--num-image-variations",
        "6",
        "--num-video-attempts",
        "2",
        "--output-dir",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stage = "image_generation" if kill_point == "inside-image-generation" else "video_generation"

    def reached() -> bool:
        state = checkpoint_state(out)
        if state is None:
            return False
        record = next(s for s in state["stages"] if s["name"] == stage)
        return any(i["status"] == "succeeded" for i in record["items"])

    try:
        wait_for(reached)
        before = checkpoint_state(out)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert before is not None
    record = next(s for s in before["stages"] if s["name"] == stage)
    assert record["status"] == "running", "killed in the middle of the stage"
    assert any(i["status"] != "succeeded" for i in record["items"]) or len(record["items"]) < 6
    run = next(p for p in out.iterdir() if p.is_dir())
    frozen = {path: sha256_file(run / path) for path in finished_artifacts(before)}
    assert frozen == finished_artifacts(before)

    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(run)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = read_json(run / "workflow_summary.json")
    assert summary["status"] == "completed" and len(summary["best_videos"]) == 2
    for path, digest in frozen.items():
        assert sha256_file(run / path) == digest, f"{path} changed across the resume"
    # the resumed run continued: the stages finished before the kill were not run again
    final = read_json(run / "workflow_trace.json")
    attempts = {s["name"]: s["attempts"] for s in final["stages"]}
    assert attempts["image_prompt"] == 1
    assert attempts[stage] == 2
