"""`fbloop inspect` in every form, on real offline runs: the list (broken folders included), one run (stage
tables and the candidates x scorers matrix), `--compare`, `--json`, and the `--html` report, checked with
html.parser and rendered in headless Chromium (Debian's `chromium` package) when it is installed."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from feedback_cli.app import app
from feedback_cli.runstate.runfolder import RunFolder
from feedback_cli.workflow import checkpoint
from tests.conftest import EXAMPLE, FAST_ENV, read_json

WIDE = {"COLUMNS": "200"}


class Runs:
    """Runs made once for the module: a storyboard run, a plain run, a failed and an interrupted copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "runs"

    def run(self, *args: str) -> Path:
        before = set(self.out.iterdir()) if self.out.exists() else set()
        result = CliRunner().invoke(app, ["run", str(EXAMPLE), "--output-dir", str(self.out), *args])
        assert result.exit_code == 0, result.output
        (new,) = set(self.out.iterdir()) - before
        return new


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(app, ["inspect", *[str(a) for a in args]], env={**WIDE, **(env or {})})
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("FBLOOP_") or name in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "CI"):
                mp.delenv(name, raising=False)
        for name, value in FAST_ENV.items():
            mp.setenv(name, value)
        r = Runs(tmp_path_factory.mktemp("inspect"))
        r.a = r.run("--storyboard", "--clips", "1", "--num-image-variations", "3", "--num-video-attempts", "2",
                    "--seed", "1")  # fmt: skip
        r.b = r.run("--num-image-variations", "2", "--num-video-attempts", "2", "--seed", "2")
        r.failed = make_failed(r.b, r.out / "failed_copy")
        r.interrupted = make_interrupted(r.a, r.out / "interrupted_copy")
        yield r


def rewrite(source: Path, target: Path, change: Any) -> Path:
    """A copy of a run folder whose state was changed by `change` and re-saved as a valid checkpoint."""
    shutil.copytree(source, target)
    _, state = checkpoint.load(target, verify_artifacts=False)
    change(target, state)
    checkpoint.save(RunFolder(target), state)
    return target


def make_failed(source: Path, target: Path) -> Path:
    def change(folder: Path, state: Any) -> None:
        state.run_id = target.name
        state.status = "failed"
        state.error = "stage video_generation failed: provider said no"
        videos = state.stage("video_generation")
        videos.status = "failed"
        videos.error = "provider said no"
        videos.items[0].status = "failed"
        videos.items[0].error = "provider said no"

    return rewrite(source, target, change)


def make_interrupted(source: Path, target: Path) -> Path:
    def change(folder: Path, state: Any) -> None:
        state.run_id = target.name
        state.status = "interrupted"
        videos = state.stage("video_generation")
        videos.status = "interrupted"
        images = state.stage("image_generation")
        (folder / images.items[-1].artifact.path).unlink()  # a file lost since: shown as missing

    return rewrite(source, target, change)


def broken_folders(out: Path) -> dict[str, Path]:
    folders = {name: out / name for name in ("no_checkpoint", "bad_json", "bad_checksum")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (folders["bad_json"] / checkpoint.CHECKPOINT_NAME).write_text("{ truncated")
    envelope = {"format": checkpoint.FORMAT, "schema_version": 1, "checksum": "0" * 64, "state": {"x": 1}}
    (folders["bad_checksum"] / checkpoint.CHECKPOINT_NAME).write_text(json.dumps(envelope))
    return folders


# --- the list of runs ----------------------------------------------------------------------------


def test_list_shows_runs_newest_first_and_broken_folders(runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    shutil.copytree(runs.a, out / runs.a.name)
    shutil.copytree(runs.b, out / runs.b.name)
    broken = broken_folders(out)
    result = invoke("--output-dir", out)
    assert result.exit_code == 0, result.output
    text = result.stdout
    for column in ("Run", "Date (UTC)", "Workflow", "Backend", "Status", "Image", "Video", "USD", "Time"):
        assert column in text
    first_words = [line.split()[0] for line in text.splitlines() if line.split()]
    assert first_words.index(runs.b.name) < first_words.index(runs.a.name)  # B was made after A
    for name in broken:
        assert f"broken: {name}:" in text
    assert "not valid JSON" in text and "checksum" in text and "no workflow_checkpoint.json" in text

    listed = json.loads(invoke("--output-dir", out, "--json").stdout)
    ok = [r for r in listed if r["status"] != "broken"]
    assert [r["run_id"] for r in ok] == [runs.b.name, runs.a.name]
    assert {r["run_id"] for r in listed if r["status"] == "broken"} == set(broken)
    summary = read_json(runs.a / "workflow_summary.json")
    row = next(r for r in ok if r["run_id"] == runs.a.name)
    assert row["workflow"] == "full" and row["backend"] == "offline"
    assert row["best_image_score"] == summary["stages"][1]["scores"]["best_overall"]
    assert row["best_video_score"] is not None and row["cost_usd"] == 0.0 and row["time_s"] > 0


def test_list_of_an_empty_or_missing_dir(tmp_path: Path) -> None:
    result = invoke("--output-dir", tmp_path / "nothing")
    assert result.exit_code == 0
    assert "no runs under" in result.stdout
    assert json.loads(invoke("--output-dir", tmp_path / "nothing", "--json").stdout) == []


# --- one run --------------------------------------------------------------------------------------


def test_single_run_shows_iterations_and_the_candidate_matrix(runs: Runs) -> None:
    result = invoke(runs.a)
    assert result.exit_code == 0, result.output
    text = result.stdout
    state = read_json(runs.a / "workflow_checkpoint.json")["state"]
    for heading in ("Stage 1: Image prompt", "Stage 2: Image generation", "Stage 3: Storyboard",
                    "Stage 4: Video prompt", "Stage 5: Video generation"):  # fmt: skip
        assert heading in text
    assert "writer/critic iterations" in text and "candidates x scorers" in text
    for column in ("Candidate", "sharpness", "colorfulness", "exposure", "flicker", "motion", "Overall", "Cost"):
        assert column in text
    images = next(s for s in state["stages"] if s["name"] == "image_generation")
    best = images["outputs"]["best_key"]
    winner_line = next(line for line in text.splitlines() if f" {best} " in line)
    assert winner_line.lstrip().startswith("*")
    for item in images["items"]:
        assert item["key"] in text
        line = next(line for line in text.splitlines() if f" {item['key']} " in line)
        assert f"{item['overall']:.1f}" in line
    first_prompt_iteration = next(s for s in state["stages"] if s["name"] == "image_prompt")["iterations"][0]
    assert f"{first_prompt_iteration['critique']['overall']:.1f}" in text
    assert "OFFLINE" in text
    assert "totals" in text and "stages done" in text and "5 of 5" in text
    # the storyboard's film and each clip's pick, labelled by clip (runs.a has one clip of 12 frames)
    final_line = next(line for line in text.splitlines() if "final video" in line)
    assert "stage_5_video_generation/final.mp4 (12 frames" in final_line and "stream copy" in final_line
    assert any("best video (clip 1)" in line for line in text.splitlines())
    assert "clips=1" in text and "clips=1.0" not in text


def test_run_can_be_named_by_id_under_the_output_dir(runs: Runs) -> None:
    result = invoke(runs.a.name, "--output-dir", runs.out)
    assert result.exit_code == 0, result.output
    assert f"run {runs.a.name}" in result.stdout


def test_json_is_the_data_and_nothing_else(runs: Runs) -> None:
    result = invoke(runs.a, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)  # stdout is exactly one JSON document
    summary = read_json(runs.a / "workflow_summary.json")
    assert data["format"] == "fbloop-inspect" and data["run_id"] == runs.a.name
    assert data["offline"] is True and data["status"] == "completed"
    assert data["best_image"] == summary["best_image"]
    assert data["totals"]["cost_usd"] == summary["total_cost_usd"]
    assert data["totals"]["time_s"] == summary["total_time_s"]
    assert [s["name"] for s in data["stages"]] == [s["name"] for s in summary["stages"]]
    images = data["stages"][1]
    assert images["scorers"] == ["sharpness", "colorfulness", "exposure"]
    assert len(images["candidates"]) == 3
    winners = [c for c in images["candidates"] if c["winner"]]
    assert [c["path"] for c in winners] == [summary["best_image"]]
    assert all(set(c["scores"]) == set(images["scorers"]) and c["exists"] for c in images["candidates"])
    overall = [c["overall"] for c in images["candidates"]]
    assert overall == sorted(overall, reverse=True)  # ranked
    assert data["stages"][0]["iterations"][0]["critic_score"] > 0
    assert data["stages"][0]["iterations"][0]["feedback"]
    videos = data["stages"][4]
    assert {c["group"] for c in videos["candidates"]} == {"clip_01"}
    assert [c["path"] for c in videos["candidates"] if c["winner"]] == summary["best_videos"]
    assert data["final_video"] == summary["final_video"] == "stage_5_video_generation/final.mp4"
    assert data["final_video_join"]["frames"] == 12
    assert data["final_video_join"]["clips"][0]["path"] == summary["best_videos"][0]


def test_failed_and_interrupted_runs_inspect_with_missing_files(runs: Runs) -> None:
    result = invoke(runs.failed)
    assert result.exit_code == 0, result.output
    assert "status failed" in result.stdout and "provider said no" in result.stdout
    data = json.loads(invoke(runs.failed, "--json").stdout)
    videos = data["stages"][-1]
    assert videos["status"] == "failed" and data["totals"]["candidates_failed"] == 1

    result = invoke(runs.interrupted)
    assert result.exit_code == 0, result.output
    assert "status interrupted" in result.stdout
    assert "missing" in result.stdout
    data = json.loads(invoke(runs.interrupted, "--json").stdout)
    missing = [c["path"] for s in data["stages"] for c in s["candidates"] if not c["exists"]]
    assert len(missing) == 1 and data["totals"]["missing_files"] == missing


def test_broken_run_is_one_clear_error(tmp_path: Path) -> None:
    folders = broken_folders(tmp_path)
    result = invoke(folders["bad_json"])
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr and result.stdout == ""


# --- compare --------------------------------------------------------------------------------------


def test_compare_two_runs_side_by_side(runs: Runs) -> None:
    result = invoke(runs.a, "--compare", runs.b)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"A: {runs.a.name}" in text and f"B: {runs.b.name}" in text
    assert "Δ (B-A)" in text and "options changed:" in text and "seed 1 -> 2" in text
    for name in ("1. image_prompt", "2. image_generation", "3. storyboard", "5. video_generation"):
        assert name in text
    assert "pick" in text and "best_overall" in text and "cost (USD)" in text and "time (s)" in text

    data = json.loads(invoke(runs.a, "--compare", runs.b, "--json").stdout)
    assert data["format"] == "fbloop-compare"
    assert data["a"]["run_id"] == runs.a.name and data["b"]["run_id"] == runs.b.name
    images = next(s for s in data["stages"] if s["name"] == "image_generation")
    a, b = images["scores"]["best_overall"]["a"], images["scores"]["best_overall"]["b"]
    assert images["scores"]["best_overall"]["delta"] == pytest.approx(b - a)
    assert images["wall_time_s"]["delta"] == pytest.approx(images["wall_time_s"]["b"] - images["wall_time_s"]["a"])
    assert images["pick"]["a"] and images["pick"]["b"] and isinstance(images["pick_changed"], bool)
    storyboard = next(s for s in data["stages"] if s["name"] == "storyboard")
    assert storyboard["status"] == {"a": "completed", "b": "skipped"}
    assert (
        data["totals"]["candidates"]["delta"] == data["totals"]["candidates"]["b"] - data["totals"]["candidates"]["a"]
    )


def test_compare_a_run_with_a_copy_of_itself_changes_nothing(runs: Runs, tmp_path: Path) -> None:
    copy = shutil.copytree(runs.a, tmp_path / "copy")
    data = json.loads(invoke(runs.a, "--compare", copy, "--json").stdout)
    for stage in data["stages"]:
        assert all(v["delta"] in (0, None) for v in stage["scores"].values())
        assert stage["pick_changed"] in (False, None)
    assert "same" in invoke(runs.a, "--compare", copy).stdout


def test_compare_and_html_need_a_run(tmp_path: Path) -> None:
    for args in (("--compare", tmp_path), ("--html", tmp_path / "r.html")):
        result = invoke(*args, "--output-dir", tmp_path)
        assert result.exit_code == 2 and "need a RUN" in result.stderr


# --- the HTML report --------------------------------------------------------------------------------


class Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


def write_report(run: Path, target: Path) -> Path:
    result = invoke(run, "--html", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "wrote" in result.stderr
    return target


def test_html_report_structure(runs: Runs, tmp_path: Path) -> None:
    report = write_report(runs.a, tmp_path / "mail" / "report.html")
    page = Structure()
    page.feed(report.read_text(encoding="utf-8"))
    text = " ".join(page.text)
    data = json.loads(invoke(runs.a, "--json").stdout)

    # self-contained: no external stylesheet, script or image
    assert not page.all("link") and not page.all("script")
    images = page.all("img")
    assert len(images) >= 3 + 1 + 1  # 3 candidates, 1 keyframe, the best image in the overview
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumb:
            assert max(thumb.size) <= 320  # downscaled
    videos = page.all("video")
    assert len(videos) >= 2 + 1
    for attrs in videos:
        src = attrs["src"] or ""
        assert src.startswith("data:video/mp4;base64,") or (report.parent / src).is_file()
    links = [a["href"] for a in page.all("a") if a.get("href") and not (a["href"] or "").startswith("#")]
    assert links and all((report.parent / str(href)).exists() for href in links)  # relative to the report

    assert "OFFLINE" in text
    assert any(attrs.get("id") == "offline" for _, attrs in page.tags)
    for stage in data["stages"]:
        assert any(attrs.get("id") == f"stage-{stage['name']}" for _, attrs in page.tags)
        for candidate in stage["candidates"]:
            assert candidate["key"] in text
        for iteration in stage["iterations"]:
            assert iteration["prompt"] in text
        assert f"{stage['cost_usd']:.4f}" in text
    assert data["final_image_prompt"] in text
    assert "final video" in text and "best video (clip 1)" in text
    assert any(str(href).endswith("stage_5_video_generation/final.mp4") for href in links)  # in the gallery
    winners = [attrs for t, attrs in page.tags if t == "div" and attrs.get("class") == "card winner"]
    assert len(winners) == 2  # the image pick and the clip's video pick
    assert "Total cost" in text and "Total time" in text


def test_html_report_of_an_interrupted_run_marks_missing_files(runs: Runs, tmp_path: Path) -> None:
    report = write_report(runs.interrupted, tmp_path / "r.html")
    html = report.read_text(encoding="utf-8")
    assert 'class="missing">missing' in html
    assert "interrupted" in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    total: images.length,
    loaded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    widths: images.map((i) => i.naturalWidth),
  });
  document.body.appendChild(probe);
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(runs: Runs, tmp_path: Path) -> None:
    report = write_report(runs.a, tmp_path / "report.html")
    # the report itself has no script; a copy with a probe appended reports how the images loaded
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    probe = json.loads(dom.stdout[start : dom.stdout.index("</pre>", start)])
    assert probe["total"] >= 5 and probe["loaded"] == probe["total"], probe
    assert all(0 < w <= 320 for w in probe["widths"])

    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500  # thumbnails drawn, not a blank page
