"""The typed inspect report (`workflow/inspect_report.py`) and how its round loops are shown: a storyboard
run's per-clip rounds in `fbloop inspect RUN` and in the HTML report (each clip's rounds, the prompt's word
diff, the failed questions, the best score per round, the stop reason and the pick), the `--json` document
read back as an `InspectReport`, stages inspected from their data and never by their built-in names, and
the report module free of the terminal libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from feedback_cli.app import app
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.inspect_report import INSPECT_SCHEMA_VERSION, CompareReport, InspectReport
from tests.conftest import FAST_ENV
from tests.test_inspect import rewrite

PROMPT = "a red kite flying over three trees while the camera zooms in"
CLIPS = ("clip_01", "clip_02")


def invoke(*args: str | Path) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def storyboard_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A storyboard run of two clips whose video loops run two rounds each (the target is out of reach)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("FBLOOP_") or name in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "CI"):
                mp.delenv(name, raising=False)
        for name, value in FAST_ENV.items():
            mp.setenv(name, value)
        root = tmp_path_factory.mktemp("storyboard_rounds")
        prompt = root / "prompt.txt"
        prompt.write_text(PROMPT)
        out = root / "runs"
        invoke("run", prompt, "--backend", "offline", "--output-dir", out, "--storyboard", "--clips", "2",
               "--max-rounds-video", "2", "--target-video", "100", "--patience", "2", "--max-rounds-image", "1",
               "--num-image-variations", "2", "--num-video-attempts", "2", "--seed", "1")  # fmt: skip
        (run,) = list(out.iterdir())
        yield run


def video_record(run: Path) -> dict[str, Any]:
    state = json.loads((run / checkpoint.CHECKPOINT_NAME).read_text())["state"]
    return next(s for s in state["stages"] if s["name"] == "video_generation")


def clip_facts(run: Path) -> dict[str, dict[str, Any]]:
    """Per clip, from the checkpoint itself: its rounds, its stop reason and the key of its pick."""
    record = video_record(run)
    picked = set(record["outputs"]["best_videos"])
    facts = {}
    for clip in CLIPS:
        mine = [i for i in record["items"] if i["extra"]["group"] == clip]
        pick = next(i["key"] for i in mine if i["artifact"]["path"] in picked)
        facts[clip] = {
            "rounds": record["outputs"][f"rounds_{clip}"],
            "stop": record["outputs"][f"stop_reason_{clip}"],
            "pick": pick,
        }
    return facts


def test_the_run_has_two_rounds_per_clip_with_failed_questions(storyboard_run: Path) -> None:
    facts = clip_facts(storyboard_run)
    for clip in CLIPS:
        rounds = facts[clip]["rounds"]
        assert [r["round"] for r in rounds] == [1, 2]
        assert rounds[0]["failed"], "the offline element check fails some question in round 1"
        assert rounds[1]["prompt"] != rounds[0]["prompt"], "the revision changed the prompt"
        assert facts[clip]["stop"].startswith("rounds: 2 of 2")


def test_json_has_each_clips_round_loop(storyboard_run: Path) -> None:
    data = json.loads(invoke("inspect", storyboard_run, "--json").stdout)
    assert data["format"] == "fbloop-inspect" and data["schema_version"] == INSPECT_SCHEMA_VERSION
    videos = next(s for s in data["stages"] if s["name"] == "video_generation")
    facts = clip_facts(storyboard_run)
    assert videos["picking"] is True and videos["round_log"] == [] and videos["stop_reason"] is None
    assert [loop["scope"] for loop in videos["round_loops"]] == list(CLIPS)
    for loop in videos["round_loops"]:
        clip = loop["scope"]
        assert loop["stop_reason"] == facts[clip]["stop"]
        assert loop["pick"] == facts[clip]["pick"] == videos["winners"][clip]
        first, second = loop["rounds"]
        assert first["changes"] is None and second["changes"]
        assert first["failed"] == facts[clip]["rounds"][0]["failed"]
        added = " ".join(words for op, words in second["changes"] if op == "+")
        assert added and added.split()[-1] in second["prompt"]
    storyboard = next(s for s in data["stages"] if s["name"] == "storyboard")
    assert storyboard["picking"] is False and storyboard["round_loops"] == []


def test_the_json_document_is_an_inspect_report(storyboard_run: Path, tmp_path: Path) -> None:
    data = json.loads(invoke("inspect", storyboard_run, "--json").stdout)
    report = InspectReport.model_validate(data)  # the contract, typed: every key of --json is a field
    assert report.json_data() == data
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(storyboard_run, copy)
    compared = json.loads(invoke("inspect", storyboard_run, "--compare", copy, "--json").stdout)
    assert CompareReport.model_validate(compared).json_data() == compared


def test_inspect_table_shows_each_clips_rounds(storyboard_run: Path) -> None:
    text = invoke("inspect", storyboard_run).stdout
    facts = clip_facts(storyboard_run)
    starts = [text.index(f"Video generation: {clip} rounds") for clip in CLIPS]
    assert starts == sorted(starts) and starts[0] < text.index("Video generation: candidates x scorers")
    sections = [text[starts[0] : starts[1]], text[starts[1] : text.index("Video generation: candidates x scorers")]]
    for clip, section in zip(CLIPS, sections, strict=True):
        rounds = facts[clip]["rounds"]
        lines = section.splitlines()
        heads = [line for line in lines if line.startswith("round ")]
        assert [h.split(":")[0] for h in heads] == ["round 1", "round 2"]
        for head, r in zip(heads, rounds, strict=True):
            assert f"best {r['best_overall']:.1f} ({r['best_key']})" in head
            assert f"pick so far {r['best_so_far_key']}" in head
        failed = [line.strip() for line in lines if line.strip().startswith("failed: ")]
        assert failed[0] == "failed: " + "; ".join(rounds[0]["failed"])
        prompts = [line.strip() for line in lines if line.strip().startswith("prompt: ")]
        assert prompts[0] == "prompt: " + " ".join(rounds[0]["prompt"].split())  # round 1: whole
        assert "{+" in prompts[1] and "+}" in prompts[1]  # round 2: a word diff from round 1
        assert f"stopped: {facts[clip]['stop']}" in section
        assert f"pick: {facts[clip]['pick']}" in section


class Sections(HTMLParser):
    """The text of the HTML report under each clip's rounds heading, and the tags inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.current: str | None = None
        self.text: dict[str, list[str]] = {}
        self.tags: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs).get("id") or ""
        if tag == "h3":
            self.current = found.removeprefix("rounds-video_generation-") if found.startswith("rounds-") else None
        elif tag in ("h2", "h4"):
            self.current = None
        if self.current is not None:
            self.tags.setdefault(self.current, []).append(tag)

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.text.setdefault(self.current, []).append(data)


def test_html_report_shows_each_clips_rounds(storyboard_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    invoke("inspect", storyboard_run, "--html", report)
    page = Sections()
    page.feed(report.read_text(encoding="utf-8"))
    facts = clip_facts(storyboard_run)
    assert set(page.text) == set(CLIPS)
    for clip in CLIPS:
        text = " ".join(" ".join(page.text[clip]).split())
        rounds = facts[clip]["rounds"]
        assert text.startswith(f"Rounds of {clip}")
        for r in rounds:
            assert f"round {r['round']} · best {r['best_overall']:.1f} ({r['best_key']})" in text
        for question in rounds[0]["failed"]:
            assert f"failed: {question}" in text
        assert "ins" in page.tags[clip]  # round 2's prompt as a word diff
        assert f"stopped: {facts[clip]['stop']}" in text
        assert f"pick: {facts[clip]['pick']}" in text


def test_a_stage_is_inspected_from_its_data_not_its_name(storyboard_run: Path, tmp_path: Path) -> None:
    """A stage under a name inspect has never heard of shows its picks, rounds and keyframes as before."""
    renamed = {"image_generation": "my_images", "storyboard": "my_frames", "video_generation": "my_videos"}

    def change(folder: Path, state: Any) -> None:
        for record in state.stages:
            record.name = renamed.get(record.name, record.name)

    copy = rewrite(storyboard_run, tmp_path / "renamed", change)
    original = json.loads(invoke("inspect", storyboard_run, "--json").stdout)
    data = json.loads(invoke("inspect", copy, "--json").stdout)
    for before, after in zip(original["stages"], data["stages"], strict=True):
        assert after["name"] == renamed.get(before["name"], before["name"])
        for key in ("picking", "winners", "round_log", "round_loops", "stop_reason"):
            assert after[key] == before[key], (after["name"], key)
    assert next(s for s in data["stages"] if s["name"] == "my_images")["winners"]
    listing = {r["run_id"]: r for r in json.loads(invoke("inspect", "--output-dir", tmp_path, "--json").stdout)}
    entry = listing[state_id(copy)]
    assert entry["best_image_score"] == original["stages"][1]["scores"]["best_overall"]
    assert entry["best_video_score"] == original["stages"][4]["scores"]["best_overall"]
    text = invoke("inspect", copy).stdout
    assert "My videos: clip_01 rounds" in text and "My frames: candidates x scorers" in text
    assert "keyframes: every one is used" in text and "* = pick" in text


def state_id(run: Path) -> str:
    return json.loads((run / checkpoint.CHECKPOINT_NAME).read_text())["state"]["run_id"]


def test_the_report_module_imports_no_terminal_library() -> None:
    code = (
        "import sys, feedback_cli.workflow.inspect_report\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'typer', 'questionary'))\n"
        "print(bad)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_batch_is_sorted_by_the_latest_stages_pick_score_unless_told() -> None:
    from feedback_cli.workflow.batch_leaderboard import default_sort_key

    prompts = ["image_prompt.prompt_score", "video_prompt.prompt_score"]
    picks = ["image_generation.best_overall", "image_generation.best_sharpness", "video_generation.best_overall"]
    assert default_sort_key(sorted(prompts + picks)) == "video_generation.best_overall"
    assert default_sort_key(sorted(prompts + picks[:2])) == "image_generation.best_overall"
    assert default_sort_key(sorted(prompts)) == "video_prompt.prompt_score"
    assert default_sort_key(["my_stage.best_overall", "image_prompt.prompt_score"]) == "my_stage.best_overall"
    assert default_sort_key(["b.x", "c.y"]) == "b.x" and default_sort_key([]) is None
