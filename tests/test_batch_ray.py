"""`fbloop batch --executor ray` on a local Ray instance (num_cpus=2, one per session): the same files as the
local executor, provider limits shared across workers, and a worker or the driver killed mid-batch losing
nothing. Skipped with a reason where Ray is not installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import read_json
from tests.test_batch import FAST_CLOUD, IMAGE_ONLY, cloud, only_batch, paid_scorer_batch, run_states, write

__all__ = ["cloud"]  # the fake-server fixture, shared with test_batch

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fbloop[ray]'")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One local Ray instance for the whole session (each start costs seconds); yields its GCS address."""
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a local test cluster needs no token
    temp = tempfile.mkdtemp(prefix="fbray", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


#: what a run measures rather than decides: differs between any two runs, whatever the executor
TIMES = frozenset({"wall_s", "latency_s", "time_s", "started_at", "finished_at", "at"})


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def comparable(batch: Path) -> dict[str, Any]:
    """What must not depend on the executor: every generated file's hash, the picks and every score (the
    stage reports also record latencies, which no two runs share)."""
    out: dict[str, Any] = {}
    for name, state in run_states(batch).items():
        out[name] = {
            "status": state["status"],
            "artifacts": sorted(
                (item["artifact"]["path"], item["artifact"]["sha256"])
                for stage in state["stages"]
                for item in stage["items"]
                if item["artifact"]
            ),
            "scores": [stage["scores"] for stage in state["stages"]],
            "outputs": [
                _without_times({k: v for k, v in stage["outputs"].items() if k != "plan"}) for stage in state["stages"]
            ],
        }
    results = [
        {k: v for k, v in json.loads(line).items() if k != "time_s"}
        for line in (batch / "results.jsonl").read_text().splitlines()
    ]
    return {"runs": out, "results": results}


def test_the_same_batch_gives_the_same_files_on_both_executors(cli: Any, ray_cluster: str, tmp_path: Path) -> None:
    prompts = write(
        tmp_path / "p.csv",
        "id,prompt,seed,num_image_variations\nfox,a red fox in snow,4,\nkite,a blue kite over the sea,,3\n"
        "owl,an owl at night,8,2\n",
    )
    common = (*IMAGE_ONLY, "--num-image-variations", "2", "--seed", "21", "--concurrency", "2")
    local = cli("batch", prompts, *common, "--output-dir", tmp_path / "local")
    assert local.exit_code == 0, local.stderr
    remote = cli("batch", prompts, *common, "--executor", "ray", "--output-dir", tmp_path / "ray")
    assert remote.exit_code == 0, remote.stderr
    a, b = only_batch(tmp_path / "local"), only_batch(tmp_path / "ray")
    assert read_json(b / "batch_summary.json")["executor"] == "ray"
    assert comparable(a)["runs"] and comparable(a) == comparable(b)
    for name in ("fox", "kite", "owl"):  # the media files themselves, byte for byte
        for image in sorted((a / "runs" / name / "stage_2_image_generation").glob("*.png")):
            twin = b / "runs" / name / "stage_2_image_generation" / image.name
            assert twin.read_bytes() == image.read_bytes()


def _lock_pids(batch: Path) -> list[int]:
    pids = []
    for lock in (batch / "runs").glob("*/.fbloop.lock.owner.json"):  # who holds each run's lock
        try:
            pids.append(int(json.loads(lock.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _partial_run(batch: Path) -> bool:
    try:
        states = run_states(batch)
    except (OSError, ValueError, KeyError):
        return False
    return any(
        s["status"] == "running" and any(i["status"] == "succeeded" for st in s["stages"] for i in st["items"])
        for s in states.values()
    )


def _ray_batch_at_a_kill_point(
    cloud: Any, ray_cluster: str, tmp_path: Path, prompt: str, seed: int
) -> tuple[subprocess.Popen[str], dict[str, str], Path]:
    """`fbloop batch --executor ray` of 3 rows x 3 images in its own process, returned once a row has a finished
    image and a live worker holds its lock (the moment these tests kill something): the process, its
    environment (for the resume) and the batch folder."""
    cloud.image_latency = 0.5
    prompts = write(tmp_path / "p.txt", "".join(f"{prompt} {i}\n" for i in range(3)))
    out = tmp_path / "batches"
    env = {
        **os.environ,
        **cloud.env(),
        **FAST_CLOUD,
        "FBLOOP_REPLICATE_CONCURRENCY": "2",
        "RAY_ADDRESS": ray_cluster,
        "RAY_AUTH_MODE": "disabled",
    }
    cmd = [
        sys.executable, "-m", "feedback_cli", "batch", str(prompts), *IMAGE_ONLY, "--backend", "cloud",
        "--num-image-variations", "3", "--concurrency", "2", "--seed", str(seed), "--executor", "ray",
        "--output-dir", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "the batch never reached the kill point"
            assert proc.poll() is None, proc.communicate()
            batch = only_batch(out) if out.exists() and any(out.iterdir()) else None
            if batch is not None and _partial_run(batch) and _lock_pids(batch):
                return proc, env, batch
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        raise


def _resume_to_the_end(batch: Path, env: dict[str, str], cloud: Any) -> None:
    """A plain `fbloop resume` finishes every row, and no prediction was paid for twice."""
    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(batch)], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    states = run_states(batch)
    assert len(states) == 3 and all(s["status"] == "completed" for s in states.values())
    assert cloud.predictions_created == 9, cloud.predictions_per_model  # one create per item: none paid twice
    assert cloud.duplicate_predictions() == []
    assert cloud.max_in_flight_predictions <= 2  # the limit held across every Ray worker


@pytest.mark.parametrize("victim", ["worker", "driver"])
def test_a_killed_ray_worker_or_driver_loses_nothing(cloud: Any, ray_cluster: str, tmp_path: Path, victim: str) -> None:
    proc, env, batch = _ray_batch_at_a_kill_point(cloud, ray_cluster, tmp_path, "a harbour at dawn, take", seed=6)
    killed: list[int] = []
    try:
        if victim == "worker":
            pid = _lock_pids(batch)[0]  # the Ray worker process running that row
            assert pid != proc.pid
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            _, stderr = proc.communicate(timeout=180)
            # Ray re-ran the row on another worker, which resumed it from its checkpoint: the batch finished
            assert proc.returncode == 0, stderr
        else:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            # Ray ends a dead driver's workers; wait until none still holds a run
            deadline = time.monotonic() + 60
            while any(_alive(p) for p in _lock_pids(batch)):
                assert time.monotonic() < deadline, "Ray left the dead driver's workers running"
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    if victim == "worker":
        assert killed and not _alive(killed[0])
    _resume_to_the_end(batch, env, cloud)
    summary = read_json(batch / "batch_summary.json")
    assert summary["status"] == "completed" and summary["executor"] == "ray"


def _actor_pid(class_name: str) -> int:
    """The process of the running batch's actor of that class (the newest alive: earlier drivers' are gone)."""
    from ray._private.state import actors  # the GCS table; the public state API needs the dashboard

    alive = [a for a in actors().values() if a["ActorClassName"] == class_name and a["State"] == "ALIVE"]
    assert alive, f"no live {class_name}"
    return int(max(alive, key=lambda a: a["StartTime"])["Pid"])


@pytest.mark.parametrize("actor", ["LimiterActor", "BudgetActor"])
def test_a_lost_batch_actor_leaves_rows_resumable_not_failed(
    cloud: Any, ray_cluster: str, tmp_path: Path, actor: str
) -> None:
    """What a killed driver does to its rows, made certain: Ray ends the job's actors while rows still run on
    its workers. A row must stop as if killed (its run resumable), never record a failed stage, a left-out
    score or an unlimited call; a plain resume then finishes every row and pays for nothing twice."""
    proc, env, batch = _ray_batch_at_a_kill_point(cloud, ray_cluster, tmp_path, "a pier in fog, frame", seed=9)
    try:
        os.kill(_actor_pid(actor), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    states = run_states(batch)
    assert all(s["status"] != "failed" for s in states.values()), {n: s["error"] for n, s in states.items()}
    assert all(st["status"] != "failed" for s in states.values() for st in s["stages"])
    summary = read_json(batch / "batch_summary.json")
    assert "failed" not in summary["counts"] and summary["counts"].get("completed", 0) < 3, summary["counts"]
    for row in summary["results"]:  # a stopped row keeps what its run paid: the batch's spend forgets nothing
        spent = sum(e["usd"] for e in states[row["id"]]["ledger"]) if row["id"] in states else 0.0
        assert row["cost_usd"] == pytest.approx(spent, abs=1e-6), row
    _resume_to_the_end(batch, env, cloud)


def test_ray_executor_shares_the_provider_limit_across_workers(
    cli: Any, cloud: Any, ray_cluster: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FBLOOP_REPLICATE_CONCURRENCY", "2")
    cloud.image_latency = 0.3
    prompts = write(tmp_path / "p.txt", "".join(f"a market street, view {i}\n" for i in range(3)))
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "3", "--concurrency", "3",
        "--seed", "2", "--executor", "ray", "--output-dir", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert cloud.predictions_created == 9
    assert 1 < cloud.max_in_flight_predictions <= 2


def test_scorer_gpus_the_cluster_lacks_are_refused_in_one_line(
    cli: Any, ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBLOOP_RAY_SCORER_GPUS", "1")  # the session cluster has num_gpus=0
    prompts = write(tmp_path / "p.txt", "a fox\n")
    result = cli("batch", prompts, *IMAGE_ONLY, "--executor", "ray", "--output-dir", tmp_path / "b")
    assert result.exit_code == 2
    assert "FBLOOP_RAY_SCORER_GPUS is 1 but the Ray cluster has 0 GPU(s)" in result.stderr
    batch = only_batch(tmp_path / "b")
    assert read_json(batch / "batch_summary.json")["counts"] == {"pending": 1}  # resumable once fixed


def test_one_budget_across_ray_workers(cli: Any, cloud: Any, ray_cluster: str, tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "".join(f"a quiet lake, hour {i}\n" for i in range(4)))
    cap = 0.015  # 4 rows x 3 images at $0.003 (+ the prompt calls) is about $0.04
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "3", "--concurrency", "2",
        "--seed", "3", "--max-cost", str(cap), "--executor", "ray", "--output-dir", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    batch = only_batch(tmp_path / "b")
    spent = sum(e["usd"] for s in run_states(batch).values() for e in s["ledger"])
    assert spent <= cap + 1e-9 and cloud.predictions_created * 0.003 <= cap
    assert read_json(batch / "batch_summary.json")["not_finished"] >= 1
    again = cli("resume", batch, "--max-cost", "1")
    assert again.exit_code == 0, again.stderr
    assert cloud.predictions_created == 12 and cloud.duplicate_predictions() == []


@pytest.mark.parametrize("scorers", ["vqascore", "offline"])  # VQAScore itself; the element check (offline set)
def test_a_scorer_that_pays_per_request_is_booked_and_capped_under_ray(
    cli: Any, cloud: Any, ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scorers: str
) -> None:
    """A scorer that calls a paid API runs in the row's own process, where the run's meter books each request
    and holds it to the budget; on the batch's shared scorer actor its requests would be sent unbooked."""
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    paid_scorer_batch(cli, cloud, tmp_path, scorers, "--executor", "ray")
