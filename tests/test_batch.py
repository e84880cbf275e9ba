"""`fbloop batch`: rows from every format (bad rows all at once), the batch folder, shared provider limits,
one budget, resume (also after SIGKILL), failed rows and --retry-failed. Cloud runs use the real clients
against the fake provider server."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.choices import Workflow
from feedback_cli.errors import InputError
from feedback_cli.files import sha256_file
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.batch_rows import read_rows
from feedback_cli.workflow.batch_state import load_batch
from tests.conftest import read_json

FAST_CLOUD = {"FBLOOP_POLL_INTERVAL_S": "0.02", "FBLOOP_SCORERS": "offline"}
# one round: these tests count one round's predictions (rounds: tests/test_rounds.py)
IMAGE_ONLY = ("--workflow", "image-only", "--max-iterations-image", "1", "--max-rounds-image", "1")


@pytest.fixture
def cloud(fake_provider_env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in FAST_CLOUD.items():
        monkeypatch.setenv(key, value)
    fake_provider_env.image_latency = 0.05
    return fake_provider_env


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def a_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 40, 40)).save(path)
    return path


def only_batch(out: Path) -> Path:
    batches = [p for p in out.iterdir() if p.is_dir()]
    assert len(batches) == 1, batches
    return batches[0]


def run_states(batch: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name: read_json(p / "workflow_checkpoint.json")["state"]
        for p in sorted((batch / "runs").iterdir())
        if (p / "workflow_checkpoint.json").exists()
    }


def folder_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- rows --------------------------------------------------------------------------------------------


def test_txt_rows_skip_comments_and_blank_lines_and_keep_line_numbers(tmp_path: Path) -> None:
    rows = read_rows(write(tmp_path / "p.txt", "# a comment\na red fox\n\n   \n  a blue kite  \n# more\nan owl\n"))
    assert [(r.id, r.line, r.prompt) for r in rows] == [
        ("row_001", 2, "a red fox"),
        ("row_002", 5, "a blue kite"),
        ("row_003", 7, "an owl"),
    ]
    assert all(r.options == {} for r in rows)


def test_csv_rows_take_ids_and_any_run_option_by_its_long_name(tmp_path: Path) -> None:
    image = a_png(tmp_path / "start.png")
    text = (
        "id,prompt,seed,num-image-variations,--threshold-image,storyboard,workflow,input_image\n"
        "fox,a red fox,7,2,70,yes,,\n"
        'kite,"a kite, blue",,,,,,\n'
        f"clip,a moving scene,,,,,video-only,{image.name}\n"
    )
    rows = read_rows(write(tmp_path / "p.csv", text))
    assert [r.id for r in rows] == ["fox", "kite", "clip"]
    assert rows[0].options == {"seed": 7, "num_image_variations": 2, "threshold_image": 70.0, "storyboard": True}
    assert rows[1].prompt == "a kite, blue" and rows[1].options == {}
    assert rows[2].options == {"workflow": "video-only"} and rows[2].input_image == str(image.resolve())


def test_jsonl_rows_take_typed_values(tmp_path: Path) -> None:
    text = (
        '{"prompt": "a red fox", "id": 12, "seed": 3, "num_image_variations": 2}\n'
        "\n"
        '{"prompt": "a kite", "max-iterations-image": "2", "backend": "offline", "scorers": "offline"}\n'
    )
    rows = read_rows(write(tmp_path / "p.jsonl", text))
    assert [(r.id, r.line) for r in rows] == [("12", 1), ("row_002", 3)]
    assert rows[0].options == {"seed": 3, "num_image_variations": 2}
    assert rows[1].options == {"max_iterations_image": 2, "backend": "offline", "scorers": "offline"}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "p.csv",
            "id,prompt,seed,colour\nok,a fox,1,\nbad id!,a kite,x,red\nok,,2,\nv,an owl,3,\n",
            [
                "line 3: id 'bad id!' must be",
                "line 3: seed must be a whole number",
                "line 3: unknown field 'colour'",
                "line 4: no prompt",
                "line 4: id 'ok' is already used on line 2",
            ],
        ),
        (
            "p.jsonl",
            '{"prompt": "a fox"}\n{"prompt": "a kite"\n["a list"]\n{"prompt": "x", "clips": 99, "interactive": true}\n',
            [
                "line 2: not valid JSON",
                "line 3: a row must be a JSON object",
                "line 4: clips must be between 1 and 12, got 99",
                "line 4: interactive cannot be set per row",
            ],
        ),
        (
            "p.csv",
            "prompt,workflow,input_image\na fox,video-only,\nan owl,image-only,missing.png\na kite,sideways,\n",
            [
                "line 2: workflow video-only needs an input_image",
                "line 3: input_image",
                "line 4: workflow must be one of",
            ],
        ),
        ("p.txt", "# only comments\n\n", ["no prompts in the file"]),
        ("p.csv", "text,seed\na fox,1\n", ["line 1: the header has no 'prompt' column"]),
        ("p.yaml", "- a fox\n", ["must end in .txt, .csv or .jsonl"]),
    ],
)
def test_bad_rows_are_all_reported_with_line_numbers_before_anything_runs(
    cli: Any, tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    prompts = write(tmp_path / name, text)
    out = tmp_path / "batches"
    result = cli("batch", prompts, "--output-dir", out)
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one line naming every problem
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.stderr
    assert not out.exists(), "nothing may be written for a bad prompts file"


def test_bad_rows_read_directly_raise_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_rows(write(tmp_path / "p.csv", "prompt,seed\n,1\nfox,-4\n"), default_workflow=Workflow.image_only)
    assert "2 problems" in caught.value.message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--concurrency", "0"), "--concurrency must be between 1 and 256"),
        (("--executor", "spark"), "--executor must be local or ray"),
        (("--ray-address", "auto"), "--ray-address is only used with --executor ray"),
        (("--max-cost", "-1"), "--max-cost must be 0 or more"),
        (("--num-image-variations", "0"), "--num-image-variations must be between 1 and 64"),
    ],
)
def test_bad_batch_options_are_one_line(cli: Any, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    prompts = write(tmp_path / "p.txt", "a fox\n")
    result = cli("batch", prompts, "--output-dir", tmp_path / "b", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "b").exists()


# --- the batch folder (offline) ----------------------------------------------------------------------


def test_offline_batch_writes_one_valid_run_folder_per_row_and_the_results(cli: Any, tmp_path: Path) -> None:
    prompts = write(
        tmp_path / "p.csv",
        "id,prompt,seed,num_image_variations\nfox,a red fox in snow,4,2\nkite,a blue kite,,3\nowl,an owl at night,,\n",
    )
    out = tmp_path / "batches"
    result = cli("batch", prompts, *IMAGE_ONLY, "--num-image-variations", "2", "--seed", "9", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    batch = only_batch(out)
    _, state = load_batch(batch)  # atomic, hashed, valid
    assert [r.status for r in state.rows] == ["completed"] * 3
    assert {r.id: r.options.seed for r in state.rows} == {"fox": 4, "kite": 9, "owl": 9}
    assert (batch / "input" / "prompts.csv").read_bytes() == prompts.read_bytes()
    states = run_states(batch)
    assert sorted(states) == ["fox", "kite", "owl"]
    assert [len(s["stages"][1]["items"]) for s in (states["fox"], states["kite"], states["owl"])] == [2, 3, 2]
    for name in states:  # each run folder is an ordinary run: it validates, and inspect reads it
        checkpoint.load(batch / "runs" / name)
        shown = cli("inspect", batch / "runs" / name, "--json")
        assert shown.exit_code == 0, shown.stderr
        assert json.loads(shown.stdout)["run_id"] == name
    with (batch / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["id"] for r in table] == ["fox", "kite", "owl"]
    for row in table:
        assert row["status"] == "completed"
        assert (batch / row["best_image"]).is_file()
        assert float(row["image_generation.best_overall"]) >= 0
        assert row["image_prompt.prompt_score"] != ""
        assert float(row["time_s"]) > 0 and row["cost_usd"] == "0.0"
    jsonl = [json.loads(line) for line in (batch / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in jsonl] == ["fox", "kite", "owl"]
    summary = read_json(batch / "batch_summary.json")
    assert summary["status"] == "completed" and summary["counts"] == {"completed": 3}
    assert summary["not_finished"] == 0
    assert "3 completed" in result.stdout
    # resuming a finished batch changes nothing
    before = folder_digests(batch)
    again = cli("resume", batch)
    assert again.exit_code == 0 and "already complete" in again.stderr
    assert folder_digests(batch) == before


def test_video_only_rows_take_their_own_or_the_batch_start_frame(cli: Any, tmp_path: Path) -> None:
    mine = a_png(tmp_path / "mine.png")
    shared = a_png(tmp_path / "shared.png")
    prompts = write(
        tmp_path / "p.jsonl",
        json.dumps({"id": "a", "prompt": "the camera pans", "input_image": "mine.png"})
        + "\n"
        + json.dumps({"id": "b", "prompt": "slow zoom"})
        + "\n",
    )
    out = tmp_path / "batches"
    result = cli(
        "batch",
        prompts,
        "--workflow",
        "video-only",
        "--input-image",
        shared,
        "--num-video-attempts",
        "1",
        "--max-iterations-video",
        "1",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.stderr
    states = run_states(only_batch(out))
    digests = {name: s["inputs"][0]["sha256"] for name, s in states.items() if s["inputs"]}
    assert digests["a"] == sha256_file(mine) and digests["b"] == sha256_file(shared)


# --- shared provider limits and one budget (cloud, fake server) --------------------------------------


def test_provider_limits_are_shared_by_the_whole_batch(cli: Any, cloud: Any, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FBLOOP_REPLICATE_CONCURRENCY", "3")
    cloud.image_latency = 0.3
    prompts = write(tmp_path / "p.txt", "".join(f"prompt number {i}\n" for i in range(6)))
    out = tmp_path / "batches"
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "4", "--concurrency", "6",
        "--seed", "1", "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert cloud.predictions_created == 24
    # 6 runs x 4 images in flight at once would be 24; the shared limit keeps the whole batch at 3
    assert 1 < cloud.max_in_flight_predictions <= 3
    assert cloud.duplicate_predictions() == []


def test_one_budget_for_the_batch_then_resume_with_a_higher_cap(cli: Any, cloud: Any, tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "".join(f"a scene number {i}\n" for i in range(5)))
    out = tmp_path / "batches"
    cap = 0.015  # 5 rows x 3 images at $0.003 (+ the prompt calls and the element check) is about $0.05
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "3", "--concurrency", "2",
        "--seed", "2", "--max-cost", str(cap), "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    batch = only_batch(out)
    states = run_states(batch)
    spent = sum(e["usd"] for s in states.values() for e in s["ledger"])
    assert spent <= cap + 1e-9
    assert cloud.predictions_created * 0.003 <= cap
    summary = read_json(batch / "batch_summary.json")
    assert summary["not_finished"] >= 1 and summary["total_cost_usd"] <= cap + 1e-9
    assert f"{summary['not_finished']} of 5 rows did not finish" in result.stdout
    stopped = [s for s in states.values() if s["status"] == "budget_exceeded"]
    assert stopped, [s["status"] for s in states.values()]
    finished = {n: folder_digests(batch / "runs" / n) for n, s in states.items() if s["status"] == "completed"}
    # a row's run folder is an ordinary run: it resumes on its own too (then the batch leaves it alone)
    alone = next(n for n, s in states.items() if s["status"] == "budget_exceeded")
    assert cli("resume", batch / "runs" / alone).exit_code == 0
    assert read_json(batch / "runs" / alone / "workflow_summary.json")["status"] == "completed"
    finished[alone] = folder_digests(batch / "runs" / alone)

    again = cli("resume", batch, "--max-cost", "1")
    assert again.exit_code == 0, again.stderr
    states = run_states(batch)
    assert sorted(states) == [f"row_{i}" for i in ("001", "002", "003", "004", "005")]
    assert all(s["status"] == "completed" for s in states.values())
    assert cloud.predictions_created == 15 and cloud.duplicate_predictions() == []  # nothing paid twice
    for name, digests in finished.items():
        assert folder_digests(batch / "runs" / name) == digests, f"finished run {name} changed on resume"
    assert read_json(batch / "batch_summary.json")["status"] == "completed"


def test_failed_rows_stay_failed_until_retry_failed(cli: Any, cloud: Any, tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a red fox\n")
    out = tmp_path / "batches"
    cloud.fail_next_creates(422, count=1)  # not retryable: the only image fails, so the run fails
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "1", "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 1
    batch = only_batch(out)
    assert read_json(batch / "batch_summary.json")["counts"] == {"failed": 1}
    plain = cli("resume", batch)
    assert plain.exit_code == 1 and "--retry-failed" in plain.stderr
    retried = cli("resume", batch, "--retry-failed")
    assert retried.exit_code == 0, retried.stderr
    assert read_json(batch / "batch_summary.json")["counts"] == {"completed": 1}


# --- SIGKILL mid-batch --------------------------------------------------------------------------------


def test_sigkill_mid_batch_then_resume_finishes_and_pays_nothing_twice(cloud: Any, tmp_path: Path) -> None:
    cloud.image_latency = 0.4
    prompts = write(tmp_path / "p.txt", "".join(f"a landscape number {i}\n" for i in range(4)))
    out = tmp_path / "batches"
    env = {**os.environ, **cloud.env(), **FAST_CLOUD, "FBLOOP_REPLICATE_CONCURRENCY": "2"}
    cmd = [
        sys.executable, "-m", "feedback_cli", "batch", str(prompts), *IMAGE_ONLY, "--backend", "cloud",
        "--num-image-variations", "3", "--concurrency", "2", "--seed", "5", "--output-dir", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def one_done_one_partial() -> bool:
        if not out.exists() or not any(out.iterdir()):
            return False
        try:
            states = run_states(only_batch(out))
        except (OSError, ValueError, KeyError):
            return False
        done = any(s["status"] == "completed" for s in states.values())
        partial = any(
            s["status"] == "running" and any(i["status"] == "succeeded" for st in s["stages"] for i in st["items"])
            for s in states.values()
        )
        return done and partial

    try:
        deadline = time.monotonic() + 60
        while not one_done_one_partial():
            assert time.monotonic() < deadline, "the batch never reached the kill point"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    batch = only_batch(out)
    states = run_states(batch)
    finished = {n: folder_digests(batch / "runs" / n) for n, s in states.items() if s["status"] == "completed"}
    assert finished and len(finished) < 4

    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(batch)], env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    states = run_states(batch)
    assert len(states) == 4 and all(s["status"] == "completed" for s in states.values())
    assert cloud.predictions_created == 12 and cloud.duplicate_predictions() == []
    for name, digests in finished.items():
        assert folder_digests(batch / "runs" / name) == digests
    _, state = load_batch(batch)
    assert state.status == "completed" and [r.status for r in state.rows] == ["completed"] * 4


# --- inspect of a batch -------------------------------------------------------------------------------


def test_inspect_a_batch_shows_a_sortable_leaderboard_json_and_an_html_grid(cli: Any, tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a red fox in snow\na blue kite\na lighthouse at dusk\nan owl\n")
    out = tmp_path / "batches"
    assert cli("batch", prompts, *IMAGE_ONLY, "--num-image-variations", "2", "--output-dir", out).exit_code == 0
    batch = only_batch(out)
    before = folder_digests(batch)

    shown = cli("inspect", batch, "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["format"] == "fbloop-batch-inspection" and data["rows_total"] == 4
    assert data["sort_key"] == "image_generation.best_overall"
    values = [r["sort_value"] for r in data["leaderboard"]]
    assert values == sorted(values, reverse=True) and [r["rank"] for r in data["leaderboard"]] == [1, 2, 3, 4]
    assert data["best"] == [r["id"] for r in data["leaderboard"][:2]]
    assert data["worst"] == [data["leaderboard"][3]["id"], data["leaderboard"][2]["id"]]

    by_sharpness = json.loads(cli("inspect", batch, "--json", "--sort", "best_sharpness").stdout)
    assert by_sharpness["sort_key"] == "image_generation.best_sharpness"
    by_cost = json.loads(cli("inspect", batch, "--json", "--sort", "cost_usd").stdout)
    assert by_cost["sort_ascending"] is True
    bad = cli("inspect", batch, "--sort", "nope")
    assert bad.exit_code == 2 and "--sort nope is not a score of this batch" in bad.stderr

    table = cli("inspect", batch)
    assert table.exit_code == 0
    assert "leaderboard by image_generation.best_overall" in table.stdout
    assert all(r["id"] in table.stdout for r in data["leaderboard"]) and "best:" in table.stdout

    report = tmp_path / "report.html"
    written = cli("inspect", batch, "--html", report)
    assert written.exit_code == 0, written.stderr
    page = report.read_text()
    assert page.count('class="card') == 4 and page.count("data:image/jpeg;base64,") == 4
    assert folder_digests(batch) == before, "inspect writes nothing into the batch"
    single = cli("inspect", batch / "runs" / "row_001", "--sort", "cost_usd")
    assert single.exit_code == 2 and "--sort orders a batch's leaderboard" in single.stderr


# --- the live view and the Ray extra ------------------------------------------------------------------


def test_live_view_shows_rows_done_running_failed_spend_against_the_cap_and_an_eta(tmp_path: Path) -> None:
    from rich.console import Console

    from feedback_cli.runstate.models import RunOptions
    from feedback_cli.ui.batch_view import BatchView
    from feedback_cli.workflow.batch_state import BatchRowState, BatchState, RowResult

    def row(i: int, status: str) -> BatchRowState:
        return BatchRowState(
            id=f"r{i}", line=i, prompt="p", options=RunOptions(), run_dir=f"runs/r{i}", status=status,  # type: ignore[arg-type]
            result=RowResult(cost_usd=0.25 if status == "completed" else 0.0, time_s=1.0),
        )  # fmt: skip

    statuses = ["completed", "completed", "running", "failed", "pending", "pending"]
    state = BatchState(
        fbloop_version="x", batch_id="b1", prompts_file="p.txt", prompts_copy="input/prompts.txt",
        prompts_sha256="0", max_cost=2.0, concurrency=2, rows=[row(i, s) for i, s in enumerate(statuses)],
    )  # fmt: skip
    console = Console(record=True, width=120, force_terminal=False)
    view = BatchView(console, state)
    view.observer("row_finished", state.rows[0], {"spent": 0.5})
    console.print(view.render())
    text = console.export_text()
    assert "r0: completed" in text
    assert "2/6 done, 1 running, 1 failed, 2 waiting" in text
    assert "$0.5000 of $2.0000" in text
    assert "left" in text  # an ETA once a row finished


def test_executor_ray_without_ray_installed_is_one_clear_line(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when the extra is not installed
    prompts = write(tmp_path / "p.txt", "a fox\n")
    result = cli("batch", prompts, "--executor", "ray", "--output-dir", tmp_path / "b")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "fbloop: error: --executor ray needs Ray, which is not installed: pip install 'fbloop[ray]'"
    )
    assert not (tmp_path / "b").exists()


def test_batch_help_imports_neither_torch_nor_ray() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom feedback_cli.app import app\n"
        "r = CliRunner().invoke(app, ['batch', '--help'])\nassert r.exit_code == 0, r.output\n"
        "assert '--concurrency' in r.output and '--executor' in r.output\n"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_ctrl_c_mid_batch_saves_everything_and_resume_finishes(tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a red fox\na blue kite\nan owl\n")
    out = tmp_path / "batches"
    env = {**os.environ, "FBLOOP_OFFLINE_LATENCY": "0.3"}
    cmd = [
        sys.executable, "-m", "feedback_cli", "batch", str(prompts), *IMAGE_ONLY, "--num-image-variations", "4",
        "--concurrency", "2", "--seed", "5", "--output-dir", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and any(out.iterdir()) and any((only_batch(out) / "runs").glob("*/*.json"))):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    batch = only_batch(out)
    assert f"Resume with: fbloop resume {batch}" in stderr
    _, state = load_batch(batch)
    assert state.status == "interrupted" and "completed" not in {r.status for r in state.rows}
    resumed = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(batch)], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert [r.status for r in load_batch(batch)[1].rows] == ["completed"] * 3


# --- one 429 backoff for the batch --------------------------------------------------------------------


def test_a_429_heard_by_one_run_pauses_new_calls_of_the_whole_batch() -> None:
    import asyncio

    from feedback_cli.config import Settings
    from feedback_cli.runstate.events import Event
    from feedback_cli.workflow.batch_shared import ServicePool

    async def scenario() -> tuple[float, float, list[str]]:
        pool = ServicePool(Settings())
        pool.observe(Event(kind="notice", message="image_01: retrying after a timeout in 9.0s"))  # not a 429
        pool.observe(Event(kind="notice", message="writer answered HTTP 500; retry 1 of 3 in 9.0s"))  # nor this
        assert pool.cooldown == {}
        heard = time.monotonic()
        pool.observe(
            Event(
                kind="notice",
                message="image_01: Replicate answered HTTP 429 (Request was throttled); retry 1 of 5 in 0.4s",
            )
        )
        order: list[str] = []

        async def call(role: str) -> float:
            async with pool.limit(role, "replicate" if role == "media" else "openai"):
                order.append(role)
                return time.monotonic()

        media_at, agents_at = await asyncio.gather(call("media"), call("agents"))
        return media_at - heard, agents_at - heard, order

    media_wait, _, order = asyncio.run(scenario())
    assert media_wait >= 0.39  # no new Replicate call before the wait the 429 named
    assert order == ["agents", "media"]  # the LLM calls were not held up by Replicate's 429


def test_batch_through_a_429_finishes_and_pays_each_item_once(cli: Any, cloud: Any, tmp_path: Path) -> None:
    cloud.fail_next_creates(429, retry_after=1, count=1)
    prompts = write(tmp_path / "p.txt", "a red fox\na blue kite\na quiet owl\n")
    out = tmp_path / "batches"
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "2", "--concurrency", "3",
        "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert cloud.predictions_created == 6 and cloud.duplicate_predictions() == []
    notes = [n for s in run_states(only_batch(out)).values() for st in s["stages"] for n in st["notes"]]
    assert any("HTTP 429" in n for n in notes), notes
    secrets = [os.environ["OPENAI_API_KEY"], os.environ["REPLICATE_API_TOKEN"]]
    for path in out.rglob("*"):  # the keys were used and are written nowhere in the batch folder
        if path.is_file():
            assert not any(secret.encode() in path.read_bytes() for secret in secrets), path


def test_a_tampered_batch_checkpoint_is_refused_in_one_line(cli: Any, tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a red fox\n")
    out = tmp_path / "batches"
    assert cli("batch", prompts, *IMAGE_ONLY, "--num-image-variations", "1", "--output-dir", out).exit_code == 0
    batch = only_batch(out)
    path = batch / "batch_checkpoint.json"
    envelope = json.loads(path.read_text())
    envelope["state"]["max_cost"] = 99.0  # a hand edit: the checksum no longer matches
    path.write_text(json.dumps(envelope))
    for target in (batch, path):
        result = cli("resume", target)
        assert result.exit_code == 2 and "failed its checksum" in result.stderr, result.stderr
    path.write_text("{not json")
    result = cli("resume", batch)
    assert result.exit_code == 2 and "is not valid JSON" in result.stderr


def test_live_view_updates_in_place_on_a_terminal(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    prompts = write(tmp_path / "p.txt", "a red fox\na blue kite\nan owl\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update({"FBLOOP_OFFLINE_LATENCY": "0.2", "TERM": "xterm", "COLUMNS": "120"})
    # one row at a time: the rows cannot all finish within one refresh, so a frame with an ETA is always drawn
    args = ["-m", "feedback_cli", "batch", str(prompts), *IMAGE_ONLY, "--num-image-variations", "2",
            "--concurrency", "1", "--max-cost", "3", "--output-dir", str(tmp_path / "b")]  # fmt: skip
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=180, dimensions=(40, 120))
    gap = r"(?:\x1b\[[0-9;]*m|\s)+"  # spaces and Rich's style codes between a label and its value
    child.expect(rf"rows{gap}\d/3 done, \d running, 0 failed")
    child.expect(rf"spend{gap}\$0\.0000 of \$3\.0000")
    child.expect(r"about \d+s left")  # an ETA once the first row finished
    child.expect(r"3/3 done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_resume_of_a_batch_with_one_broken_run_finishes_the_others(cli: Any, tmp_path: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a red fox\na blue kite\nan owl\n")
    out = tmp_path / "batches"
    env = {"FBLOOP_OFFLINE_LATENCY": "0"}
    assert (
        cli("batch", prompts, *IMAGE_ONLY, "--num-image-variations", "1", "--output-dir", out, env=env).exit_code == 0
    )
    batch = only_batch(out)
    (batch / "runs" / "row_002" / "workflow_checkpoint.json").write_text("{broken")
    # row_003 never started: as if the batch had been killed before it
    import shutil

    shutil.rmtree(batch / "runs" / "row_003")
    kept = folder_digests(batch / "runs" / "row_001")
    result = cli("resume", batch)
    assert result.exit_code == 1  # one row cannot be trusted...
    rows = {r["id"]: r for r in read_json(batch / "batch_summary.json")["results"]}
    assert rows["row_002"]["status"] == "failed" and "not valid JSON" in rows["row_002"]["error"]
    assert rows["row_003"]["status"] == "completed"  # ...the others are finished
    assert folder_digests(batch / "runs" / "row_001") == kept
    refused = cli("resume", batch, "--interactive")
    assert refused.exit_code == 2 and "a batch runs unattended" in refused.stderr


@pytest.mark.parametrize("kind", ["fifo", "deep"])
def test_a_batch_checkpoint_that_is_a_fifo_or_nested_too_deep_is_one_line(cli: Any, tmp_path: Path, kind: str) -> None:
    prompts = write(tmp_path / "p.txt", "a red fox\n")
    out = tmp_path / "batches"
    assert cli("batch", prompts, *IMAGE_ONLY, "--num-image-variations", "1", "--output-dir", out).exit_code == 0
    checkpoint = only_batch(out) / "batch_checkpoint.json"
    checkpoint.unlink()
    if kind == "fifo":
        os.mkfifo(checkpoint)  # must be refused, not waited on
    else:
        checkpoint.write_text("[" * 200_000 + "]" * 200_000)
    result = cli("resume", only_batch(out))
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "batch checkpoint" in lines[0] and "internal error" not in lines[0], lines


def test_a_key_inside_a_row_prompt_is_saved_redacted_not_refused(cli: Any, tmp_path: Path) -> None:
    key = "sk-test-0123456789abcdefghij"
    prompts = write(tmp_path / "p.txt", f"a red fox holding a sign that says {key}\n")
    out = tmp_path / "batches"
    result = cli("batch", prompts, *IMAGE_ONLY, "--num-image-variations", "1", "--output-dir", out,
                 env={"OPENAI_API_KEY": key, "FBLOOP_BACKEND": "offline"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    text = (only_batch(out) / "batch_checkpoint.json").read_text()
    assert key not in text
    assert cli("inspect", only_batch(out)).exit_code == 0


def paid_scorer_batch(cli: Any, cloud: Any, tmp_path: Path, scorers: str, *executor: str) -> dict[str, Any]:
    """Two rows scored with `scorers` (VQAScore, or the offline set with its element check) against the fake
    server's VQA model; checks that every billed VQA response is in some row's ledger once, at its tokens, and
    returns the rows' run states."""
    from tests.test_money import assert_ledger_is_the_bill

    prompts = write(tmp_path / "p.txt", "a red ball left of a blue box\ntwo green trees\n")
    result = cli(
        "batch", prompts, *IMAGE_ONLY, "--backend", "cloud", "--num-image-variations", "2", "--concurrency", "2",
        "--seed", "4", "--scorers", scorers, *executor, "--output-dir", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    states = run_states(only_batch(tmp_path / "b"))
    asked = [b for b in cloud.billed_chats if b["model"] == "gpt-4.1"]
    booked = [e for s in states.values() for e in s["ledger"] if e["model"] == "gpt-4.1"]  # with the element check's
    assert asked and len(booked) == len(asked) and not any(e["estimated"] for e in booked)
    scorer = "vqascore" if scorers == "vqascore" else "elements"
    assert [e for e in booked if e["what"].startswith(f"{scorer} ")]
    ledgers = [e for s in states.values() for e in s["ledger"]]
    everything = {"ledger": ledgers, "stages": [stage for s in states.values() for stage in s["stages"]]}
    assert_ledger_is_the_bill(cloud, everything)  # every billed chat response once, in some row's ledger
    return states


@pytest.mark.parametrize("scorers", ["vqascore", "offline"])  # VQAScore itself; the element check (offline set)
def test_a_scorer_that_pays_per_request_is_booked_in_its_rows_ledger(
    cli: Any, cloud: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scorers: str
) -> None:
    """The local executor shares one scorer per name between its rows; each row's paid scorer requests still land
    in that row's ledger, every billed response once (the Ray executor: tests/test_batch_ray.py)."""
    monkeypatch.setenv("FBLOOP_VQA_MODEL", "gpt-4.1")
    states = paid_scorer_batch(cli, cloud, tmp_path, scorers)
    scorer = "vqascore" if scorers == "vqascore" else "elements"
    for state in states.values():  # each row asked about its own images, in its own ledger
        mine = [e for e in state["ledger"] if e["what"].startswith(f"{scorer} ")]
        assert mine and all(e["stage"] == "image_generation" for e in mine)
