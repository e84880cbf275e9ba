"""What a resume may change (issue 11): `fbloop run --resume` and `fbloop resume` follow one rule. Options a
resume may change (--max-cost, --interactive, --verbose, --break-lock, --use-current-settings) are applied
and recorded in the trace; any other option given with --resume is refused with one line naming it (exit 2),
writing nothing. A resume says in one line which recorded settings differ from the environment, and
`--use-current-settings` switches the models for the unfinished items (recorded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from feedback_cli.app import app
from tests.conftest import EXAMPLE, only_run, read_json
from tests.fakes.script import HttpError
from tests.test_checkpoint import rewrite_state, snapshot

#: `as_json` (--json) is how the result is printed, not an option of the run
ALLOWED = {"max_cost", "interactive", "verbose", "break_lock", "use_current_settings", "resume", "as_json"}

#: every option of `fbloop run` a resume cannot change, with a valid value
REFUSED: list[tuple[str, list[str]]] = [
    ("--workflow", ["--workflow", "full"]),
    ("--input-image", ["--input-image", str(EXAMPLE)]),
    ("--max-iterations-image", ["--max-iterations-image", "2"]),
    ("--max-iterations-video", ["--max-iterations-video", "2"]),
    ("--num-image-variations", ["--num-image-variations", "40"]),
    ("--num-video-attempts", ["--num-video-attempts", "2"]),
    ("--threshold-image", ["--threshold-image", "50"]),
    ("--threshold-video", ["--threshold-video", "50"]),
    ("--output-dir", ["--output-dir", "elsewhere"]),
    ("--storyboard", ["--storyboard"]),
    ("--storyboard", ["--no-storyboard"]),
    ("--clips", ["--clips", "3"]),
    ("--backend", ["--backend", "offline"]),
    ("--seed", ["--seed", "5"]),
    ("--scorers", ["--scorers", "offline"]),
    ("--dry-run", ["--dry-run"]),
    ("--max-rounds-image", ["--max-rounds-image", "2"]),
    ("--max-rounds-video", ["--max-rounds-video", "2"]),
    ("--target-image", ["--target-image", "50"]),
    ("--target-video", ["--target-video", "50"]),
    ("--patience", ["--patience", "2"]),
    ("PROMPT_FILE", [str(EXAMPLE)]),
]


@pytest.fixture
def interrupted_run(cli, tmp_path: Path) -> Path:
    """An image-only run whose stage 2 never finished (its files gone, its record reset)."""
    out = tmp_path / "runs"
    result = cli(
        "run", EXAMPLE, "--workflow", "image-only", "--seed", "2", "--num-image-variations", "2", "--output-dir", out
    )
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    stage_dir = run / "stage_2_image_generation"
    for path in stage_dir.iterdir():
        path.unlink()
    stage_dir.rmdir()

    def undo_stage2(state: dict[str, Any]) -> None:
        state["status"] = "interrupted"
        state["stages"][-1].update(status="interrupted", items=[], artifacts=[], outputs={}, scores={})

    rewrite_state(run, undo_stage2)
    return run


def test_every_run_option_is_classified() -> None:
    """A new option of `fbloop run` must be put in ALLOWED or REFUSED (so it is never silently ignored)."""
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    names = {p.name for p in command.params}
    refused = {flag.lstrip("-").replace("-", "_") for flag, _ in REFUSED}
    refused = {"prompt_file" if n == "PROMPT_FILE" else n for n in refused}
    assert names == ALLOWED | refused


@pytest.mark.parametrize(
    ("flag", "args"), REFUSED, ids=[" ".join(a) if a[0].startswith("-") else "PROMPT_FILE" for _, a in REFUSED]
)
def test_run_resume_refuses_an_option_a_resume_cannot_change(
    cli, interrupted_run: Path, flag: str, args: list[str]
) -> None:
    before = snapshot(interrupted_run)
    result = cli("run", "--resume", interrupted_run, "--max-cost", "0.5", *args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(interrupted_run) == before, "a refused resume writes nothing"


@pytest.mark.parametrize("command", [("run", "--resume"), ("resume",)], ids=["run --resume", "resume"])
def test_allowed_options_are_applied_and_recorded(cli, interrupted_run: Path, command: tuple[str, ...]) -> None:
    result = cli(*command, interrupted_run, "--max-cost", "0.5", "--verbose")
    assert result.exit_code == 0, result.stderr
    trace = read_json(interrupted_run / "workflow_trace.json")
    assert trace["status"] == "completed"
    assert trace["options"]["max_cost"] == 0.5 and trace["options"]["verbose"] is True
    assert trace["resumes"][-1]["options"] == {
        "max_cost": {"from": None, "to": 0.5},
        "verbose": {"from": False, "to": True},
    }
    assert "item_scored" in result.stderr or "image_0" in result.stderr  # --verbose shows the items


# --- the cloud backend on the fake server: --max-cost really applies; models and --use-current-settings ---


@pytest.fixture
def cloud(fake_provider_env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FBLOOP_POLL_INTERVAL_S", "0.02")
    monkeypatch.setenv("FBLOOP_SCORERS", "offline")
    monkeypatch.setenv("FBLOOP_LLM_RETRIES", "0")
    return fake_provider_env


def cloud_run(cli, out: Path, *extra: str, env: dict[str, str] | None = None) -> Any:  # type: ignore[no-untyped-def]
    return cli(
        "run", EXAMPLE, "--backend", "cloud", "--workflow", "image-only", "--seed", "3", "--num-image-variations", "2",
        "--max-iterations-image", "1", "--output-dir", out, *extra, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("command", [("run", "--resume"), ("resume",)], ids=["run --resume", "resume"])
def test_a_new_max_cost_on_resume_is_applied(cli, cloud, tmp_path: Path, command: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs"
    first = cloud_run(cli, out, "--max-cost", "0.004")  # the prompt stage fits, two images do not
    assert first.exit_code == 1, first.stderr
    run = only_run(out)
    assert read_json(run / "workflow_checkpoint.json")["state"]["status"] == "budget_exceeded"
    again = cli(*command, run)  # the recorded cap still holds
    assert again.exit_code == 1 and "--max-cost" in again.stderr
    resumed = cli(*command, run, "--max-cost", "1")
    assert resumed.exit_code == 0, resumed.stderr
    trace = read_json(run / "workflow_trace.json")
    assert trace["status"] == "completed" and trace["options"]["max_cost"] == 1.0
    assert trace["resumes"][-1]["options"] == {"max_cost": {"from": 0.004, "to": 1.0}}


def test_resume_names_changed_settings_and_use_current_settings_switches_models(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs"
    cloud.script.add(
        "chat", HttpError(404, detail="The model `broken-critic` does not exist"), times=50, model="broken-critic"
    )
    first = cloud_run(cli, out, env={"FBLOOP_CRITIC_MODEL": "broken-critic"})
    assert first.exit_code == 1, first.stderr
    run = only_run(out)
    assert read_json(run / "workflow_checkpoint.json")["state"]["settings"]["critic_model"] == "broken-critic"

    # a plain resume keeps the recorded model, and says so in one line naming the difference
    seen = len(cloud.requests_for("chat"))
    plain = cli("resume", run, env={"FBLOOP_CRITIC_MODEL": "good-critic"})
    assert plain.exit_code == 1
    notes = [line for line in plain.stderr.splitlines() if "critic_model" in line]
    assert len(notes) == 1, plain.stderr
    assert "broken-critic" in notes[0] and "good-critic" in notes[0] and "--use-current-settings" in notes[0]
    models = {r.body["model"] for r in cloud.requests_for("chat")[seen:]}
    assert "broken-critic" in models and "good-critic" not in models, "the recorded model, again"

    # --use-current-settings: the unfinished items use the environment's model now, and the trace says so
    seen = len(cloud.requests_for("chat"))
    switched = cli("resume", run, "--use-current-settings", env={"FBLOOP_CRITIC_MODEL": "good-critic"})
    assert switched.exit_code == 0, switched.stderr
    models = {r.body["model"] for r in cloud.requests_for("chat")[seen:]}
    assert "good-critic" in models and "broken-critic" not in models
    assert "critic_model broken-critic -> good-critic" in switched.stderr
    trace = read_json(run / "workflow_trace.json")
    assert trace["status"] == "completed"
    assert trace["settings"]["critic_model"] == "good-critic"
    assert trace["resumes"][-1]["settings"] == {"critic_model": {"from": "broken-critic", "to": "good-critic"}}
    assert "--use-current-settings" in trace["resumes"][-1]["flags"]
    iterations = [it for s in trace["stages"] for it in s["iterations"]]
    assert iterations and all(it["critic_model"] == "good-critic" for it in iterations)


def test_no_notice_when_the_environment_matches(cli, interrupted_run: Path) -> None:
    result = cli("resume", interrupted_run)
    assert result.exit_code == 0, result.stderr
    assert "differs" not in result.stderr
    assert read_json(interrupted_run / "workflow_trace.json")["resumes"][-1]["kept_settings"] == {}


def test_the_switchable_models_are_settings_that_exist() -> None:
    """A resume pins, and --use-current-settings switches, settings by name: a renamed setting (judge_model
    became planner_model) left in those lists would silently never be pinned or switched."""
    from feedback_cli.config import Settings
    from feedback_cli.workflow.api import MODEL_SETTINGS, PINNED_SETTINGS

    assert set(MODEL_SETTINGS) <= set(PINNED_SETTINGS) <= set(Settings.model_fields)
    agent_models = {"writer_model", "critic_model", "planner_model", "vision_model"}
    assert agent_models <= set(MODEL_SETTINGS)
