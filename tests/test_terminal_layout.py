"""The terminal and scripting surface as a user sees it (issue 15): paths, commands and prompts whole in every
output (piped, 60 and 160 columns), stacked tables on narrow terminals, the review's files and picker keys,
the live display while scoring and iterating, `-v` scores, `fbloop inspect` prompts and diffs, and the HTML
reports (run and compare) rendered in headless Chromium at 1280 and 390 px."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from feedback_cli.app import app
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.runfolder import RunFolder
from feedback_cli.workflow import checkpoint
from tests.conftest import EXAMPLE, FAST_ENV, REPO, only_run, read_json

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\a\x1b]*(?:\a|\x1b\\)|\r")
#: Rich treats the stream as a terminal of COLUMNS columns (CliRunner's stream is not a tty)
TERMINAL = {"TTY_COMPATIBLE": "1", "NO_COLOR": "1"}
WIDTHS = (60, 160)
#: a deep output folder: every path printed is longer than 80 columns, so a hard wrap would split it
DEEP = "a_rather_long_folder_name_for_the_runs/and_one_more_level_below_it"


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], env=env or {}, catch_exceptions=False)


def plain(text: str) -> str:
    return ANSI.sub("", text)


class Runs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / DEEP

    def run(self, prompt: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Path, Any]:
        before = set(self.out.iterdir()) if self.out.exists() else set()
        result = invoke("run", prompt, "--output-dir", self.out, *args, env=env)
        assert result.exit_code == 0, result.output
        (new,) = set(self.out.iterdir()) - before
        return new, result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("FBLOOP_") or name in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "CI", "COLUMNS"):
                mp.delenv(name, raising=False)
        for name, value in FAST_ENV.items():
            mp.setenv(name, value)
        r = Runs(tmp_path_factory.mktemp("layout"))
        # piped (CliRunner's stdout is not a terminal), with COLUMNS=60 set: still not wrapped
        r.a, r.a_result = r.run(
            EXAMPLE, "--storyboard", "--clips", "2", "--num-image-variations", "3", "--num-video-attempts", "2",
            "--seed", "1", env={"COLUMNS": "60"},
        )  # fmt: skip
        other = r.root / "lighthouse.txt"
        other.write_text((REPO / "examples" / "lighthouse.txt").read_text())
        r.b, r.b_result = r.run(other, "--num-image-variations", "2", "--num-video-attempts", "2", "--seed", "2")
        yield r


PATH_LINE = r"(best image|best video \(clip \d\)|best video|final video|run folder|summary):\s+(\S.*)$"


def path_lines(stdout: str) -> dict[str, str]:
    """label -> path of the summary's path lines (`best image:   /x/y.png`)."""
    out = {}
    for line in stdout.splitlines():
        match = re.match(
            r"(best image|best video \(clip \d\)|best video|final video|run folder|summary):\s+(\S.*)$", line
        )
        if match:
            out[match.group(1)] = match.group(2)
    return out


# --- paths and wrapping -------------------------------------------------------------------------------


def test_piped_output_keeps_every_path_and_prompt_whole(runs: Runs) -> None:
    stdout, stderr = runs.a_result.stdout, runs.a_result.stderr
    paths = path_lines(stdout)
    assert {"best image", "best video (clip 1)", "best video (clip 2)", "final video", "run folder"} <= set(paths)
    for label, path in paths.items():
        assert len(path) > 80, path  # long enough that an 80-column wrap would have split it
        assert Path(path).exists(), f"{label}: {path!r} is not a whole path"
    summary = read_json(runs.a / "workflow_summary.json")
    assert f"image prompt: {summary['final_image_prompt']}" in stdout.splitlines()
    assert len(summary["final_image_prompt"]) > 60
    # progress lines on stderr: each file named whole on its line
    finished = [line for line in stderr.splitlines() if " -> stage_" in line]
    assert finished and all(re.search(r"-> stage_\d_\w+/\w+\.(png|mp4) \(", line) for line in finished)
    assert "…" not in stdout and "..." not in stdout


def test_output_redirected_to_a_file_is_unwrapped(tmp_path: Path) -> None:
    """The issue's command: `fbloop run examples/red_fox.txt --storyboard > f` in a real process."""
    out_dir = tmp_path / DEEP
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "CI")}
    env.update(FAST_ENV, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    with open(tmp_path / "f", "w") as f, open(tmp_path / "e", "w") as e:
        code = subprocess.call(
            [sys.executable, "-m", "feedback_cli", "run", str(EXAMPLE), "--storyboard", "--clips", "2",
             "--num-image-variations", "2", "--num-video-attempts", "2", "--output-dir", str(out_dir)],
            stdout=f, stderr=e, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip
    stdout = (tmp_path / "f").read_text()
    assert code == 0, (tmp_path / "e").read_text()
    paths = path_lines(stdout)
    assert any(re.search(r"clip_0\d_video_0\d\.mp4$", p) for p in paths.values())
    for path in paths.values():
        assert Path(path).exists(), path
    assert "\x1b[" not in stdout  # plain text in a file
    run = only_run(out_dir)
    summary = read_json(run / "workflow_summary.json")
    lines = stdout.splitlines()
    assert f"image prompt: {summary['final_image_prompt']}" in lines
    for number, prompt in enumerate(summary["motion_prompts"], start=1):
        assert len(prompt) > 80 and f"motion prompt (clip {number}): {prompt}" in lines  # one line, not folded
    stderr = (tmp_path / "e").read_text()
    assert f"-> {run}" in stderr


@pytest.mark.parametrize("width", WIDTHS)
def test_summary_on_a_terminal_never_cuts_a_score(runs: Runs, tmp_path: Path, width: int) -> None:
    _, result = Runs(tmp_path).run(
        EXAMPLE, "--storyboard", "--clips", "2", "--num-image-variations", "2", "--num-video-attempts", "2",
        env={**TERMINAL, "COLUMNS": str(width)},
    )  # fmt: skip
    text = plain(result.stdout)
    assert "…" not in text
    run = only_run(tmp_path / DEEP)
    summary = read_json(run / "workflow_summary.json")
    for stage in summary["stages"]:
        for key, value in stage["scores"].items():
            figure = f"{key}={round(value) if key == 'clips' else f'{value:.1f}'}"
            assert figure in text, figure
    if width == 60:
        assert "  Scores: prompt_score=" in text  # stacked: one record per stage
        assert "┃" not in text
    else:
        assert "┃ Stage" in text  # the table
    for path in path_lines(text).values():  # soft-wrapped by the terminal, never split by Rich
        assert Path(path).exists(), path


@pytest.mark.parametrize("width", WIDTHS)
def test_dry_run_shows_every_model_name_whole(tmp_path: Path, width: int) -> None:
    keys = {"OPENAI_API_KEY": "sk-test-not-used", "REPLICATE_API_TOKEN": "r8_test_not_used"}  # cloud model names
    args = ("run", EXAMPLE, "--storyboard", "--dry-run", "--output-dir", tmp_path)
    piped = invoke(*args, env=keys).stdout  # unwrapped: the Models column in full
    models = {
        cell.strip() for line in piped.splitlines() if line.startswith("│ ")
        for cell in line.split("│")[4].split(",") if cell.strip() and not cell.strip().startswith("skipped")
    }  # fmt: skip
    assert "black-forest-labs/flux-schnell" in models
    result = invoke(*args, env={**keys, **TERMINAL, "COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    for model in models:
        assert model in text, model
    assert "…" not in text
    if width == 60:
        assert "  Models: black-forest-labs/flux-schnell" in text  # stacked
        assert all(len(line) <= 60 for line in text.splitlines() if not line.startswith(("backend:", "note:")))
    else:
        assert "┃ Models" in text


def test_stacking_is_decided_by_what_would_be_cut() -> None:
    from rich.table import Table

    from feedback_cli.ui.console import print_table, table_fits

    table = Table(title="t")
    table.add_column("Name")
    table.add_column("Path", no_wrap=True)
    table.add_row("short", "/a/very/long/path/" + "x" * 50 + ".png")
    narrow = Console(file=io.StringIO(), width=60, force_terminal=True, color_system=None)
    wide = Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None)
    assert not table_fits(narrow, table) and table_fits(wide, table)
    print_table(narrow, table)
    lines = narrow.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[:2] == ["t", "short"]
    assert lines[2] == "  Path: /a/very/long/path/" + "x" * 50 + ".png"  # one line, the terminal folds it


# --- progress -----------------------------------------------------------------------------------------


def renderer(verbose: bool = False) -> tuple[Any, EventBus, Console]:
    from feedback_cli.ui.console import EventRenderer

    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    r = EventRenderer(console, verbose)
    r.live = True
    bus = EventBus()
    bus.subscribe(r)
    return r, bus, console


def shown(r: Any) -> tuple[str, str]:
    from feedback_cli.ui.console import CountColumn

    assert r.progress is not None
    task = r.progress.tasks[0]
    return task.description, CountColumn().render(task).plain


def test_live_display_counts_iterations_and_scoring() -> None:
    r, bus, _ = renderer()
    bus.emit("stage_started", number=1, title="Image prompt")
    assert shown(r)[1] == ""  # not "0/?"
    bus.emit("iteration_started", iteration=1, max_iterations=3, scope="")
    assert shown(r) == ("Stage 1: Image prompt: writing iteration 1", "0/3")
    bus.emit("iteration", "iteration 1: 70.0", iteration=1, max_iterations=3, score=70.0, threshold=85.0)
    assert shown(r)[1] == "1/3"
    bus.emit("stage_finished", wall_time_s=1.0, cost_usd=0.0)

    bus.emit("stage_started", number=2, title="Image generation")
    for key in ("image_01", "image_02", "image_03"):
        bus.emit("item_started", key, key=key, seed=1)
    for key in ("image_01", "image_02", "image_03"):
        bus.emit("item_finished", key=key, path=f"s/{key}.png", latency_s=0.1, cost_usd=0.0)
    bus.emit("item_scoring", key="image_01", scorer="clip")
    assert shown(r) == ("Stage 2: Image generation: scoring 1 of 3 (clip)", "3/3")
    bus.emit("item_scoring", key="image_01", scorer="aesthetic")
    assert shown(r)[0].endswith("scoring 1 of 3 (aesthetic)")
    bus.emit("item_scoring", key="image_02", scorer="clip")
    assert shown(r)[0].endswith("scoring 2 of 3 (clip)")
    r.close()


def test_verbose_scores_are_aligned_text() -> None:
    from feedback_cli.ui.console import scores_line

    r, bus, console = renderer(verbose=True)
    bus.emit("stage_started", number=2, title="Image generation")
    bus.emit("item_scored", key="image_01", scores={"clip": 91.234, "aesthetic": 5.0})
    bus.emit("item_scored", key="image_10", scores={"clip": 100.0, "aesthetic": 55.55})
    r.close()
    lines = [line for line in console.file.getvalue().splitlines() if "image_" in line]  # type: ignore[attr-defined]
    assert len(lines) == 2
    assert not any(c in "".join(lines) for c in "{}'")
    assert lines[0].index("aesthetic") == lines[1].index("aesthetic")
    assert lines[0].rstrip().endswith("5.0") and "clip  91.2" in lines[0]
    assert scores_line("k", {}).strip().endswith("(no scores)")


def test_the_engine_emits_scoring_and_iteration_progress(runs: Runs) -> None:
    events = checkpoint.load(runs.a, verify_artifacts=False)[1].events
    scoring = [e for e in events if e["kind"] == "item_scoring"]
    images = [e for e in scoring if e["stage"] == "image_generation"]
    assert {e["data"]["key"] for e in images} == {"image_01", "image_02", "image_03"}
    assert all(e["data"]["scorer"] for e in scoring)
    iterations = [e for e in events if e["kind"] in ("iteration_started", "iteration")]
    assert iterations and all(e["data"]["max_iterations"] >= e["data"]["iteration"] for e in iterations)


# --- the review screen --------------------------------------------------------------------------------


def spawn(args: list[str], width: int) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "COLUMNS", "LINES")}
    env.update(FAST_ENV, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm-256color")
    return pexpect.spawn(
        sys.executable, ["-m", "feedback_cli", *args], env=env, encoding="utf-8", timeout=90, dimensions=(50, width)
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_review_shows_whole_paths_and_picker_keys_match_the_table(tmp_path: Path, width: int) -> None:
    out = tmp_path / DEEP
    child = spawn(
        ["run", str(EXAMPLE), "--interactive", "--num-image-variations", "4", "--num-video-attempts", "2",
         "--seed", "3", "--output-dir", str(out)],
        width,
    )  # fmt: skip
    child.expect_exact("Continue to next stage? (y/n)")
    screen = child.before
    text = plain(screen)
    run = only_run(out)
    folder = run / "stage_2_image_generation"
    # every candidate's whole path, as a terminal hyperlink to the file
    for number in range(1, 5):
        match = re.search(rf"#{number}\s+(image_\d\d)\s+(\S+)", text)
        assert match, text
        assert match.group(2) == str(folder / f"{match.group(1)}.png")
        assert "\x1b]8;id=" in screen and (folder / f"{match.group(1)}.png").as_uri() in screen
    # the table's # for each key (a table at 160 columns, stacked records at 60)
    if width == 160:
        table = {n: k for n, k in re.findall(r"│\s+(\d)\s+│[^│]*│\s+(image_\d\d)\s+│", text)}
    else:
        table = {n: k for n, k in re.findall(r"^#(\d)\n(?:  Pick: \*\n)?  Candidate: (image_\d\d)", text, re.M)}
    assert len(table) == 4, text
    files = dict(re.findall(r"#(\d)\s+(image_\d\d)\s", text))
    assert files == table
    child.send("n")
    child.expect_exact("Regenerate images with feedback? (y/n)")
    child.send("n")
    child.expect_exact("What now?")
    child.send("p")  # answers at once: no Enter
    child.expect_exact("Which image?")
    child.expect_exact("b) Back")
    menu = plain(child.before)
    assert "1) " not in menu  # #1 is the current pick: not offered, and no other candidate takes its key
    assert re.search(rf"3\) {table['3']}\b", menu), menu
    child.send("3")  # the key is the table's #, and it answers at once
    child.expect_exact("review: pick ")
    child.expect(r"image_\d\d")
    assert child.after == table["3"]
    child.expect_exact("Continue to next stage? (y/n)")  # the video review
    child.send("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    state = read_json(run / "workflow_checkpoint.json")["state"]
    assert state["reviews"][0]["choice"] == table["3"]


@pytest.mark.parametrize("width", WIDTHS)
def test_resume_command_after_a_stop_is_one_unbroken_line(tmp_path: Path, width: int) -> None:
    out = tmp_path / DEEP
    child = spawn(
        ["run", str(EXAMPLE), "--interactive", "--num-image-variations", "2", "--output-dir", str(out)], width
    )
    child.expect_exact("Continue to next stage? (y/n)")
    child.send("n")
    child.expect_exact("Regenerate images with feedback? (y/n)")
    child.send("n")
    child.expect_exact("What now?")
    child.send("s")
    child.expect(pexpect.EOF)
    child.close()
    run = only_run(out)
    assert f"Resume with: fbloop resume {run}\n" in child.before.replace("\r", "")


# --- fbloop inspect -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {**TERMINAL, "COLUMNS": "60"}, {**TERMINAL, "COLUMNS": "160"}])
def test_run_list_shows_each_runs_prompt(runs: Runs, env: dict[str, str]) -> None:
    result = invoke("inspect", "--output-dir", runs.out, env=env)
    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    for run in (runs.a, runs.b):
        prompt = " ".join(checkpoint.load(run, verify_artifacts=False)[1].source_prompt.split())
        assert prompt in text
        assert run.name in text
    assert "…" not in text


@pytest.mark.parametrize("env", [{}, {**TERMINAL, "COLUMNS": "60"}])
def test_a_run_shows_every_iteration_whole_with_a_word_diff(runs: Runs, env: dict[str, str]) -> None:
    result = invoke("inspect", runs.a, env=env)
    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    lines = text.splitlines()
    data = json.loads(invoke("inspect", runs.a, "--json").stdout)
    iterations = [(s, it) for s in data["stages"] for it in s["iterations"]]
    assert len(iterations) >= 2
    for _, it in iterations:
        assert f"  prompt: {' '.join(it['prompt'].split())}" in lines
    with_changes = [it for _, it in iterations if it["changes"]]
    assert with_changes, "the fixture run should have a prompt that changed"
    for it in with_changes:
        added = " ".join(words for op, words in it["changes"] if op == "+")
        assert added and f"{{+{added.split(' ')[0]}" in text
    first = data["stages"][0]["iterations"]
    if len(first) > 1:  # the diff, applied, gives the new prompt
        rebuilt = " ".join(words for op, words in first[1]["changes"] if op != "-")
        assert rebuilt == " ".join(first[1]["prompt"].split())


def test_compare_deltas_come_from_the_shown_values(runs: Runs, tmp_path: Path) -> None:
    a = tmp_path / "a"
    shutil.copytree(runs.a, a)
    _, state = checkpoint.load(a, verify_artifacts=False)
    state.stage("image_generation").scores["best_overall"] = 91.54  # shown 91.5
    checkpoint.save(RunFolder(a), state)
    b = tmp_path / "b"
    shutil.copytree(runs.a, b)
    _, state = checkpoint.load(b, verify_artifacts=False)
    state.stage("image_generation").scores["best_overall"] = 93.96  # shown 94.0
    checkpoint.save(RunFolder(b), state)
    text = invoke("inspect", a, "--compare", b).stdout
    row = next(line for line in text.splitlines() if line.startswith("best_overall"))
    assert row.split()[1:] == ["91.5", "94.0", "+2.5"]
    html_path = tmp_path / "c.html"
    assert invoke("inspect", a, "--compare", b, "--html", html_path).exit_code == 0
    assert "<td class='num'>91.5</td><td class='num'>94.0</td><td class='num ok'>+2.5</td>" in html_path.read_text()


@pytest.mark.parametrize("env", [{}, {**TERMINAL, "COLUMNS": "60"}])
def test_compare_shows_the_prompt_difference_whole(runs: Runs, env: dict[str, str]) -> None:
    result = invoke("inspect", runs.a, "--compare", runs.b, env=env)
    assert result.exit_code == 0, result.output
    lines = plain(result.stdout).splitlines()
    data = json.loads(invoke("inspect", runs.a, "--compare", runs.b, "--json").stdout)
    prompts = next(s for s in data["stages"] if s["name"] == "image_prompt")["pick"]
    a, b = prompts["a"]["prompt"], prompts["b"]["prompt"]
    assert f"prompt A: {' '.join(a.split())}" in lines
    assert f"prompt B: {' '.join(b.split())}" in lines
    diff = next(line for line in lines if line.startswith("prompt A -> B: "))
    assert "{+" in diff and "[-" in diff
    assert "…" not in "\n".join(lines)


# --- the HTML reports ---------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: measures the page from inside an iframe of the wanted width (a headless window is at least ~500 px wide)
PROBE = """<script>
window.addEventListener("load", () => {
  const doc = document.documentElement;
  const scrolling = Array.from(document.querySelectorAll(".wide")).filter((b) => b.scrollWidth > b.clientWidth + 1);
  const outside = Array.from(document.querySelectorAll("body *")).filter(
    (e) => !e.closest(".wide") && e.getBoundingClientRect().right > doc.clientWidth + 1);
  const images = Array.from(document.images);
  parent.postMessage(JSON.stringify({
    page: doc.scrollWidth, view: doc.clientWidth, scrolling: scrolling.length,
    outside: outside.slice(0, 5).map((e) => e.tagName + "." + e.className),
    images: images.length, loaded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    grid: document.querySelectorAll(".grid .card").length,
    columns: Array.from(document.querySelectorAll(".grid")).map(
      (g) => getComputedStyle(g).gridTemplateColumns.split(" ").length),
  }), "*");
});
</script>"""

FRAME = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" style="border:0;width:{width}px;height:1200px"></iframe>
<script>window.addEventListener("message", (e) => {{ const p = document.createElement("pre"); p.id = "probe";
p.textContent = e.data; document.body.appendChild(p); }});</script></body></html>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def measure(report: Path, width: int, tmp_path: Path) -> dict[str, Any]:
    probed = report.with_name(report.stem + f"_probe{width}.html")
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    frame = report.with_name(report.stem + f"_frame{width}.html")
    frame.write_text(FRAME.format(src=probed.name, width=width), encoding="utf-8")
    dom = chromium(tmp_path, f"--window-size={max(width, 800)},1300", "--virtual-time-budget=10000", "--dump-dom",
                   frame.as_uri())  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    return json.loads(dom.stdout[start : dom.stdout.index("</pre>", start)].replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.parametrize("kind", ["run", "compare"])
def test_html_reports_fit_1280_and_390_px(runs: Runs, tmp_path: Path, kind: str) -> None:
    report = tmp_path / f"{kind}.html"
    args = [runs.a] + (["--compare", runs.b] if kind == "compare" else [])
    result = invoke("inspect", *args, "--html", report)
    assert result.exit_code == 0, result.output
    for width in (1280, 390):
        probe = measure(report, width, tmp_path)
        assert width - 20 <= probe["view"] <= width, probe  # measured in a frame of that width (less a scrollbar)
        assert probe["page"] <= probe["view"], probe  # nothing sticks out of the page
        assert probe["outside"] == [], probe
        assert probe["loaded"] == probe["images"] > 0, probe
        if width == 1280:
            assert probe["scrolling"] == 0, probe  # no table cut at 1280 px: no box needs scrolling
            if kind == "run":
                assert probe["grid"] == 3 + 2 + 4  # images, keyframes, videos (2 clips x 2 attempts)
                assert max(probe["columns"]) >= 3  # side by side, not one tall list
        shot = tmp_path / f"{kind}_{width}.png"
        done = chromium(tmp_path, f"--window-size={max(width, 800)},1300", f"--screenshot={shot}",
                        report.with_name(report.stem + f"_frame{width}.html").as_uri())  # fmt: skip
        assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
        with Image.open(shot) as image:
            assert image.size == (max(width, 800), 1300)
            strip = image.convert("RGB").crop((0, 0, width, 1200))
            colours = strip.getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 200  # drawn, not blank


def test_html_report_has_frames_options_seeds_and_calls(runs: Runs, tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    assert invoke("inspect", runs.a, "--html", report).exit_code == 0
    page = report.read_text(encoding="utf-8")
    data = json.loads(invoke("inspect", runs.a, "--json").stdout)
    storyboard = next(s for s in data["stages"] if s["name"] == "storyboard")
    section = page[page.index('id="stage-storyboard"') : page.index('id="stage-video_prompt"')]
    assert "Start and end frames" in section
    assert section.count("<img") >= 2 * len(storyboard["outputs"]["clips"]) + 2  # start, end; and the keyframes
    assert "start frame" in section and "end frame" in section
    options = page[page.index('id="options"') :]
    assert f"<th>seed</th><td>{data['options']['seed']}</td>" in options
    for candidate in next(s for s in data["stages"] if s["name"] == "image_generation")["candidates"]:
        assert f"{candidate['key']}&nbsp;{candidate['seed']}" in options
    calls = page[page.index('id="calls"') :]
    assert data["calls"] and calls.count("<tr>") >= len(data["calls"]) + 1
    for call in data["calls"][:3]:
        assert call["what"] in calls


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_inspect_never_cuts_a_cell_at_any_width(runs: Runs, width: int) -> None:
    """Run B skipped its storyboard: a long status next to long scores, where Rich's own fitting cut the
    scores to `best_sharpness=100.…` at 80 columns."""
    env = {**TERMINAL, "COLUMNS": str(width)}
    data = json.loads(invoke("inspect", runs.b, "--json").stdout)
    for args in ((runs.b,), (runs.a, "--compare", runs.b), ("--output-dir", runs.out)):
        result = invoke("inspect", *args, env=env)
        assert result.exit_code == 0, result.output
        text = plain(result.stdout)
        assert "…" not in text, text
    text = plain(invoke("inspect", runs.b, env=env).stdout)
    flat = " ".join(text.split())
    for stage in data["stages"]:
        for key, value in stage["scores"].items():
            assert f"{key}={round(value) if key == 'clips' else f'{value:.1f}'}" in flat
