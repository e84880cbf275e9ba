"""Checkpoint schema 2 (typed state): a schema-1 run folder made by fbloop before typed state is migrated on load,
resumes to the end and keeps what it had finished byte for byte; the migration itself on the shapes schema 1 had
(an item mid-job, a stage awaiting its review, rounds in progress, a regenerated storyboard)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.files import canonical_json, sha256_bytes, sha256_file
from feedback_cli.runstate.models import SCHEMA_VERSION, RoundRecord, RunState
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.migrate import schema1_to_2
from tests.conftest import read_json

FIXTURE = Path(__file__).parent / "fixtures" / "schema1_run"
#: the media sizes the fixture was made with (tests/fixtures/schema1_run/README.md)
FIXTURE_ENV = {"FBLOOP_OFFLINE_IMAGE_SIZE": "64", "FBLOOP_OFFLINE_VIDEO_SECONDS": "0.5"}


@pytest.fixture
def schema1_run(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / FIXTURE.name
    shutil.copytree(FIXTURE, run)
    (run / "README.md").unlink()  # the fixture's own note, not part of the run
    return run


def schema1_state() -> dict[str, Any]:
    envelope = read_json(FIXTURE / checkpoint.CHECKPOINT_NAME)
    assert envelope["schema_version"] == 1
    return envelope["state"]


def seal(run: Path, state: dict[str, Any], version: int = 1) -> None:
    """Write `state` as a checkpoint of schema `version` with its own checksum, as that fbloop would have."""
    envelope = {
        "format": checkpoint.FORMAT,
        "schema_version": version,
        "fbloop_version": state.get("fbloop_version", "0.1.0"),
        "checksum": sha256_bytes(canonical_json(state)),
        "state": state,
    }
    (run / checkpoint.CHECKPOINT_NAME).write_text(json.dumps(envelope, indent=1))


def finished_artifacts(state: dict[str, Any]) -> dict[str, str]:
    out = {a["path"]: a["sha256"] for a in state["inputs"]}
    for stage in state["stages"]:
        for item in stage["items"]:
            if item["status"] == "succeeded" and item["artifact"]:
                out[item["artifact"]["path"]] = item["artifact"]["sha256"]
        if stage["status"] == "completed":
            out.update({a["path"]: a["sha256"] for a in stage["artifacts"]})
    return out


# --- the fixture: a real schema-1 run folder -------------------------------------------------------------


def test_the_fixture_is_a_schema1_run_killed_mid_stage_without_absolute_paths() -> None:
    state = schema1_state()
    videos = next(s for s in state["stages"] if s["name"] == "video_generation")
    assert videos["status"] == "running"
    assert {i["status"] for i in videos["items"]} == {"succeeded", "submitted", "pending"}
    assert any("scored" in i["extra"] for s in state["stages"] for i in s["items"]), "schema 1 kept it in extra"
    for path in FIXTURE.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".txt"):
            text = path.read_text()
            assert "/tmp/" not in text and "/work/" not in text and "/home/" not in text, path


def test_a_schema1_run_folder_resumes_to_the_end(cli, schema1_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FIXTURE_ENV.items():
        monkeypatch.setenv(name, value)
    before = finished_artifacts(read_json(schema1_run / checkpoint.CHECKPOINT_NAME)["state"])
    assert len(before) > 15
    result = cli("resume", schema1_run)
    assert result.exit_code == 0, result.stderr
    envelope = read_json(schema1_run / checkpoint.CHECKPOINT_NAME)
    assert envelope["schema_version"] == SCHEMA_VERSION == 2
    assert envelope["checksum"] == sha256_bytes(canonical_json(envelope["state"]))
    state = envelope["state"]
    assert state["status"] == "completed" and state["schema_version"] == 2
    # what the schema-1 run had finished is the same file, byte for byte, and still recorded as it was
    after = finished_artifacts(state)
    for path, digest in before.items():
        assert after.get(path) == digest, path
        assert sha256_file(schema1_run / path) == digest, path
    # the control values are typed fields now, none left in the dicts
    for stage in state["stages"]:
        assert stage["awaiting_review"] is False and "awaiting_review" not in stage["outputs"]
        for item in stage["items"]:
            assert item["scored"] is (item["status"] == "succeeded"), item["key"]
            assert not {"scored", "unanswered_since", "recreate_if_ended", "canceled_by_fbloop"} & set(item["extra"])
            assert isinstance(item["extra"]["group"], str) and isinstance(item["extra"]["round"], int)
    videos = next(s for s in state["stages"] if s["name"] == "video_generation")
    assert len(videos["outputs"]["best_videos"]) == 2 and all(i["status"] == "succeeded" for i in videos["items"])
    for scope in ("clip_01", "clip_02"):
        rounds = [RoundRecord.model_validate(r) for r in videos["outputs"][f"rounds_{scope}"]]
        assert [r.status for r in rounds] == ["done"] and rounds[0].best_so_far_key
        assert videos["outputs"][f"stop_reason_{scope}"].split(":")[0] in ("rounds", "target")
    _, loaded = checkpoint.load(schema1_run)
    assert loaded.status == "completed"


def test_reading_a_schema1_run_folder_leaves_it_as_it_was(cli, schema1_run: Path) -> None:
    before = {p: p.read_bytes() for p in schema1_run.rglob("*") if p.is_file()}
    _, state = checkpoint.load(schema1_run)
    assert state.schema_version == 2
    images = state.stage("image_generation")
    assert [r.round for r in images.round_log()] == [1, 2] and images.best_key == "image_02"
    assert all(i.scored and i.extra.elements for i in images.items)
    videos = state.stage("video_generation")
    assert [i.scored for i in videos.items] == [True, False, False, False]
    shown = cli("inspect", schema1_run, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["stages"][1]["outputs"]["best_key"] == "image_02"
    assert {p: p.read_bytes() for p in schema1_run.rglob("*") if p.is_file()} == before


# --- the migration on the shapes schema 1 had -------------------------------------------------------------


def test_an_item_mid_job_keeps_its_job_facts() -> None:
    state = schema1_state()
    videos = next(s for s in state["stages"] if s["name"] == "video_generation")
    # a create that got no answer (no job id yet), a job fbloop canceled, and a failed one `--retry-failed`
    # re-attaches to before paying again
    lost, canceled, retried = videos["items"][2], videos["items"][1], videos["items"][3]
    lost["extra"]["unanswered_since"] = "2026-12-01T18:00:00.000+00:00"
    lost["started_at"] = "2026-12-01T18:00:00.000+00:00"
    canceled["extra"]["canceled_by_fbloop"] = "2026-12-01T18:01:00.000+00:00"
    retried.update(status="submitted", job_id="offline-abc", job_state="failed")
    retried["extra"]["recreate_if_ended"] = True
    original = copy.deepcopy(state)

    migrated = schema1_to_2(state)
    assert state == original, "the schema-1 dict is left as it was"
    run = RunState.model_validate(migrated)
    items = {i.key: i for i in run.stage("video_generation").items}
    lost_item = items[lost["key"]]
    assert lost_item.unanswered_since == "2026-12-01T18:00:00.000+00:00" and lost_item.job_id is None
    assert lost_item.status == "pending" and not lost_item.scored and not lost_item.recreate_if_ended
    assert items[canceled["key"]].canceled_by_fbloop == "2026-12-01T18:01:00.000+00:00"
    assert items[canceled["key"]].job_state == "in_flight" and items[canceled["key"]].status == "submitted"
    assert items[retried["key"]].recreate_if_ended is True and items[retried["key"]].job_id == "offline-abc"
    done = items["clip_01_video_01"]
    assert done.scored is True and done.extra.elements is not None and done.extra.metrics is not None
    first = next(i for i in original["stages"][4]["items"] if i["key"] == "clip_01_video_01")
    assert (done.extra.group, done.extra.round, done.extra.prompt) == ("clip_01", 1, first["extra"]["prompt"])
    assert done.extra.elements == first["extra"]["elements"] and done.extra.metrics == first["extra"]["metrics"]
    for item in migrated["stages"][4]["items"]:
        assert set(item["extra"]) <= {"group", "round", "prompt", "elements", "metrics"}


def test_a_stage_awaiting_its_review_still_awaits_it() -> None:
    state = schema1_state()
    images = next(s for s in state["stages"] if s["name"] == "image_generation")
    images["outputs"]["awaiting_review"] = True
    storyboard = next(s for s in state["stages"] if s["name"] == "storyboard")
    storyboard["outputs"].update(round=2, feedback="make it rain")
    run = RunState.model_validate(schema1_to_2(state))
    assert run.stage("image_generation").awaiting_review is True
    assert "awaiting_review" not in run.stage("image_generation").outputs
    assert all(not r.awaiting_review for r in run.stages if r.name != "image_generation")
    board = run.stage("storyboard")
    assert (board.review_round, board.review_feedback) == (2, "make it rain")
    assert not {"round", "feedback"} & set(board.outputs)
    # image generation's `round` is its result (the last round), not a review round: it stays
    assert run.stage("image_generation").outputs["round"] == 2 and run.stage("image_generation").review_round == 1


def test_rounds_in_progress_read_as_typed_rounds() -> None:
    state = schema1_state()
    images = next(s for s in state["stages"] if s["name"] == "image_generation")
    images["status"] = "running"
    images["outputs"]["rounds"][-1] = {"round": 2, "prompt": "a revised prompt", "status": "running"}
    for key in ("stop_reason", "best_image", "best_key", "image_prompt", "round"):
        images["outputs"].pop(key)
    run = RunState.model_validate(schema1_to_2(state))
    record = run.stage("image_generation")
    rounds = record.round_log()
    assert [(r.round, r.status) for r in rounds] == [(1, "done"), (2, "running")]
    assert rounds[0].best_so_far_key == "image_02" and rounds[0].best_so_far_overall is not None
    assert rounds[1].prompt == "a revised prompt" and rounds[1].best_key is None
    assert record.stop_reason() is None and record.best_key is None
    videos = run.stage("video_generation")
    assert [r.status for r in videos.round_log("clip_01")] == ["running"] and videos.round_log() == []


def test_a_sealed_schema1_checkpoint_loads_migrated(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    state = schema1_state()
    state["stages"][1]["outputs"]["awaiting_review"] = True
    seal(run, state)
    _, loaded = checkpoint.load(run)
    assert loaded.schema_version == 2 and loaded.stages[1].awaiting_review is True


def test_a_schema1_checkpoint_is_checked_against_its_own_checksum(cli, schema1_run: Path) -> None:
    path = schema1_run / checkpoint.CHECKPOINT_NAME
    path.write_text(path.read_text().replace('"status": "running"', '"status": "completed"', 1))
    result = cli("resume", schema1_run)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"fbloop: error: checkpoint {path} failed its checksum (edited or corrupted)"


def test_a_broken_schema1_checkpoint_is_one_line(cli, schema1_run: Path) -> None:
    state = schema1_state()
    state["stages"][4]["items"][0]["extra"] = ["not", "an", "object"]
    seal(schema1_run, state)
    path = schema1_run / checkpoint.CHECKPOINT_NAME
    result = cli("resume", schema1_run)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"fbloop: error: checkpoint {path} of schema 1 cannot be brought to schema 2:"
        " extra of item clip_01_video_01 is not an object"
    )


@pytest.mark.parametrize("version", [3, 0])
def test_a_schema_this_fbloop_does_not_know_is_refused_in_one_line(cli, schema1_run: Path, version: int) -> None:
    state = schema1_state()
    seal(schema1_run, state, version=version)
    before = (schema1_run / checkpoint.CHECKPOINT_NAME).read_bytes()
    result = cli("resume", schema1_run)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"fbloop: error: checkpoint {schema1_run / checkpoint.CHECKPOINT_NAME} has schema")
    assert ("newer than this fbloop supports (2)" in lines[0]) if version == 3 else ("no fbloop wrote" in lines[0])
    assert "Traceback" not in result.stderr
    assert (schema1_run / checkpoint.CHECKPOINT_NAME).read_bytes() == before


def test_a_round_log_that_is_not_rounds_is_refused_with_the_checkpoint(cli, schema1_run: Path) -> None:
    state = schema1_state()
    state["stages"][1]["outputs"]["rounds"][1]["round"] = 0
    seal(schema1_run, state)
    result = cli("resume", schema1_run)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"fbloop: error: checkpoint {schema1_run / checkpoint.CHECKPOINT_NAME} is invalid at stages.1: Value error,"
        " outputs.rounds[1].round: Input should be greater than or equal to 1"
    )


# --- no control value read from an untyped dict again ------------------------------------------------------

#: a control value looked up by name in a dict: an item's `extra` used as a dict, or a stage's outputs asked
#: for a value schema 2 keeps as a typed field (ReviewRequest.extra, a dict the UI reads, is another thing)
UNTYPED_CONTROL = re.compile(
    r"(?<!request)\.extra(\.(get|pop|setdefault|update)\(|\[)"
    r"|outputs(\.(get|pop|setdefault)\(|\[)\s*\"(awaiting_review|scored|unanswered_since|recreate_if_ended"
    r"|canceled_by_fbloop|group|feedback)\""
)


def test_the_engine_reads_control_values_only_from_typed_fields() -> None:
    source = Path(__file__).parents[1] / "src" / "feedback_cli"
    found = [
        f"{path.relative_to(source)}:{n}: {line.strip()}"
        for path in sorted(source.rglob("*.py"))
        if path.name != "migrate.py"  # reads schema 1, where they were dict entries
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if UNTYPED_CONTROL.search(line)
    ]
    assert found == []
