"""The human review between stages (`--interactive`): a Rich table of the ranked candidates, then Questionary.

The flow keeps the original spec's three questions:

1. "Continue to next stage? (y/n)" -- yes: continue with the current pick.
2. no: "Regenerate images with feedback? (y/n)" (videos / frames alike) -- yes: the feedback text (not
   empty), then the stage runs again from it.
3. no: a menu: pick another candidate (then a list of candidates), stop here (resumable), or go back.

Ctrl-C (or Ctrl-D) at any prompt interrupts the run as Ctrl-C during a stage does (exit 130); the checkpoint
keeps it, and `fbloop resume` comes back to the same review. "Stop here" in the menu stops it (exit 0).
This runs on a worker thread (the engine waits for it), so it never touches the event loop.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.style import Style
from rich.table import Table
from rich.text import Text

from feedback_cli.errors import Interrupted
from feedback_cli.runstate.models import ReviewDecision
from feedback_cli.ui.console import SafeConsole, heading, print_line, print_table
from feedback_cli.workflow.review import Candidate, ReviewRequest

PICK_MARK = "*"
NOUNS = {"images": ("image", "images"), "videos": ("video", "videos"), "frames": ("frame", "frames")}


class StopReview(Exception):
    """Ctrl-C / Ctrl-D at a prompt: the person wants out."""


@dataclass(frozen=True)
class Option:
    """One entry of a menu: what is shown, the value returned, and the key that jumps to it."""

    title: str
    value: str
    shortcut: str | None = None


class Prompter(Protocol):
    """The questions the review asks; Questionary in a terminal, a script in unit tests."""

    def confirm(self, message: str, default: bool = True) -> bool: ...

    def text(self, message: str) -> str: ...

    def select(self, message: str, options: Sequence[Option], default: str | None = None) -> str: ...


def _terminal_stream() -> TextIO:
    """Where the review talks: the terminal, even when stdout is redirected to a file."""
    for stream in (sys.stderr, sys.stdout):
        try:
            if stream.isatty():
                return stream
        except (AttributeError, ValueError):
            continue
    return sys.stderr


def _quit(app: Any) -> None:
    """End a running prompt_toolkit question as if Ctrl-C was pressed (in the question's own loop)."""
    if app.is_running and app.future is not None and not app.future.done():
        app.exit(exception=KeyboardInterrupt())


class QuestionaryPrompter:
    """Questionary prompts on the terminal stream; Ctrl-C and Ctrl-D raise StopReview."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or _terminal_stream()
        self._cancelled = threading.Event()
        self._app: Any = None  # the question on screen

    def cancel(self) -> None:
        """From another thread (Ctrl-C reached the engine first): end the question on screen, and any
        later one, as Ctrl-C at the prompt would; otherwise the process would wait for an answer."""
        self._cancelled.set()
        app = self._app
        if app is not None and app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(_quit, app)

    def _output(self) -> Any:
        from prompt_toolkit.output import create_output

        return create_output(stdout=self.stream)

    def _ask(self, question: Any) -> Any:
        if self._cancelled.is_set():
            raise StopReview
        app = question.application
        self._app = app

        def cancelled_meanwhile() -> None:  # runs once the question is up: closes the gap cancel() may miss
            if self._cancelled.is_set():
                _quit(app)

        try:
            answer = app.run(pre_run=cancelled_meanwhile)  # what question.unsafe_ask() does, plus the hook
        except (KeyboardInterrupt, EOFError):
            raise StopReview from None
        finally:
            self._app = None
        if answer is None:
            raise StopReview
        return answer

    def confirm(self, message: str, default: bool = True) -> bool:
        import questionary

        # the message carries its own "(y/n)"; questionary's "(Y/n)" would repeat it
        question = questionary.confirm(message, default=default, instruction="", output=self._output())
        return bool(self._ask(question))

    def text(self, message: str) -> str:
        import questionary

        question = questionary.text(
            message,
            validate=lambda value: bool(value.strip()) or "Please write what should change (or Ctrl-C to stop).",
            output=self._output(),
        )
        return str(self._ask(question)).strip()

    def select(self, message: str, options: Sequence[Option], default: str | None = None) -> str:
        import questionary

        # an option's key is its own (the candidate's `#` in the table) or none: no made-up numbering that
        # would differ from the table's
        choices = [questionary.Choice(o.title, value=o.value, shortcut_key=o.shortcut or False) for o in options]
        question = questionary.select(
            message,
            choices=choices,
            default=default if any(o.value == default for o in options) else None,
            use_shortcuts=any(o.shortcut for o in options),
            use_arrow_keys=True,
            output=self._output(),
        )
        answer_at_once(question.application, options)
        return str(self._ask(question))


def answer_at_once(app: Any, options: Sequence[Option]) -> None:
    """A shortcut key answers the question at once, as y/n do (Questionary's own only moves the pointer)."""
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
    from questionary.prompts.common import InquirerControl

    # the list itself: marked answered, so the question's line shows the choice as after Enter
    control = next((c for c in app.layout.find_all_controls() if isinstance(c, InquirerControl)), None)
    keys = KeyBindings()
    for index, option in enumerate(options):
        if option.shortcut:

            def choose(event: Any, value: str = option.value, index: int = index) -> None:
                if control is not None:
                    control.pointed_at = index
                    control.is_answered = True
                event.app.exit(result=value)

            keys.add(option.shortcut, eager=True)(choose)
    # later bindings win over earlier ones for the same key
    app.key_bindings = merge_key_bindings([app.key_bindings, keys])


def _money(value: float) -> str:
    return f"${value:.4f}"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ranked(request: ReviewRequest) -> list[Candidate]:
    """Candidates in the order the engine ranked them (per group, best first)."""
    return list(request.candidates)


def numbers(request: ReviewRequest) -> dict[str, int]:
    """Each candidate's `#`: its place in the ranked table, the same number the picker's key uses."""
    return {candidate.key: index for index, candidate in enumerate(ranked(request), start=1)}


def file_path(candidate: Candidate) -> str | None:
    return candidate.absolute_path or candidate.path or None


def hyperlinks_wanted(console: Console) -> bool:
    """OSC 8 links on a terminal (FBLOOP_HYPERLINKS=0/1 overrides); terminals without them show the text."""
    wanted = os.environ.get("FBLOOP_HYPERLINKS", "").strip().lower()
    if wanted in ("0", "no", "false", "off"):
        return False
    if wanted in ("1", "yes", "true", "on"):
        return True
    return console.is_terminal and os.environ.get("TERM", "") not in ("dumb", "linux")


def path_text(path: str, link: bool) -> Text:
    """The whole path; with `link`, a terminal hyperlink to the file as well."""
    if not link:
        return Text(path)
    return Text(path, style=Style(link=Path(path).resolve().as_uri()))


def file_lines(request: ReviewRequest, console: Console) -> list[Text]:
    """`#n key  /the/whole/path` for each candidate: printed as lines, never as a cut table cell."""
    link = hyperlinks_wanted(console)
    number = numbers(request)
    width = max((len(c.key) for c in request.candidates), default=0)
    lines = []
    for candidate in ranked(request):
        line = Text(f"#{number[candidate.key]:<3} {candidate.key:<{width}}  ")
        path = file_path(candidate)
        if candidate.status != "succeeded":
            line.append(f"failed: {candidate.error or candidate.status}", style="red")
        elif path is None:
            line.append("-")
        else:
            line.append_text(path_text(path, link))
        lines.append(line)
    return lines


def is_pick(request: ReviewRequest, candidate: Candidate) -> bool:
    return request.picks.get(candidate.group) == candidate.key


def candidate_table(request: ReviewRequest, base: Path | None = None) -> Table:
    """#, key, every score, overall, cost and latency; the current pick marked. The files are listed under
    the table (`file_lines`), whole: a path in a cell gets cut."""
    scorers: list[str] = []
    for candidate in request.candidates:
        scorers.extend(name for name in candidate.scores if name not in scorers)
    groups = sorted({c.group for c in request.candidates})
    rule = str(request.extra.get("selection", "weighted"))
    round_no = request.extra.get("round")
    title = f"{request.title}: {len(request.candidates)} {request.kind}" + (
        f" (round {round_no})" if round_no and int(round_no) > 1 else ""
    )
    table = Table(title=title, caption=f"{PICK_MARK} = current pick; overall: {_rule_caption(rule)}")
    table.add_column("#", justify="right")
    table.add_column("Pick", justify="center")
    if len(groups) > 1:
        table.add_column("Group")
    table.add_column("Candidate")
    rounds = len({c.round for c in request.candidates}) > 1
    if rounds:
        table.add_column("Round", justify="right")
    for name in scorers:
        table.add_column(name, justify="right")
    table.add_column("Overall", justify="right")
    table.add_column("Cost", justify="right")
    table.add_column("Latency (s)", justify="right")
    number = numbers(request)
    previous_group: str | None = None
    for candidate in ranked(request):
        if previous_group is not None and candidate.group != previous_group:
            table.add_section()
        previous_group = candidate.group
        picked = is_pick(request, candidate)
        row = [str(number[candidate.key]), PICK_MARK if picked else ""]
        if len(groups) > 1:
            row.append(escape(candidate.group))
        row.append(escape(candidate.key))
        if rounds:
            row.append(str(candidate.round))
        row.extend(_number(candidate.scores.get(name)) for name in scorers)
        row.append(_number(candidate.overall, 2 if rule == "rank" else 1))
        row.append(_money(candidate.cost_usd))
        row.append(_number(candidate.latency_s, 2))
        table.add_row(*row, style="bold" if picked else None)
    return table


def _rule_caption(rule: str) -> str:
    return "mean rank, lower is better" if rule == "rank" else "weighted mean of the scores, 0-100"


def _inline_protocol() -> str | None:
    """An inline-image protocol the terminal understands, or None (FBLOOP_INLINE_IMAGES=0/1 overrides)."""
    wanted = os.environ.get("FBLOOP_INLINE_IMAGES", "").strip().lower()
    if wanted in ("0", "no", "false", "off"):
        return None
    if os.environ.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm") or wanted in ("1", "iterm"):
        return "iterm"
    if os.environ.get("KITTY_WINDOW_ID") or os.environ.get("TERM") == "xterm-kitty" or wanted == "kitty":
        return "kitty"
    return None


def _thumbnail_png(path: str, width: int = 240) -> bytes | None:
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.thumbnail((width, width))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
            return buffer.getvalue()
    except (OSError, ValueError):
        return None


def inline_thumbnail(path: str, protocol: str) -> str | None:
    """The escape sequence that shows a small copy of an image inline (iTerm2 or kitty protocol)."""
    data = _thumbnail_png(path)
    if data is None:
        return None
    encoded = base64.standard_b64encode(data).decode()
    if protocol == "iterm":
        return f"\x1b]1337;File=inline=1;size={len(data)};preserveAspectRatio=1:{encoded}\a\n"
    chunks = [encoded[i : i + 4096] for i in range(0, len(encoded), 4096)]
    parts = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        head = "a=T,f=100," if index == 0 else ""
        parts.append(f"\x1b_G{head}m={more};{chunk}\x1b\\")
    return "".join(parts) + "\n"


class QuestionaryReviewer:
    """Implements `workflow.review.Reviewer` with a Rich table and Questionary prompts."""

    def __init__(
        self,
        console: Console | None = None,
        prompter: Prompter | None = None,
        inline_images: bool | None = None,
    ) -> None:
        stream = _terminal_stream()
        self.console = console or SafeConsole(file=stream, highlight=False, no_color="NO_COLOR" in os.environ)
        self.prompter: Prompter = prompter or QuestionaryPrompter(stream)
        self.inline = _inline_protocol() if inline_images is None else ("iterm" if inline_images else None)

    def cancel(self) -> None:
        """The run was interrupted while this review is on screen: end its questions (see the engine)."""
        cancel = getattr(self.prompter, "cancel", None)
        if cancel is not None:
            cancel()

    # -- showing -------------------------------------------------------------------------------------

    def show(self, request: ReviewRequest) -> None:
        console = self.console
        console.print()
        heading(console, f"Review: {request.title}")
        if request.prompt:
            print_line(console, f"prompt: {request.prompt}")
        feedback = request.extra.get("feedback")
        if feedback:
            print_line(console, f"your last feedback: {feedback}")
        print_table(console, candidate_table(request))
        console.print("File of each candidate (open it to look):", markup=False)
        for line in file_lines(request, console):
            console.print(line, soft_wrap=True)
        if not request.can_regenerate:
            _, plural = NOUNS.get(request.kind, ("candidate", "candidates"))
            console.print(f"Regenerating the {plural} with feedback is not available at this review.", markup=False)
        if self.inline and request.kind in ("images", "frames"):
            self._thumbnails(request)
        console.print(
            "Open a file by its path to look at it before you answer. y/n and the menu keys answer at once,"
            " Enter means yes, Ctrl-C stops here (resumable).",
            markup=False,
            style="dim",
        )

    def _thumbnails(self, request: ReviewRequest) -> None:
        assert self.inline is not None
        for candidate in request.candidates[:4]:
            if candidate.absolute_path and candidate.status == "succeeded":
                sequence = inline_thumbnail(candidate.absolute_path, self.inline)
                if sequence:
                    self.console.print(candidate.key, markup=False)
                    self.console.file.write(sequence)
                    self.console.file.flush()

    # -- asking --------------------------------------------------------------------------------------

    def review(self, request: ReviewRequest) -> ReviewDecision:
        self.show(request)
        try:
            decision = self.ask(request)
        except StopReview:
            # Ctrl-C here is Ctrl-C during the run (exit 130, resumable at this review); "stop" is the menu's
            raise Interrupted(f"interrupted at the review of {request.stage}") from None
        self.console.print(f"review: {describe(decision)}", markup=False)
        return decision

    def ask(self, request: ReviewRequest) -> ReviewDecision:
        singular, plural = NOUNS.get(request.kind, ("candidate", "candidates"))
        alternatives = self.alternatives(request)
        while True:
            if self.prompter.confirm("Continue to next stage? (y/n)", default=True):
                return ReviewDecision(stage=request.stage, action="continue")
            if request.can_regenerate and self.prompter.confirm(
                f"Regenerate {plural} with feedback? (y/n)", default=True
            ):
                feedback = self.prompter.text(f"What should change in the {plural}? (your feedback for the writer)")
                return ReviewDecision(stage=request.stage, action="regenerate", feedback=feedback)
            options = []
            if request.can_pick and alternatives:
                options.append(Option(f"Pick another {singular}", "pick", "p"))
            options.append(Option("Stop here (the run can be resumed at this review)", "stop", "s"))
            options.append(Option("Back to the first question", "back", "b"))
            while True:
                action = self.prompter.select("What now?", options, default=options[0].value)
                if action == "stop":
                    return ReviewDecision(stage=request.stage, action="stop")
                if action != "pick":
                    break  # back to "Continue to next stage?"
                number = numbers(request)
                choice = self.prompter.select(
                    f"Which {singular}? (its # in the table)",
                    [
                        *[Option(self.option_title(request, c), c.key, _key(number[c.key])) for c in alternatives],
                        Option("Back", "back", "b"),
                    ],
                    default=alternatives[0].key,
                )
                if choice != "back":
                    return ReviewDecision(stage=request.stage, action="pick", choice=choice)

    @staticmethod
    def alternatives(request: ReviewRequest) -> list[Candidate]:
        """Candidates that can be picked instead: succeeded, with a file, not already the pick."""
        if not request.can_pick:
            return []
        return [c for c in ranked(request) if c.status == "succeeded" and c.path and not is_pick(request, c)]

    @staticmethod
    def option_title(request: ReviewRequest, candidate: Candidate) -> str:
        group = f"{candidate.group}: " if len({c.group for c in request.candidates}) > 1 else ""
        number = numbers(request)[candidate.key]
        # up to #9 the key in front (`2) `) is the table's #; past it there is no single key, so the # is written
        mark = "" if _key(number) else f"#{number} "
        return f"{mark}{group}{candidate.key}  overall {_number(candidate.overall)}"


def _key(number: int) -> str | None:
    """The single key that picks candidate `#number`: 1-9 (a tenth needs the arrow keys)."""
    return str(number) if 1 <= number <= 9 else None


def describe(decision: ReviewDecision) -> str:
    if decision.action == "pick":
        return f"pick {decision.choice}"
    if decision.action == "regenerate":
        return f"regenerate with feedback: {decision.feedback}"
    if decision.action == "stop":
        return "stop (resumable)"
    return "continue"
