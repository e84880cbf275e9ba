"""The consoles behind the one terminal object (`ui/terminal.py`): stderr for progress and diagnostics, stdout
for results, and the layout rules every command's output follows.

On a terminal, each stage gets a live progress bar; otherwise (pipes, CI) plain lines.

Layout rules, for every command (issue 15): a path, a command or a prompt is never wrapped or cut. On a
terminal such lines are printed soft-wrapped (the terminal folds them; copying gives the whole line back);
a table that cannot fit its columns without cutting a cell is printed stacked, one record per block, instead
(`print_table`). When the stream is not a terminal (a pipe, a file) nothing is wrapped at all: the console is
given a width no line reaches, so each line is written whole and tables take their natural width.

Everything printed goes through `SafeConsole`, which removes control characters and escape sequences (a
prompt, a model reply or a file name can carry "clear screen" or "set title") and misleading bidi / zero-width
characters."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from feedback_cli.runstate.events import Event
from feedback_cli.ui.terminal import error_line as error_line  # the one error line, also imported from here
from feedback_cli.workflow.safe_text import json_safe, printable


class SafeConsole(Console):
    """A Rich console that cannot be made to emit a foreign control character.

    Strings are cleaned before Rich lays them out (so widths are right), and every text segment is
    cleaned again on the way out, whatever renderable made it (tables, Text built elsewhere, progress
    bars); Rich's own control segments (cursor moves of a live display) are left alone. Emoji codes are left
    as written: `:fire:` in a prompt or a path is text (a path shown with 🔥 in it is not the path)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    def render_str(self, text: str, *args: Any, **kwargs: Any) -> Text:
        return super().render_str(printable(text), *args, **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and segment.text:
                clean = printable(segment.text)
                if clean != segment.text:
                    segment = Segment(clean, segment.style)
            yield segment


#: the width given to a console that does not write to a terminal: wider than any line fbloop prints, so
#: Rich never wraps (a path split over two lines in a file cannot be copied)
UNWRAPPED_WIDTH = 100_000


def _console(**options: Any) -> Console:
    console = SafeConsole(highlight=False, no_color="NO_COLOR" in os.environ, **options)
    if not console.is_terminal:
        console.width = UNWRAPPED_WIDTH
    return console


def out_console() -> Console:
    return _console(soft_wrap=False)


def err_console() -> Console:
    return _console(stderr=True)


def plain_stream(console: Console) -> bool:
    """True when the console writes to a pipe or a file (no wrapping, no rules, no live display)."""
    return not console.is_terminal


def heading(console: Console, text: str) -> None:
    """A section heading: a rule across a terminal, one plain line elsewhere (a rule 100000 wide is not)."""
    if plain_stream(console) or console.width < cell_len(text) + 8:
        console.print(Text(f"== {text} ==", style="bold"), soft_wrap=True)
    else:
        console.rule(Text(text))


def print_line(console: Console, text: str, style: str | None = None) -> None:
    """One line that holds a path, a command or a prompt: never cut, never hard-wrapped by Rich."""
    console.print(text, markup=False, highlight=False, soft_wrap=True, style=style)


def _cell_text(console: Console, cell: RenderableType) -> Text:
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return console.render_str(cell, highlight=False)
    return Text(str(cell))


def _column_widths(console: Console, table: Table, index: int) -> tuple[int, int]:
    """(narrowest, natural) width of a column: the narrowest cuts no cell (its longest word, or its longest
    line when the column does not wrap); the natural one wraps nothing."""
    column = table.columns[index]
    narrowest = natural = 0
    cells = [*list(column.cells), column.header] if table.show_header else list(column.cells)
    for cell in cells:
        for line in _cell_text(console, cell).plain.splitlines() or [""]:
            pieces = [line] if column.no_wrap else line.split()
            narrowest = max(narrowest, *(cell_len(p) for p in pieces), 0)
            natural = max(natural, cell_len(line))
    return narrowest, natural


def fit_widths(console: Console, table: Table, width: int | None = None) -> list[int] | None:
    """Column widths that lay `table` out in `width` columns wrapping text cells at spaces only (each column
    gets its narrowest width, the room left is shared by what the columns would take more), or None when
    even the narrowest widths do not fit. Rich's own fitting may cut a cell to `…` where wrapping another
    column would have done; these widths leave it nothing to cut."""
    width = console.width if width is None else width
    _top, right, _bottom, left = Padding.unpack(table.padding)
    bounds = [_column_widths(console, table, index) for index in range(len(table.columns))]
    room = width - table._extra_width - (left + right) * len(bounds)  # less the borders and the padding
    narrowest = sum(low for low, _ in bounds)
    if narrowest > room:
        return None
    wanted = sum(high - low for low, high in bounds)
    if narrowest + wanted <= room:
        return [high for _, high in bounds]
    # the columns that want little more (numbers, short headers) get it first; the rest share what is left
    widths = [low for low, _ in bounds]
    spare = room - narrowest
    order = sorted(range(len(bounds)), key=lambda i: bounds[i][1] - bounds[i][0])
    while order and bounds[order[0]][1] - bounds[order[0]][0] <= spare // len(order):
        index = order.pop(0)
        widths[index] = bounds[index][1]
        spare -= bounds[index][1] - bounds[index][0]
    wanted = sum(bounds[i][1] - bounds[i][0] for i in order)
    for index in order:
        widths[index] += spare * (bounds[index][1] - bounds[index][0]) // wanted
    return widths


def table_fits(console: Console, table: Table, width: int | None = None) -> bool:
    return fit_widths(console, table, width) is not None


def _cut_cells(console: Console, table: Table) -> bool:
    """Whether Rich, printing `table` on `console`, would cut a cell (it marks a cut with `…`)."""
    probe = Console(file=io.StringIO(), width=console.width, color_system=None, legacy_windows=False)
    probe.print(table)
    shown = probe.file.getvalue().count("…")  # type: ignore[attr-defined]
    own = sum(_cell_text(console, cell).plain.count("…") for column in table.columns for cell in column.cells)
    own += sum(_cell_text(console, part).plain.count("…") for part in (table.title, table.caption) if part)
    own += sum(_cell_text(console, column.header).plain.count("…") for column in table.columns)
    return shown > own


def print_table(console: Console, table: Table) -> None:
    """The table when it fits (text cells wrapped at spaces); otherwise stacked: each row a block of
    `Header: value` lines, so a narrow terminal shows every value whole (never `prompt_s…`)."""
    widths = fit_widths(console, table)
    if widths is not None:
        if sum(widths) < sum(_column_widths(console, table, i)[1] for i in range(len(widths))):
            for column, column_width in zip(table.columns, widths, strict=True):
                column.width = max(column_width, 1)
        if not _cut_cells(console, table):
            console.print(table)
            return
    for line in stacked_lines(console, table):
        console.print(line, soft_wrap=True)


def stacked_lines(console: Console, table: Table) -> list[Text]:
    lines: list[Text] = []
    if table.title:
        lines.append(_styled(console, table.title, "bold"))
    columns = table.columns
    rows = table.row_count
    for row in range(rows):
        cells = [_cell_text(console, c._cells[row]) for c in columns]
        head = Text("#") if _cell_text(console, columns[0].header).plain == "#" else Text("")
        head.append_text(cells[0] if cells else Text(""))
        head.stylize("bold")
        row_style = table.rows[row].style if row < len(table.rows) else None
        if isinstance(row_style, str) and row_style:
            head.stylize(row_style)
        lines.append(head)
        for column, cell in zip(columns[1:], cells[1:], strict=True):
            if not cell.plain.strip():
                continue
            label = _cell_text(console, column.header).plain or "-"
            parts = cell.split("\n")
            first = Text(f"  {label}: ")
            first.append_text(parts[0])
            lines.append(first)
            lines.extend(Text("    ").append_text(p) for p in parts[1:])
    if table.caption:
        lines.append(_styled(console, table.caption, "dim"))
    return lines


def _styled(console: Console, value: RenderableType, style: str) -> Text:
    text = _cell_text(console, value).copy()
    text.stylize(style)
    return text


def write_json(data: Any) -> None:
    """One JSON document on stdout (`--json`): JSON escapes only C0, so the characters a terminal could obey
    (C1, bidi, zero-width) are written as \\uXXXX too: the same data, nothing a terminal acts on."""
    sys.stdout.write(json_safe(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


class CountColumn(ProgressColumn):
    """`i/max` once the total is known; nothing (not `0/?`) before."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


def scores_line(key: str, scores: dict[str, Any], key_width: int = 22) -> str:
    """`key  clip 91.2  aesthetic 55.0`: fixed-width numbers, so the lines of one stage line up."""
    figures = "  ".join(
        f"{name} {value:5.1f}" if isinstance(value, int | float) else f"{name}     -" for name, value in scores.items()
    )
    return f"{key:<{key_width}}  {figures}" if figures else f"{key:<{key_width}}  (no scores)"


class EventRenderer:
    """Subscribes to engine events and shows them."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.live = console.is_terminal and not os.environ.get("CI")
        self.progress: Progress | None = None
        self.task: int | None = None
        self.total = 0
        self.done = 0
        self.title = ""
        self.scoring: list[str] = []  # keys whose scoring has started, in order

    def _line(self, text: str) -> None:
        print_line(self.console, text)

    def _start_progress(self, title: str) -> None:
        if not self.live:
            return
        self._stop_progress()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            CountColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(title, total=None)

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.task = None

    def _advance(self, description: str | None = None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(
                self.task,
                completed=self.done,
                total=self.total or None,
                description=description or self.title,
            )

    def _show(self, description: str, completed: int, total: int | None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=completed, total=total, description=description)

    def __call__(self, event: Event) -> None:
        data = event.data
        kind = event.kind
        if kind in ("run_started", "run_resumed"):
            self._line(f"{event.message} -> {data.get('run_dir', '')}")
        elif kind == "stage_started":
            self.total = self.done = 0
            self.scoring = []
            self.title = f"Stage {data.get('number')}: {data.get('title')}"
            self._line(self.title + (f" (attempt {data['attempt']})" if data.get("attempt", 1) > 1 else ""))
            self._start_progress(self.title)
        elif kind == "stage_skipped":
            self._line(f"Stage {data.get('number')}: {data.get('title')} skipped: {event.message}")
        elif kind == "iteration_started":
            number, budget = int(data.get("iteration", 1)), data.get("max_iterations")
            scope = f"{data['scope']} " if data.get("scope") else ""
            self._show(f"{self.title}: {scope}writing iteration {number}", number - 1, budget)
        elif kind == "iteration":
            self._line(f"  {event.message} (threshold {data.get('threshold')})")
            number, budget = int(data.get("iteration", 1)), data.get("max_iterations")
            self._show(self.title, number, budget)
        elif kind == "item_started":
            self.total += 1
            self._advance()
            if self.verbose:
                self._line(f"  {event.message} started (seed {data.get('seed')})")
        elif kind == "item_submitted" and self.verbose:
            self._line(f"  {data.get('key')} submitted as {data.get('job_id')}")
        elif kind == "item_finished":
            self.done += 1
            self._advance()
            if self.verbose or not self.live:
                self._line(
                    f"  {data.get('key')} -> {data.get('path')} ({data.get('latency_s')}s, "
                    f"${data.get('cost_usd', 0):.4f})"
                )
        elif kind == "item_failed":
            self.done += 1
            self._advance()
            self._line(f"  ! {event.message}")
        elif kind == "item_in_flight":  # not failed: its job may still finish; a resume collects it
            self.done += 1
            self._advance()
            self._line(f"  ~ {event.message}")
        elif kind == "item_scoring":
            key = str(data.get("key", ""))
            if key not in self.scoring:
                self.scoring.append(key)
            number = self.scoring.index(key) + 1
            total = max(self.total, len(self.scoring))
            label = f"{self.title}: scoring {number} of {total} ({data.get('scorer')})"
            self._show(label, self.done, self.total or None)
        elif kind == "item_scored":
            if self.verbose:
                self._line("  " + scores_line(str(data.get("key", "")), dict(data.get("scores") or {})))
            self._advance()
        elif kind == "notice":
            self._line(f"  note: {event.message}")
        elif kind in ("stage_finished", "stage_failed"):
            self._stop_progress()
            if kind == "stage_failed":
                self._line(f"  stage failed: {event.message}")
            else:
                self._line(f"  done in {data.get('wall_time_s', 0):.1f}s, ${data.get('cost_usd', 0):.4f}")
        elif kind == "review":
            self._stop_progress()
        elif kind == "final_video":
            self._line(f"  final video: {event.message}")
        elif kind == "run_interrupted":
            # the session prints the one line that says so, with the resume command: not twice
            self._stop_progress()

    def close(self) -> None:
        self._stop_progress()
