"""A batch driver killed (SIGKILL) at any point, then `fbloop resume BATCH_DIR` with the local executor: each
row is reconciled from its run folder's own checkpoint, whatever the batch checkpoint last said. Runs that
finished are counted as done and never run or paid again (their folders byte for byte the same); runs cut
off are resumed; every item is paid once. Cloud runs use the real clients against the fake provider server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.workflow.batch import write_results
from feedback_cli.workflow.batch_state import RowResult, load_batch, save_batch
from tests.conftest import read_json
from tests.test_batch import FAST_CLOUD, IMAGE_ONLY, cloud, folder_digests, only_batch, run_states, write

__all__ = ["cloud"]  # the fake-server fixture, shared with test_batch

ROWS = 3
VARIATIONS = 3


def _items_paid(states: dict[str, dict[str, Any]]) -> int:
    return sum(1 for s in states.values() for st in s["stages"] for i in st["items"] if i["status"] == "succeeded")


def _finished(states: dict[str, dict[str, Any]]) -> int:
    return sum(1 for s in states.values() if s["status"] == "completed")


#: where the driver is killed, read from the run folders it writes (name -> condition on the runs' states)
KILL_POINTS: dict[str, Callable[[dict[str, dict[str, Any]]], bool]] = {
    # a run has its first checkpoint, nothing is paid for yet (its prompt stage waits on the slow chat)
    "a_run_started_nothing_paid": lambda states: bool(states) and _items_paid(states) == 0,
    # images are paid for, no run has finished
    "items_paid_no_run_finished": lambda states: _items_paid(states) > 0 and _finished(states) == 0,
    # one run finished (the driver may not have recorded it yet), another one part-way
    "one_run_finished_one_partial": lambda states: (
        _finished(states) >= 1
        and any(
            s["status"] == "running" and any(i["status"] == "succeeded" for st in s["stages"] for i in st["items"])
            for s in states.values()
        )
    ),
}


def _env(cloud: Any) -> dict[str, str]:
    return {**os.environ, **cloud.env(), **FAST_CLOUD, "FBLOOP_REPLICATE_CONCURRENCY": "2"}


def _batch_command(prompts: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "feedback_cli", "batch", str(prompts), *IMAGE_ONLY, "--backend", "cloud",
        "--num-image-variations", str(VARIATIONS), "--concurrency", "2", "--seed", "11", "--output-dir", str(out),
    ]  # fmt: skip


def _resume(batch: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(batch)], env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def _rows_done_line(stderr: str) -> int:
    found = re.search(r"(\d+) of (\d+) rows done", stderr)
    assert found, stderr
    assert int(found.group(2)) == ROWS
    return int(found.group(1))


def _assert_all_done_once(batch: Path, cloud: Any, finished_before: dict[str, dict[str, str]]) -> None:
    states = run_states(batch)
    assert len(states) == ROWS and all(s["status"] == "completed" for s in states.values())
    assert cloud.predictions_created == ROWS * VARIATIONS, cloud.predictions_per_model  # each item paid once
    assert cloud.duplicate_predictions() == []
    for name, digests in finished_before.items():  # a finished run was not touched: not re-run, not re-paid
        assert folder_digests(batch / "runs" / name) == digests, name
    _, state = load_batch(batch)
    assert state.status == "completed" and [r.status for r in state.rows] == ["completed"] * ROWS
    summary = read_json(batch / "batch_summary.json")
    assert summary["status"] == "completed" and summary["counts"] == {"completed": ROWS}
    assert all(r["best_image"] for r in summary["results"])


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_driver_killed_at_any_point_resumes_without_redoing_finished_rows(
    cloud: Any, tmp_path: Path, point: str
) -> None:
    cloud.llm_latency = 0.3  # a run's prompt stage takes a moment: its first checkpoint comes before any payment
    cloud.image_latency = 0.4
    prompts = write(tmp_path / "p.txt", "".join(f"a lighthouse in rain, shot {i}\n" for i in range(ROWS)))
    out = tmp_path / "batches"
    env = _env(cloud)
    proc = subprocess.Popen(_batch_command(prompts, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reached = KILL_POINTS[point]
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"the batch never reached {point}"
            assert proc.poll() is None, proc.communicate()
            try:
                states = run_states(only_batch(out)) if out.exists() and any(out.iterdir()) else {}
            except (OSError, ValueError, KeyError):  # a folder being made: look again
                continue
            if reached(states):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    batch = only_batch(out)
    states = run_states(batch)
    finished = {n: folder_digests(batch / "runs" / n) for n, s in states.items() if s["status"] == "completed"}
    assert len(finished) < ROWS
    resumed = _resume(batch, env)
    assert resumed.returncode == 0, resumed.stderr
    assert _rows_done_line(resumed.stderr) == len(finished)  # counted from the runs, not the batch checkpoint
    _assert_all_done_once(batch, cloud, finished)


def test_runs_finished_after_the_driver_last_wrote_are_done_on_resume(cli: Any, cloud: Any, tmp_path: Path) -> None:
    """The last window of a kill: every run's own checkpoint says completed, while the batch checkpoint still
    has the rows running or pending (the driver died before it recorded them). Made exactly, not raced for."""
    prompts = write(tmp_path / "p.txt", "".join(f"a windmill at noon, shot {i}\n" for i in range(ROWS)))
    out = tmp_path / "batches"
    first = cli("batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", str(VARIATIONS),
                "--seed", "12", "--output-dir", out)  # fmt: skip
    assert first.exit_code == 0, first.stderr
    batch = only_batch(out)
    root, state = load_batch(batch)
    for row, status in zip(state.rows, ["running", "running", "pending"], strict=True):
        row.status = status  # type: ignore[assignment]
        row.result = RowResult()
        row.finished_at = None
    state.status = "running"
    save_batch(root, state, [])
    write_results(root, state)
    finished = {p.name: folder_digests(p) for p in sorted((batch / "runs").iterdir())}
    created = cloud.predictions_created

    resumed = cli("resume", batch)
    assert resumed.exit_code == 0, resumed.stderr
    assert "already complete" in resumed.stderr
    assert cloud.predictions_created == created
    # the reconciled rows are recorded: the batch files say what the runs say
    _assert_all_done_once(batch, cloud, finished)
    csv_rows = (batch / "results.csv").read_text().splitlines()[1:]
    assert len(csv_rows) == ROWS and all(",completed," in line for line in csv_rows)
