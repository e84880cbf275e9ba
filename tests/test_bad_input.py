"""Bad input: one clear line on stderr naming the problem, exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import EXAMPLE


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (a decompression bomb never gets decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )
    return path


def good_image(path: Path) -> Path:
    Image.new("RGB", (32, 32), (10, 200, 30)).save(path)
    return path


def make(tmp: Path, case: str) -> list[str]:
    """Build the files a case needs and return its arguments."""
    out = ["--output-dir", str(tmp / "out")]
    f = tmp / "in"
    f.mkdir(exist_ok=True)
    text = f / "prompt.txt"
    text.write_text("a red fox\n")
    cases: dict[str, list[str]] = {}
    if case == "missing-prompt":
        return ["run", str(f / "nope.txt"), *out]
    if case == "empty-prompt":
        (f / "empty.txt").write_text("")
        return ["run", str(f / "empty.txt"), *out]
    if case == "whitespace-prompt":
        (f / "ws.txt").write_text(" \n\t \n")
        return ["run", str(f / "ws.txt"), *out]
    if case == "binary-prompt":
        (f / "bin.txt").write_bytes(b"abc\x00\x01\x02")
        return ["run", str(f / "bin.txt"), *out]
    if case == "non-utf8-prompt":
        (f / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
        return ["run", str(f / "latin.txt"), *out]
    if case == "huge-prompt":
        (f / "huge.txt").write_text("fox " * 100_000)
        return ["run", str(f / "huge.txt"), *out]
    if case == "prompt-is-directory":
        return ["run", str(f), *out]
    if case == "image-prompt-is-text":
        (f / "fake.png").write_text("not really a png")
        return ["run", str(f / "fake.png"), *out]
    if case == "truncated-png":
        data = good_image(f / "ok.png").read_bytes()
        (f / "cut.png").write_bytes(data[: len(data) // 2])
        return ["run", "--workflow", "video-only", "--input-image", str(f / "cut.png"), *out]
    if case == "zero-byte-image":
        (f / "zero.png").write_bytes(b"")
        return ["run", "--workflow", "video-only", "--input-image", str(f / "zero.png"), *out]
    if case == "bomb-image-without-extension":
        png_header_only(f / "bomb", 40000, 40000)
        return ["run", str(f / "bomb"), *out]
    if case == "bomb-image":
        png_header_only(f / "bomb.png", 40000, 40000)
        return ["run", "--workflow", "video-only", "--input-image", str(f / "bomb.png"), *out]
    if case == "text-as-input-image":
        return ["run", "--workflow", "video-only", "--input-image", str(text), *out]
    if case == "missing-input-image":
        return ["run", "--workflow", "video-only", "--input-image", str(f / "nope.png"), *out]
    if case == "video-only-without-image":
        return ["run", str(text), "--workflow", "video-only", *out]
    if case == "input-image-with-image-only":
        return ["run", str(text), "--workflow", "image-only", "--input-image", str(good_image(f / "a.png")), *out]
    if case == "unknown-workflow":
        return ["run", str(text), "--workflow", "everything", *out]
    if case == "negative-variations":
        return ["run", str(text), "--num-image-variations", "-1", *out]
    if case == "zero-attempts":
        return ["run", str(text), "--num-video-attempts", "0", *out]
    if case == "zero-iterations":
        return ["run", str(text), "--max-iterations-image", "0", *out]
    if case == "threshold-above-100":
        return ["run", str(text), "--threshold-image", "150", *out]
    if case == "threshold-below-0":
        return ["run", str(text), "--threshold-video", "-1", *out]
    if case == "threshold-not-a-number":
        return ["run", str(text), "--threshold-video", "high", *out]
    if case == "zero-clips":
        return ["run", str(text), "--storyboard", "--clips", "0", *out]
    if case == "unknown-scorer":
        return ["run", str(text), "--scorers", "sharpness,bogus", *out]
    if case == "cloud-without-keys":
        return ["run", str(text), "--backend", "cloud", *out]
    if case == "resume-with-workflow":
        return ["run", "--resume", str(f), "--workflow", "full", *out]
    if case == "resume-missing":
        return ["resume", str(f / "no-such-run")]
    if case == "resume-folder-without-checkpoint":
        return ["resume", str(f)]
    if case == "output-dir-is-a-file":
        return ["run", str(text), "--output-dir", str(text)]
    if case == "output-dir-under-a-file":
        return ["run", str(text), "--output-dir", str(text / "runs")]
    if case == "interactive-without-terminal":
        return ["run", str(text), "--interactive", *out]
    if case == "unknown-flag":
        return ["run", str(text), "--colour", "blue", *out]
    if case == "unknown-stage":
        return ["stage", "upscale", "--prompt-file", str(text)]
    if case == "stage-without-prompt":
        return ["stage", "image-generation", "--output-dir", str(tmp / "out")]
    if case == "stage-bad-storyboard-json":
        (f / "sb.json").write_text("{not json")
        return ["stage", "video-prompt", "--storyboard", str(f / "sb.json"), "--output-dir", str(tmp / "out")]
    if case == "stage-zero-count":
        return ["stage", "image-generation", "--prompt-file", str(text), "-n", "0", "--output-dir", str(tmp / "out")]
    if case == "stage-zero-iterations":
        return ["stage", "image-prompt", "--prompt-file", str(text), "--max-iterations", "0"]
    if case == "inspect-missing-run":
        return ["inspect", str(f / "no-such-run")]
    # --- files that are not regular files: refused at once, never waited on ---
    if case in FIFO_CASES:
        fifo = f / "pipe"
        os.mkfifo(fifo)
        (f / "pipe.txt").symlink_to(fifo)
        (f / "pipe.png").symlink_to(fifo)
        (f / "pipe.json").symlink_to(fifo)
        return {
            "fifo-prompt": ["run", str(fifo), *out],
            "fifo-prompt-via-symlink": ["run", str(f / "pipe.txt"), *out],
            "fifo-image-prompt-via-symlink": ["run", str(f / "pipe.png"), *out],
            "fifo-input-image": ["run", "--workflow", "video-only", "--input-image", str(fifo), *out],
            "stage-fifo-prompt": ["stage", "image-prompt", "-p", str(fifo), *out],
            "stage-fifo-prompt-via-symlink": ["stage", "image-generation", "-p", str(f / "pipe.txt"), *out],
            "stage-fifo-image": ["stage", "storyboard", "--image", str(f / "pipe.png"), *out],
            "stage-fifo-motion-prompts": ["stage", "video-generation", "--motion-prompts", str(f / "pipe.json"), *out],
            "resume-fifo-checkpoint": ["resume", str(_fifo_checkpoint(f))],
        }[case]
    # --- prompts with nothing visible in them ---
    if case in INVISIBLE_PROMPTS:
        (f / "invisible.txt").write_text(INVISIBLE_PROMPTS[case], encoding="utf-8")
        return ["run", str(f / "invisible.txt"), *out]
    if case == "stage-invisible-prompt":
        (f / "invisible.txt").write_text("\u200b\x1b[2J\u200d\n", encoding="utf-8")
        return ["stage", "image-generation", "-p", str(f / "invisible.txt"), *out]
    # --- stage inputs: every clip and frame checked before the run folder exists ---
    if case.startswith("stage-clips-"):
        return ["stage", "video-generation", "--motion-prompts", str(_motion_prompts(f, case)), *out]
    if case == "stage-storyboard-missing-frame":
        return ["stage", "video-prompt", "--storyboard", str(_motion_prompts(f, "stage-clips-missing-frame")), *out]
    if case == "stage-deeply-nested-json":
        (f / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
        return ["stage", "video-prompt", "--storyboard", str(f / "deep.json"), *out]
    # --- an empty --output-dir is the working directory: refused ---
    if case == "run-empty-output-dir":
        return ["run", str(text), "--output-dir", ""]
    if case == "run-empty-output-dir-equals":
        return ["run", str(text), "--output-dir="]
    if case == "stage-empty-output-dir":
        return ["stage", "image-prompt", "-p", str(text), "--output-dir", ""]
    if case == "score-invisible-prompt":
        return ["score", str(good_image(f / "s.png")), "--prompt", "\u200b\x1b\u200d \x07"]
    if case == "inspect-empty-html":
        return ["inspect", str(f), "--html", ""]
    raise KeyError(case, cases)


FIFO_CASES = (
    "fifo-prompt",
    "fifo-prompt-via-symlink",
    "fifo-image-prompt-via-symlink",
    "fifo-input-image",
    "stage-fifo-prompt",
    "stage-fifo-prompt-via-symlink",
    "stage-fifo-image",
    "stage-fifo-motion-prompts",
    "resume-fifo-checkpoint",
)

INVISIBLE_PROMPTS = {
    "control-only-prompt": "\x07\x08\x1b\x7f\r\n",
    "escape-sequences-only-prompt": "\x1b[2J\x1b[H\x1b]0;pwned\x07\n",
    "zero-width-only-prompt": "\u200b\u200c\u200d\u2060\ufeff\ufeff",
    "bidi-only-prompt": "\u202e\u2066\u2069\u200f \n",
    "c1-only-prompt": "\u009b2J\u0085\u009d0;x\u009c",
}


def _fifo_checkpoint(folder: Path) -> Path:
    run = folder / "run"
    run.mkdir()
    os.mkfifo(run / "workflow_checkpoint.json")
    return run


def _motion_prompts(folder: Path, case: str) -> Path:
    """A motion-prompts file of two clips whose second clip has the problem `case` names."""
    frames = [good_image(folder / f"frame_{n}.png") for n in range(4)]
    clips = [
        {"clip": 1, "start_frame": frames[0].name, "end_frame": frames[1].name, "motion_prompt": "pan left"},
        {"clip": 2, "start_frame": frames[2].name, "end_frame": frames[3].name, "motion_prompt": "zoom in"},
    ]
    if case == "stage-clips-missing-frame":
        clips[1]["end_frame"] = "gone.png"
    elif case == "stage-clips-frame-not-an-image":
        (folder / "notes.png").write_text("not an image")
        clips[1]["start_frame"] = "notes.png"
    elif case == "stage-clips-missing-motion-prompt":
        del clips[1]["motion_prompt"]
    elif case == "stage-clips-duplicate-number":
        clips[1]["clip"] = 1
    elif case == "stage-clips-no-number":
        del clips[1]["clip"]
    path = folder / "motion_prompts.json"
    path.write_text(json.dumps({"prompt": "a red fox", "clips": clips}))
    return path


CASES = {
    "missing-prompt": "does not exist",
    "empty-prompt": "is empty",
    "whitespace-prompt": "has only whitespace",
    "binary-prompt": "is binary, not text",
    "non-utf8-prompt": "is not UTF-8 text",
    "huge-prompt": "a prompt must be under",
    "prompt-is-directory": "is a directory",
    "image-prompt-is-text": "not a usable image",
    "truncated-png": "not a usable image",
    "zero-byte-image": "is empty (0 bytes)",
    "bomb-image": "pixel limit",
    "bomb-image-without-extension": "its header claims more pixels than is safe",
    "text-as-input-image": "not a usable image",
    "missing-input-image": "does not exist",
    "video-only-without-image": "needs --input-image",
    "input-image-with-image-only": "only used by --workflow video-only",
    "unknown-workflow": "'everything' is not one of",
    "negative-variations": "--num-image-variations must be between 1 and 64, got -1",
    "zero-attempts": "--num-video-attempts must be between 1 and 16, got 0",
    "zero-iterations": "--max-iterations-image must be between 1 and 50, got 0",
    "threshold-above-100": "--threshold-image must be between 0 and 100, got 150.0",
    "threshold-below-0": "--threshold-video must be between 0 and 100, got -1.0",
    "threshold-not-a-number": "Invalid value for '--threshold-video'",
    "zero-clips": "--clips must be between 1 and 12, got 0",
    "unknown-scorer": "unknown scorer 'bogus'",
    "cloud-without-keys": "--backend cloud needs OPENAI_API_KEY and REPLICATE_API_TOKEN",
    "resume-with-workflow": "--resume and --workflow cannot be used together",
    "resume-missing": "does not exist",
    "resume-folder-without-checkpoint": "has no workflow_checkpoint.json",
    "output-dir-is-a-file": "is not a directory",
    "output-dir-under-a-file": "cannot create output dir",
    "interactive-without-terminal": "--interactive needs a terminal",
    "unknown-flag": "No such option: --colour",
    "unknown-stage": "'upscale' is not one of",
    "stage-without-prompt": "needs --prompt-file",
    "stage-bad-storyboard-json": "is not valid JSON",
    "stage-zero-count": "--num must be between 1 and 64, got 0",
    "stage-zero-iterations": "--max-iterations must be between 1 and 50, got 0",
    "inspect-missing-run": "does not exist",
    **{case: "is a FIFO (named pipe), not a regular file" for case in FIFO_CASES},
    **{case: "has only whitespace, control or zero-width characters" for case in INVISIBLE_PROMPTS},
    "stage-invisible-prompt": "has only whitespace, control or zero-width characters",
    "stage-clips-missing-frame": "clip 2 end frame",
    "stage-clips-frame-not-an-image": "clip 2 start frame",
    "stage-clips-missing-motion-prompt": "clip 2 has no motion_prompt",
    "stage-clips-duplicate-number": "clip 1 appears twice",
    "stage-clips-no-number": "every clip needs a 'clip' number",
    "stage-storyboard-missing-frame": "clip 2 end frame",
    "stage-deeply-nested-json": "is not valid: JSON nested too deeply",
    "run-empty-output-dir": "an empty path would write into the working directory",
    "run-empty-output-dir-equals": "an empty path would write into the working directory",
    "stage-empty-output-dir": "an empty path would write into the working directory",
    "score-invisible-prompt": "--prompt is empty",
    "inspect-empty-html": "an empty path would write into the working directory",
}


@pytest.mark.timeout(120)  # the FIFO cases used to block for ever: a hang is a failure, not a wait
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_clear_line(cli, tmp_path: Path, case: str) -> None:
    args = make(tmp_path, case)
    inputs_before = {p: p.read_bytes() for p in (tmp_path / "in").rglob("*") if p.is_file()}
    cwd_before = sorted(Path.cwd().iterdir())
    result = cli(*args)
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fbloop: error: ")
    assert CASES[case] in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists(), "nothing is written for bad input"
    assert sorted(Path.cwd().iterdir()) == cwd_before, "nor into the working directory"
    assert {p: p.read_bytes() for p in (tmp_path / "in").rglob("*") if p.is_file()} == inputs_before


def test_good_input_still_runs(cli, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--workflow", "prompt-only", "--output-dir", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
