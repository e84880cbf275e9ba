"""Inputs: how prompt files are told apart (text or image), what a prompt may contain, what reaches the
terminal, the mode of copied files, and settings read from the environment."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from PIL import Image
from rich.table import Table
from rich.text import Text

from feedback_cli.files import FILE_MODE
from feedback_cli.ui.console import SafeConsole, error_line
from feedback_cli.workflow.safe_text import json_safe, printable
from tests.conftest import EXAMPLE, only_run, read_json

#: what must never reach a terminal from fbloop's data: C0 controls but newline/tab, DEL, C1, bidi, zero-width
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
#: a prompt / model reply that tries to clear the screen, set the window title, rewrite the line, reorder text
HOSTILE = "a red fox \x1b[2J\x1b[H\x1b]0;pwned\x07 in \u202eyppans\u202c snow\r\x9b31m at dawn\u200b"


def checkpoint_state(run: Path) -> dict:
    return read_json(run / "workflow_checkpoint.json")["state"]


# --- text or image: by extension and a real decode, never by the first bytes ------------------------


@pytest.mark.parametrize(
    "text",
    [
        "BMX rider jumping over a sand dune at sunset",  # "BM": the BMP magic number
        "GIF8 frames of a cat chasing a laser dot",  # "GIF8"
        "GIF89a of a cat jumping over the moon, 1990s web banner style",  # a whole GIF signature
        "RIFF on a guitar played in a smoky bar",  # "RIFF": WebP's container
        "II* is how the old poster spelled it",  # "II*" without the NUL of TIFF
    ],
)
@pytest.mark.parametrize("name", ["prompt.txt", "prompt", "prompt.md"])
def test_text_that_starts_like_an_image_is_a_text_prompt(cli, tmp_path: Path, text: str, name: str) -> None:
    prompt = tmp_path / name
    prompt.write_text(text + "\n")
    out = tmp_path / "out"
    result = cli("run", prompt, "--workflow", "prompt-only", "--backend", "offline", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    state = checkpoint_state(only_run(out))
    assert state["source_prompt"] == text and state["prompt_image"] is None


@pytest.mark.parametrize("name", ["photo", "photo.txt", "photo.data"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_an_image_under_another_name_is_an_image_prompt(cli, tmp_path: Path, name: str, fmt: str) -> None:
    Image.new("RGB", (48, 32), (200, 120, 40)).save(tmp_path / name, format=fmt)
    out = tmp_path / "out"
    result = cli("run", tmp_path / name, "--workflow", "prompt-only", "--backend", "offline", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    state = checkpoint_state(only_run(out))
    assert state["prompt_image"] == f"input/{name}"  # stage 1 describes it (offline: from its name)


def test_a_text_file_named_like_an_image_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "idea.bmp").write_text("BMX rider jumping over a dune")
    result = cli("run", tmp_path / "idea.bmp", "--output-dir", tmp_path / "out")
    assert result.exit_code == 2 and "is not a usable image" in result.stderr
    assert not (tmp_path / "out").exists()


# --- what a prompt may contain ----------------------------------------------------------------------


def test_control_and_bidi_characters_are_taken_out_of_a_prompt(cli, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text(HOSTILE + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cli("run", tmp_path / "p.txt", "--workflow", "prompt-only", "--backend", "offline", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    assert checkpoint_state(run)["source_prompt"] == "a red fox in yppans snow at dawn"
    assert (run / "input" / "prompt.txt").read_text() == "a red fox in yppans snow at dawn\n"


def test_emoji_and_scripts_keep_their_joiners(cli, tmp_path: Path) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # joined by ZWJ
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # with a ZWNJ
    text = f"a family {family} in a {persian} market"
    (tmp_path / "p.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = cli("run", tmp_path / "p.txt", "--workflow", "prompt-only", "--backend", "offline", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    assert checkpoint_state(only_run(out))["source_prompt"] == text


# --- nothing printed can drive the terminal ---------------------------------------------------------


def test_the_terminal_wrapper_cleans_every_renderable(capsys: pytest.CaptureFixture[str]) -> None:
    console = SafeConsole(force_terminal=True, color_system="truecolor", width=200)
    table = Table(title=f"run {HOSTILE}")
    table.add_column("prompt")
    table.add_column("note")
    table.add_row(HOSTILE, Text(HOSTILE, style="bold red"))  # a str cell and a Text built elsewhere
    console.print(table)
    console.print(f"image prompt: {HOSTILE}", markup=False)
    console.print(Text(HOSTILE))
    console.print(f"[green]{HOSTILE}[/green]")
    out = capsys.readouterr().out
    # Rich's own styling is still there (SGR escapes it made itself) ...
    assert "\x1b[1;31m" in out or "\x1b[31;1m" in out or "\x1b[1m" in out
    # ... but nothing from the data: no title set, no clear screen, no bidi override, no CR, no C1
    without_rich_styles = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert not FORBIDDEN.search(without_rich_styles), repr(without_rich_styles)
    assert "pwned" not in out and "[2J" not in out
    assert "a red fox" in out and "at dawn" in out


def test_error_lines_are_one_clean_line(capsys: pytest.CaptureFixture[str]) -> None:
    error_line(f"prompt file /tmp/{HOSTILE}\nsecond line does not exist")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not FORBIDDEN.search(err)


def test_a_hostile_file_name_is_printed_clean(cli, tmp_path: Path) -> None:
    result = cli("run", tmp_path / "evil\x1b]0;pwned\x07\x1b[2J.txt", "--output-dir", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr
    assert not FORBIDDEN.search(result.stderr) and "pwned" not in result.stderr


def test_json_output_escapes_what_a_terminal_would_obey() -> None:
    data = {"prompt": HOSTILE, "\u202ekey": "\x85next"}
    text = json_safe(json.dumps(data, ensure_ascii=False))
    assert not FORBIDDEN.search(text)
    assert json.loads(text) == data, "the same data, only spelled with \\u escapes"


def test_printable_keeps_ordinary_text() -> None:
    text = "Café 東京 \U0001f98a [bold] 50% <b> tab\there\nnext line \u0645\u200c\u0646"
    assert printable(text) == text


@pytest.fixture
def cloud(fake_provider_env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FBLOOP_POLL_INTERVAL_S", "0.02")
    monkeypatch.setenv("FBLOOP_SCORERS", "offline")
    return fake_provider_env


def test_a_model_reply_with_escape_sequences_never_reaches_the_terminal(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The writer model answers with a prompt full of escapes: the run, the summary, `inspect` (tables,
    --json, --html) and the error line of a refusal print none of them."""
    cloud.queue_chat_replies(json.dumps({"prompt": HOSTILE, "rationale": f"because {HOSTILE}"}))
    out = tmp_path / "out"
    result = cli(
        "run", EXAMPLE, "--workflow", "prompt-only", "--backend", "cloud", "--max-iterations-image", "1",
        "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    kept = checkpoint_state(run)["stages"][0]["outputs"]["final_prompt"]
    assert "\x1b]0;pwned\x07" in kept, "the reply is kept as the model sent it (else this test proves nothing)"
    assert "a red fox" in result.stdout and "at dawn" in result.stdout  # the summary shows the prompt ...
    for printed in (result.stdout, result.stderr):
        assert not FORBIDDEN.search(printed), repr(printed)  # ... cleaned
    for args in ([run], [run, "--json"], ["--output-dir", out]):
        shown = cli("inspect", *args)
        assert shown.exit_code == 0, shown.stderr
        assert "yppans" in shown.stdout or args == ["--output-dir", out]
        assert not FORBIDDEN.search(shown.stdout + shown.stderr), (args, repr(shown.stdout))
    # --json: the same data, the characters spelled as \u escapes
    assert json.loads(cli("inspect", run, "--json").stdout)["stages"][0]["outputs"]["final_prompt"] == kept
    report = tmp_path / "report.html"
    assert cli("inspect", run, "--html", report).exit_code == 0
    page = report.read_text(encoding="utf-8")
    assert "yppans" in page and not FORBIDDEN.search(page)


def test_json_summaries_spell_what_a_terminal_would_obey_as_escapes(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`run --json` and `resume --json` (of a finished run) print the summary with the hostile reply's C1,
    bidi and zero-width characters as \\u escapes: the same data, nothing a terminal acts on."""
    cloud.queue_chat_replies(json.dumps({"prompt": HOSTILE, "rationale": "because"}))
    out = tmp_path / "out"
    result = cli(
        "run", EXAMPLE, "--workflow", "prompt-only", "--backend", "cloud", "--max-iterations-image", "1",
        "--output-dir", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    kept = checkpoint_state(run)["stages"][0]["outputs"]["final_prompt"]
    assert "\u202e" in kept, "the reply is kept as the model sent it (else this test proves nothing)"
    again = cli("resume", run, "--json")
    assert again.exit_code == 0, again.stderr
    for printed in (result, again):
        assert not FORBIDDEN.search(printed.stdout + printed.stderr), repr(printed.stdout)
        assert json.loads(printed.stdout)["final_image_prompt"] == kept


def test_a_refusal_with_escapes_is_one_clean_error_line(cli, cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.fakes.script import ChatReply

    cloud.queue_chat_replies(*[ChatReply.refuse(f"no\x1b]0;pwned\x07\x1b[2J way {n}") for n in range(8)])
    out = tmp_path / "out"
    result = cli(
        "run", EXAMPLE, "--workflow", "prompt-only", "--backend", "cloud", "--max-iterations-image", "1",
        "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "refused" in result.stderr and "pwned" not in result.stderr
    assert not FORBIDDEN.search(result.stdout + result.stderr), repr(result.stderr)


# --- copies get fbloop's mode, not the source's -----------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o755, 0o444, 0o2750])
def test_copied_inputs_get_the_run_folder_mode(cli, tmp_path: Path, mode: int) -> None:
    source = tmp_path / "start.png"
    Image.new("RGB", (40, 30), (30, 90, 200)).save(source)
    source.chmod(mode)
    out = tmp_path / "out"
    result = cli("run", source, "--workflow", "prompt-only", "--backend", "offline", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    copies = list((run / "input").iterdir())
    assert copies, "the prompt image is copied in"
    for copy in copies:
        assert stat.S_IMODE(copy.stat().st_mode) == FILE_MODE, (oct(mode), oct(copy.stat().st_mode))
    assert stat.S_IMODE(source.stat().st_mode) == mode, "the source is left as it was"


def test_stage_frames_are_copied_with_the_run_folder_mode(cli, tmp_path: Path) -> None:
    frames = []
    for n, mode in enumerate((0o600, 0o755, 0o444, 0o640)):
        frame = tmp_path / f"f{n}.png"
        Image.new("RGB", (40, 30), (n * 50, 90, 200)).save(frame)
        frame.chmod(mode)
        frames.append(frame.name)
    clips = [
        {"clip": 1, "start_frame": frames[0], "end_frame": frames[1], "motion_prompt": "pan"},
        {"clip": 2, "start_frame": frames[2], "end_frame": frames[3], "motion_prompt": "zoom"},
    ]
    (tmp_path / "motion.json").write_text(json.dumps({"prompt": "a fox", "clips": clips}))
    out = tmp_path / "out"
    result = cli(
        "stage", "video-generation", "--motion-prompts", tmp_path / "motion.json", "-n", "1", "--backend", "offline",
        "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = only_run(out / "video_generation")
    copies = sorted((run / "input").glob("clip_*"))
    assert len(copies) == 4
    assert {stat.S_IMODE(c.stat().st_mode) for c in copies} == {FILE_MODE}


# --- settings from the environment: one line naming the variable --------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FBLOOP_MAX_COST", "abc", "valid number"),  # float
        ("FBLOOP_MAX_COST", "-1", "greater than or equal to 0"),
        ("FBLOOP_REPLICATE_CONCURRENCY", "0", "greater than or equal to 1"),  # int bound
        ("FBLOOP_LLM_CONCURRENCY", "four", "valid integer"),  # int
        ("FBLOOP_REQUEST_TIMEOUT_S", "-5", "greater than 0"),
        ("FBLOOP_BACKEND", "gpu", "'auto', 'offline' or 'cloud'"),  # literal
        ("FBLOOP_OFFLINE_IMAGE_SIZE", "9999", "less than or equal to 2048"),
        ("FBLOOP_IMAGE_WEIGHTS", "clip=2", "not valid JSON"),  # dict: parsed as JSON before validation
        ("FBLOOP_SCORE_ANCHORS", '{"clip": [1]}', "(at clip.1)"),  # dict of tuples
        ("FBLOOP_OUTPUT_DIR", "", "working directory"),  # Path("") would be the working directory
    ],
)
def test_a_bad_environment_setting_is_one_line_naming_it(cli, tmp_path: Path, name: str, value: str, says: str) -> None:
    for command in (["run", EXAMPLE, "--dry-run"], ["resume", tmp_path / "nothing-here"], ["inspect"]):
        result = cli(*command, env={name: value})
        assert result.exit_code == 2, (command, result.exit_code, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"fbloop: error: {name}: "), lines[0]
        assert "from the environment" in lines[0] or "set in the environment" in lines[0], lines[0]
        assert says in lines[0], lines[0]
        assert "Traceback" not in result.stderr and "pydantic" not in result.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "FBLOOP_MAX_COST=lots",
            "FBLOOP_MAX_COST: Input should be a valid number, unable to parse string as a number; got 'lots' from .env",
        ),
        (
            "FBLOOP_IMAGE_WEIGHTS=clip",
            'FBLOOP_IMAGE_WEIGHTS: not valid JSON (image_weights is read as JSON, e.g. {"name": 1.0}); from .env',
        ),
    ],
)
def test_a_bad_setting_in_dot_env_names_the_file(cli, line: str, message: str) -> None:
    Path(".env").write_text(line + "\n")  # the working directory is a fresh temp folder
    result = cli("run", EXAMPLE, "--dry-run")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"fbloop: error: {message}"


@pytest.mark.timeout(120)  # it used to block for ever
def test_a_fifo_dot_env_is_refused_not_waited_on(cli) -> None:
    os.mkfifo(".env")  # the working directory is a fresh temp folder
    result = cli("run", EXAMPLE, "--dry-run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"fbloop: error: {Path('.env').absolute()} is not a regular file; settings are read from a .env file"
    )


def test_a_dot_env_directory_is_left_alone(cli) -> None:
    Path(".env").mkdir()  # a virtualenv is often called .env
    result = cli("run", EXAMPLE, "--dry-run")
    assert result.exit_code == 0, result.stderr


def test_good_environment_settings_still_work(cli, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--dry-run", env={"FBLOOP_MAX_COST": "2.5", "FBLOOP_REPLICATE_CONCURRENCY": "3"})
    assert result.exit_code == 0, result.stderr
    assert os.environ.get("FBLOOP_MAX_COST") is None


@pytest.mark.timeout(120)  # it used to block for ever
def test_a_fifo_price_file_is_refused_not_waited_on(cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "prices.json")
    env = {"FBLOOP_PRICE_FILE": str(tmp_path / "prices.json"), "OPENAI_API_KEY": "k", "REPLICATE_API_TOKEN": "t"}
    result = cli("run", EXAMPLE, "--dry-run", "--backend", "cloud", env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"fbloop: error: price file {tmp_path / 'prices.json'} is a FIFO (named pipe), not a regular file"
    )
