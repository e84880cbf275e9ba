"""Human review (`--interactive`) driven in a real pseudo-terminal with pexpect: each choice (continue, pick
another, regenerate images / videos with feedback, stop and resume at the review, Ctrl-C), plus the refusal
without a terminal and in CI. A few fast tests drive the same flow with a scripted prompter."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pexpect
import pytest

from feedback_cli.ui.review import Option, QuestionaryReviewer
from feedback_cli.workflow.review import Candidate, ReviewRequest
from tests.conftest import EXAMPLE, only_run, read_json
from tests.test_picks import assert_one_pick_per_group

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\a\x1b]*(?:\a|\x1b\\)|\r")
CONTINUE = "Continue to next stage? (y/n)"
REGEN_IMAGES = "Regenerate images with feedback? (y/n)"
REGEN_VIDEOS = "Regenerate videos with feedback? (y/n)"
REGEN_FRAMES = "Regenerate frames with feedback? (y/n)"
WHAT_NOW = "What now?"
FEEDBACK_QUESTION = "What should change in the"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(
        FBLOOP_OFFLINE_VIDEO_SECONDS="0.5",
        PROMPT_TOOLKIT_NO_CPR="1",  # no cursor-position round trips in the pty
        TERM="xterm-256color",
        COLUMNS="200",
        LINES="60",
    )
    return env


class Session:
    """One `fbloop` process in a pseudo-terminal, with the transcript kept (escape codes removed)."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 90) -> None:
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "feedback_cli", *args],
            env=env or child_env(),
            encoding="utf-8",
            timeout=timeout,
            dimensions=(60, 200),
        )
        self.raw: list[str] = []

    def expect(self, text: str) -> None:
        try:
            self.child.expect_exact(text)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            raise AssertionError(f"did not see {text!r}; transcript:\n{self.transcript()}") from exc
        self.raw.append((self.child.before or "") + (self.child.after or ""))

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def answer(self, question: str, keys: str) -> None:
        self.expect(question)
        self.send(keys)

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.raw.append(self.child.before or "")
        self.child.before = ""  # now in raw: transcript() must not count it twice
        self.child.close()
        assert self.child.exitstatus is not None, self.transcript()
        return self.child.exitstatus

    def transcript(self) -> str:
        before = self.child.before if isinstance(self.child.before, str) else ""
        return ANSI.sub("", "".join(self.raw) + before)


def run_args(out: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(EXAMPLE),
        "--interactive",
        "--num-image-variations",
        "3",
        "--num-video-attempts",
        "2",
        "--seed",
        "1",
        "--output-dir",
        str(out),
        *extra,
    ]


def state_of(run: Path) -> dict[str, Any]:
    return read_json(run / "workflow_checkpoint.json")["state"]


def stage(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in state["stages"] if s["name"] == name)


def test_continue_at_every_review(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    s = Session(run_args(out))
    s.expect("Review: Image generation")
    s.expect("image_01")  # the ranked table with the candidates
    s.answer(CONTINUE, "y")
    s.expect("Review: Video generation")
    s.answer(CONTINUE, "y")
    assert s.finish() == 0, s.transcript()
    text = s.transcript()
    for column in ("Candidate", "Overall", "Cost", "Latency", "sharpness", "flicker", "File"):
        assert column in text
    run = only_run(out)
    state = state_of(run)
    assert state["status"] == "completed"
    assert [(r["stage"], r["action"]) for r in state["reviews"]] == [
        ("image_generation", "continue"),
        ("video_generation", "continue"),
    ]
    assert all(r["at"] for r in state["reviews"])
    assert not any(s["awaiting_review"] for s in state["stages"])


def test_pick_another_image(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    s = Session(run_args(out))
    s.answer(CONTINUE, "n")
    s.answer(REGEN_IMAGES, "n")
    s.expect(WHAT_NOW)
    s.send("p")  # "p) Pick another image": the key answers at once
    s.expect("Which image?")
    s.send("\r")  # the best of the others
    s.expect("review: pick ")
    s.child.expect(r"image_\d\d")
    picked = s.child.after
    s.answer(CONTINUE, "y")  # the video review
    assert s.finish() == 0, s.transcript()
    run = only_run(out)
    state = state_of(run)
    images = stage(state, "image_generation")
    overall = {i["key"]: i["overall"] for i in images["items"]}
    automatic = max(overall, key=lambda k: overall[k])
    assert picked != automatic
    assert images["outputs"]["best_key"] == picked
    summary = read_json(run / "workflow_summary.json")
    assert summary["best_image"] == f"stage_2_image_generation/{picked}.png"
    assert state["reviews"][0]["action"] == "pick" and state["reviews"][0]["choice"] == picked
    assert f"human pick: {picked}" in images["notes"]
    # the stage's scores now describe the pick
    assert images["scores"]["best_overall"] == overall[picked]
    # the video started from the picked image
    videos = stage(state, "video_generation")
    assert all(i["request"]["start_image"] == f"{picked}.png" for i in videos["items"])


def test_regenerate_images_with_feedback(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    feedback = "make the light warmer and add a snowy owl"
    s = Session(run_args(out))
    s.answer(CONTINUE, "n")
    s.answer(REGEN_IMAGES, "y")
    s.expect(FEEDBACK_QUESTION)
    s.send("\r")  # empty feedback is refused: the question stays
    s.expect("Please write what should change")
    s.send(feedback + "\r")
    s.expect("Review: Image generation")  # the new round is reviewed in turn
    s.expect("(round 2)")
    s.answer(CONTINUE, "y")
    s.answer(CONTINUE, "y")  # videos
    assert s.finish() == 0, s.transcript()
    run = only_run(out)
    state = state_of(run)
    images = stage(state, "image_generation")
    rounds = sorted({i["extra"]["round"] for i in images["items"]})
    assert rounds == [1, 2]
    assert len(images["items"]) == 6
    assert all((run / i["artifact"]["path"]).is_file() for i in images["items"])
    # one pick, the best of both rounds, and the stage's scores are that pick's (summary and trace alike)
    assert_one_pick_per_group(run, "weighted", storyboard=False)
    # the feedback went through the rounds' revision (issue 13): the second round's prompt carries it
    second = images["outputs"]["rounds"][1]
    assert second["feedback_round"] and second["revision"]["human_feedback"] == feedback
    trace = read_json(run / "workflow_trace.json")
    regenerate = [r for r in trace["reviews"] if r["action"] == "regenerate"]
    assert regenerate and regenerate[0]["feedback"] == feedback and regenerate[0]["at"]
    assert [r["action"] for r in trace["reviews"]] == ["regenerate", "continue", "continue"]


def test_regenerate_videos_with_feedback(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    feedback = "slower camera, more falling snow"
    s = Session(run_args(out))
    s.answer(CONTINUE, "y")
    s.expect("Review: Video generation")
    s.answer(CONTINUE, "n")
    s.answer(REGEN_VIDEOS, "y")
    s.expect(FEEDBACK_QUESTION)
    s.send(feedback + "\r")
    s.expect("Review: Video generation")
    s.expect("(round 2)")
    s.answer(CONTINUE, "y")
    assert s.finish() == 0, s.transcript()
    run = only_run(out)
    state = state_of(run)
    videos = stage(state, "video_generation")
    assert len(videos["items"]) == 4
    second = [i for i in videos["items"] if i["extra"]["round"] == 2]
    assert len(second) == 2 and all(feedback in i["extra"]["prompt"] for i in second)
    assert_one_pick_per_group(run, "weighted", storyboard=False)
    assert [(r["stage"], r["action"], r["feedback"]) for r in state["reviews"]][1] == (
        "video_generation",
        "regenerate",
        feedback,
    )


def test_storyboard_regenerate_videos_keeps_one_pick_per_clip(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    feedback = "slower camera"
    s = Session(run_args(out, "--storyboard", "--clips", "2", "--seed", "2"))
    s.answer(CONTINUE, "y")  # images
    s.expect("Review: Storyboard")
    s.answer(CONTINUE, "y")
    s.expect("Review: Video generation")
    s.answer(CONTINUE, "n")
    s.answer(REGEN_VIDEOS, "y")
    s.expect(FEEDBACK_QUESTION)
    s.send(feedback + "\r")
    s.expect("Review: Video generation")
    s.expect("(round 2)")
    s.answer(CONTINUE, "y")
    assert s.finish() == 0, s.transcript()
    run = only_run(out)
    trace = read_json(run / "workflow_trace.json")
    videos = stage(trace, "video_generation")
    assert len(videos["items"]) == 8 and {i["extra"]["round"] for i in videos["items"]} == {1, 2}
    summary = read_json(run / "workflow_summary.json")
    assert len(summary["best_videos"]) == 2
    assert [p.split("/")[-1][:7] for p in summary["best_videos"]] == ["clip_01", "clip_02"]
    assert_one_pick_per_group(run, "weighted", storyboard=True)
    # the second review listed both rounds (a Round column) and marked exactly one pick per clip
    second_review = s.transcript().rsplit("(round 2)", 1)[-1].split(CONTINUE, 1)[0]
    assert "Round" in second_review
    marked = [line for line in second_review.splitlines() if re.search(r"│\s*\*\s*│", line)]
    assert len(marked) == 2, second_review


def test_stop_at_review_then_resume_at_that_review(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    s = Session(run_args(out))
    s.answer(CONTINUE, "n")
    s.answer(REGEN_IMAGES, "n")
    s.expect(WHAT_NOW)
    s.send("s")  # "s) Stop here"
    assert s.finish() == 0, s.transcript()
    run = only_run(out)
    flat = s.transcript().replace("\n", "")
    assert f"stopped at the review of image_generation. Resume with: fbloop resume {run}" in flat
    assert "interrupted" not in flat and "error" not in flat
    state = state_of(run)
    assert state["status"] == "stopped"
    assert stage(state, "image_generation")["awaiting_review"] is True
    assert stage(state, "video_prompt")["status"] == "pending"
    assert [r["action"] for r in state["reviews"]] == ["stop"]

    r = Session(["resume", str(run)])
    r.expect("Review: Image generation")  # straight back to the same review, nothing re-run
    before_review = r.transcript()
    assert "Stage 2" not in before_review and "Stage 4" not in before_review
    r.answer(CONTINUE, "y")
    r.expect("Stage 4: Video prompt")
    r.expect("Review: Video generation")
    r.answer(CONTINUE, "y")
    assert r.finish() == 0, r.transcript()
    state = state_of(run)
    assert state["status"] == "completed"
    assert len(stage(state, "image_generation")["items"]) == 3
    assert [r["action"] for r in state["reviews"]] == ["stop", "continue", "continue"]


def test_ctrl_c_at_a_prompt_exits_130_and_resumes_at_that_review(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    s = Session(run_args(out))
    s.answer(CONTINUE, "n")  # Ctrl-C at the second question, as at the first: an interrupt
    s.expect(REGEN_IMAGES)
    s.send("\x03")
    assert s.finish() == 130, s.transcript()
    run = only_run(out)
    text = s.transcript()
    assert "stopped at the review" not in text
    flat = text.replace("\n", "")
    assert f"fbloop: error: interrupted; checkpoint saved. Resume with: fbloop resume {run}" in flat
    assert text.count("interrupted; checkpoint saved") == 1, text
    state = state_of(run)
    assert state["status"] == "interrupted" and state["reviews"] == []
    assert stage(state, "image_generation")["awaiting_review"] is True

    r = Session(["resume", str(run)])
    r.expect("Review: Image generation")  # back at the same review, nothing re-run
    assert "Stage 2" not in r.transcript()
    r.answer(CONTINUE, "\x03")  # Ctrl-C at the first question
    assert r.finish() == 130, r.transcript()


def test_ctrl_c_while_the_review_is_being_shown_exits_130(tmp_path: Path) -> None:
    """Ctrl-C typed as the review appears, before its question reads the keyboard, reaches the engine as
    SIGINT: the question that then comes up is ended too, instead of waiting for an answer."""
    out = tmp_path / "runs"
    s = Session(run_args(out), timeout=60)
    s.expect("Review: Image generation")
    s.send("\x03")
    assert s.finish() == 130, s.transcript()
    text = s.transcript()
    assert text.count("interrupted; checkpoint saved") == 1, text
    state = state_of(only_run(out))
    assert state["status"] == "interrupted" and state["reviews"] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_at_a_review_question_saves_and_resumes_at_that_review(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "runs"
    s = Session(run_args(out))
    s.expect(CONTINUE)
    s.child.kill(signum)  # the question waits on another thread: the stop must not wait for its answer
    assert s.finish() == 128 + signum, s.transcript()
    run = only_run(out)
    text = ANSI.sub("", "".join(s.raw)).replace("\n", "")  # transcript() repeats the last chunk after finish()
    assert text.count(f"Resume with: fbloop resume {run}") == 1, text
    state = state_of(run)
    assert state["status"] == "interrupted"
    assert stage(state, "image_generation")["awaiting_review"] is True
    r = Session(["resume", str(run)])
    r.expect("Review: Image generation")
    r.answer(CONTINUE, "y")
    r.expect("Review: Video generation")
    r.answer(CONTINUE, "y")
    assert r.finish() == 0, r.transcript()
    assert state_of(run)["status"] == "completed"


def test_storyboard_frames_regenerate_with_feedback_and_no_pick(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    feedback = "make the last frame darker"
    s = Session(run_args(out, "--storyboard", "--clips", "1"))
    s.answer(CONTINUE, "y")  # images
    s.expect("Review: Storyboard")
    s.answer(CONTINUE, "n")
    s.answer(REGEN_FRAMES, "n")
    s.expect(WHAT_NOW)
    s.expect("Back to the first question")
    menu = s.transcript().rsplit(REGEN_FRAMES, 1)[-1]
    assert "Pick another" not in menu  # frames chain into each other: there is nothing to pick between
    s.send("b")
    s.answer(CONTINUE, "n")  # asked again after "back"
    s.answer(REGEN_FRAMES, "y")
    s.expect(FEEDBACK_QUESTION)
    s.send(feedback + "\r")
    s.expect("Review: Storyboard")
    s.answer(CONTINUE, "y")
    s.expect("Review: Video generation")
    s.answer(CONTINUE, "y")
    assert s.finish() == 0, s.transcript()
    run = only_run(out)
    state = state_of(run)
    frames = stage(state, "storyboard")
    assert [i["key"] for i in frames["items"]] == ["keyframe_01", "keyframe_01_r2"]
    assert feedback in frames["items"][1]["request"]["prompt"]
    first_round = run / "stage_3_storyboard" / "clip_01_end.png"
    second_round = run / "stage_3_storyboard" / "clip_01_end_r2.png"
    assert first_round.is_file() and second_round.is_file(), "the first round's frames are kept"
    clip = stage(state, "video_prompt")["outputs"]["clip_prompts"][0]
    assert clip["end_frame"] == "stage_3_storyboard/clip_01_end_r2.png", "videos use the new frames"
    assert [(r["stage"], r["action"]) for r in state["reviews"]] == [
        ("image_generation", "continue"),
        ("storyboard", "regenerate"),
        ("storyboard", "continue"),
        ("video_generation", "continue"),
    ]


# --- refusals -----------------------------------------------------------------------------------


def test_interactive_without_a_terminal_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--interactive", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--interactive needs a terminal" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_interactive_in_ci_is_refused_with_a_terminal(cli: Any, tmp_path: Path) -> None:
    result = cli("run", EXAMPLE, "--interactive", "--output-dir", tmp_path / "runs", env={"CI": "true"})
    assert result.exit_code == 2
    assert "--interactive needs a terminal" in result.stderr
    # the same in a real terminal: CI alone is enough to refuse
    s = Session(run_args(tmp_path / "pty"), env={**child_env(), "CI": "true"})
    assert s.finish() == 2
    assert "refused in CI" in s.transcript()
    assert not (tmp_path / "pty").exists()


# --- the flow with a scripted prompter (fast, no terminal) ------------------------------------------


class Script:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []
        self.menus: list[list[str]] = []

    def _next(self, message: str) -> Any:
        self.asked.append(message)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def confirm(self, message: str, default: bool = True) -> bool:
        return bool(self._next(message))

    def text(self, message: str) -> str:
        return str(self._next(message))

    def select(self, message: str, options: Sequence[Option], default: str | None = None) -> str:
        self.menus.append([o.value for o in options])
        return str(self._next(message))


def request(kind: str = "images", can_pick: bool = True, can_regenerate: bool = True) -> ReviewRequest:
    candidates = [
        Candidate(key=f"image_0{i}", path=f"s/image_0{i}.png", absolute_path=None, status="succeeded", overall=o)
        for i, o in ((2, 80.0), (1, 70.0), (3, 60.0))
    ]
    return ReviewRequest(
        stage="image_generation", title="Image generation", kind=kind, candidates=candidates,
        picks={"": "image_02"}, can_pick=can_pick, can_regenerate=can_regenerate,
    )  # fmt: skip


def reviewer(script: Script) -> QuestionaryReviewer:
    from io import StringIO

    from rich.console import Console

    return QuestionaryReviewer(console=Console(file=StringIO(), width=200), prompter=script, inline_images=False)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((True,), ("continue", None, None)),
        ((False, True, "warmer"), ("regenerate", None, "warmer")),
        ((False, False, "pick", "image_01"), ("pick", "image_01", None)),
        ((False, False, "pick", "back", "stop"), ("stop", None, None)),
        ((False, False, "back", True), ("continue", None, None)),
        ((False, False, "stop"), ("stop", None, None)),
    ],
    ids=["continue", "regenerate", "pick", "pick-back-stop", "back-continue", "stop"],
)
def test_flow_reaches_every_decision(answers: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    script = Script(*answers)
    decision = reviewer(script).review(request())
    assert (decision.action, decision.choice, decision.feedback) == expected
    assert script.asked[0] == CONTINUE
    assert not script.answers


@pytest.mark.parametrize("answers", [(KeyboardInterrupt(),), (False, KeyboardInterrupt()), (False, False, EOFError())])
def test_ctrl_c_or_ctrl_d_at_any_question_is_an_interrupt_not_a_stop(answers: tuple[Any, ...]) -> None:
    from feedback_cli.errors import Interrupted
    from feedback_cli.ui.review import StopReview

    script = Script(*[StopReview() if isinstance(a, BaseException) else a for a in answers])
    with pytest.raises(Interrupted, match="interrupted at the review of image_generation"):
        reviewer(script).review(request())


def test_pick_list_excludes_the_current_pick_and_frames_cannot_pick() -> None:
    script = Script(False, False, "pick", "image_01")
    reviewer(script).review(request())
    assert script.menus[1] == ["image_01", "image_03", "back"]
    frames = Script(False, False, "stop")
    reviewer(frames).review(request(kind="frames", can_pick=False))
    assert frames.asked[1] == REGEN_FRAMES
    assert frames.menus[0] == ["stop", "back"]
    fixed = Script(False, "stop")  # a stage that cannot regenerate skips that question
    reviewer(fixed).review(request(kind="frames", can_pick=False, can_regenerate=False))
    assert fixed.asked == [CONTINUE, WHAT_NOW]


def test_inline_thumbnails_for_terminals_that_show_images(tmp_path: Path) -> None:
    import base64
    import io

    from PIL import Image

    from feedback_cli.ui.review import inline_thumbnail

    picture = tmp_path / "big.png"
    Image.new("RGB", (800, 400), (200, 40, 40)).save(picture)
    iterm = inline_thumbnail(str(picture), "iterm")
    assert iterm is not None and iterm.startswith("\x1b]1337;File=inline=1;")
    payload = iterm.split(":", 1)[1].split("\a", 1)[0]
    with Image.open(io.BytesIO(base64.b64decode(payload))) as thumb:
        assert max(thumb.size) <= 240
    kitty = inline_thumbnail(str(picture), "kitty")
    assert kitty is not None and kitty.startswith("\x1b_Ga=T,f=100,")
    assert inline_thumbnail(str(tmp_path / "missing.png"), "iterm") is None
