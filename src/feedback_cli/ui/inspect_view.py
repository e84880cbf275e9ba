"""`fbloop inspect`: the Rich tables of the runs under an output dir, of one run, and of two runs compared.

Only rendering: the data is a typed report built from the checkpoints by `workflow/inspect_report.py`
(`list_runs`, `inspect_run` -> `InspectReport`, `compare_runs` -> `CompareReport`), the same report that
`--json` prints and the HTML report (`ui/html_report.py`) renders.

- the list: one row per run, newest first, broken folders listed as broken;
- one run: per stage, the writer/critic iterations, the rounds of each round loop (the stage's own, or one
  per storyboard clip) and the candidates as a promptfoo-style matrix (candidates x scorers, overall,
  winner, cost, latency), then totals and the human reviews;
- two runs side by side: per stage the deltas of scores, cost and time, and whether the pick changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from feedback_cli.ui.console import heading, print_line, print_table
from feedback_cli.ui.summary import clip_labels, places, score_text
from feedback_cli.workflow.inspect_report import (
    CompareReport,
    CompareStage,
    InspectReport,
    RoundLoop,
    RunListing,
    StageReport,
    WordChange,
    word_diff,
)

WINNER = "*"
#: light rules, no vertical lines: the tables stay readable in 80 columns
BOX = box.SIMPLE_HEAD


# ------------------------------------------------------------------------------------------------
# the list of runs


def _table(*, title: str, **options: Any) -> Table:
    """Light rules, no vertical lines, one space between columns: readable in 80 columns."""
    return Table(title=title, box=box.SIMPLE_HEAD, padding=0, show_edge=False, **options)


def _fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _date(value: str | None) -> str:
    return (value or "-")[:16].replace("T", " ")


def render_run_list(console: Console, root: Path, runs: list[RunListing]) -> None:
    if not runs:
        console.print(f"no runs under {root}", markup=False)
        return
    table = _table(title=escape(f"runs under {root} (newest first)"))
    table.add_column("Run", no_wrap=True)
    table.add_column("Date (UTC)")
    table.add_column("Workflow")
    table.add_column("Backend")
    table.add_column("Status")
    for column in ("Image", "Video", "USD", "Time"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Prompt", no_wrap=True)  # whole: a table too narrow for it is printed stacked
    table.caption = "Image, Video: best overall score (0-100); USD: total cost; Time: seconds"
    broken = []
    for r in runs:
        if r.problem is not None:
            broken.append(r)
        table.add_row(
            escape(r.run_id),
            _date(r.created_at) if console.width >= 100 else _date(r.created_at)[5:],  # narrow: no year
            escape(r.workflow or "-"),
            escape(r.backend or "-"),
            Text("broken", style="red") if r.problem is not None else Text(r.status),
            _fmt(r.best_image_score),
            _fmt(r.best_video_score),
            _fmt(r.cost_usd, 4),
            _fmt(r.time_s),
            escape(r.prompt or "-"),
        )
    print_table(console, table)
    for r in broken:
        console.print(f"broken: {r.run_id}: {r.problem}", markup=False)


# ------------------------------------------------------------------------------------------------
# one run


def excerpt(text: str | None, width: int = 60) -> str:
    """A short form of a long text keeping its start and its end (prompts grow at the end), cut at words."""
    text = " ".join((text or "").split())
    if len(text) <= width:
        return text
    head = text[: width * 3 // 5]
    tail = text[len(text) - (width - len(head) - 3) :]
    if " " in head[1:]:
        head = head[: head.rindex(" ")]
    if " " in tail[:-1]:
        tail = tail[tail.index(" ") + 1 :]
    return f"{head.rstrip(' ,;')} … {tail}"


def critic_feedback(lines: list[str]) -> str:
    """The critic's points, each cut to its first sentence ("style: missing. Is a ...?" -> "style: missing")."""
    return "; ".join(line.split(". ", 1)[0].rstrip(".") for line in lines)


def _stage_status(stage: StageReport) -> str:
    if stage.status == "skipped":
        return f"skipped: {stage.skip_reason}" if stage.skip_reason else "skipped"
    if stage.error:
        return f"{stage.status}: {stage.error}"
    return stage.status


def _scores_text(stage: str, scores: dict[str, Any]) -> str:
    """Every figure, none left out: a narrow terminal gets the stacked layout instead."""
    return ", ".join(f"{k}={score_text(stage, k, v)}" for k, v in scores.items() if isinstance(v, int | float))


def render_run(console: Console, report: InspectReport) -> None:
    """Header, stage overview, then per stage its iterations, its rounds and its candidate matrix, then totals."""
    console.print(
        f"run {report.run_id}  {report.workflow}  backend {report.backend}  status {report.status}"
        f"  created {_date(report.created_at)}",
        markup=False,
        style="bold",
    )
    print_line(console, f"folder: {report.run_dir}")
    if report.label:
        console.print(report.label, markup=False, style="yellow")
    if report.source_prompt:
        print_line(console, f"prompt: {' '.join(report.source_prompt.split())}")
    if report.error:
        console.print(f"error: {report.error}", markup=False, style="red")

    overview = _table(title="stages")
    overview.add_column("Stage", no_wrap=True)
    overview.add_column("Status")
    overview.add_column("Time (s)", justify="right")
    overview.add_column("Cost (USD)", justify="right")
    overview.add_column("Scores")
    for stage in report.stages:
        overview.add_row(
            f"{stage.number}. {stage.name}",
            escape(_stage_status(stage)),
            _fmt(stage.wall_time_s),
            _fmt(stage.cost_usd, 4),
            escape(_scores_text(stage.name, stage.scores)),
        )
    print_table(console, overview)

    for stage in report.stages:
        if stage.status == "skipped" or not (stage.iterations or stage.candidates or stage.round_loops):
            continue
        title = f"Stage {stage.number}: {stage.title} ({stage.status}"
        title += f", {_fmt(stage.wall_time_s)}s, ${stage.cost_usd:.4f})"
        console.print()
        heading(console, title)
        if stage.iterations:
            render_iterations(console, stage)
        for loop in stage.round_loops:
            if loop.rounds:
                render_rounds(console, stage, loop)
        if stage.candidates:
            print_table(console, candidate_matrix(stage, report.selection))
        for note in stage.notes:
            console.print(f"note: {note}", markup=False, style="dim")

    if report.reviews:
        console.print()
        print_table(console, review_table(report))
    console.print()
    print_table(console, totals_table(report))


def diff_text(changes: list[WordChange]) -> Text:
    """A word diff as one line, marked as `git diff --word-diff` does ([-removed-] {+added+}) so it reads
    the same without colour, and coloured on a terminal."""
    text = Text()
    for index, (op, words) in enumerate(changes):
        if index:
            text.append(" ")
        if op == "-":
            text.append(f"[-{words}-]", style="red strike")
        elif op == "+":
            text.append(f"{{+{words}+}}", style="green")
        else:
            text.append(words)
    return text


def render_rounds(console: Console, stage: StageReport, loop: RoundLoop) -> None:
    """One round loop (the stage's, or a storyboard clip's): each round's best score and the pick so far, the
    prompt as a word diff from the previous round's, the questions its best candidate failed; then why the
    rounds stopped and the loop's pick."""
    scope = f"{loop.scope} " if loop.scope else ""  # a storyboard clip's loop: its group, e.g. clip_01
    console.print(Text(f"{stage.title}: {scope}rounds", style="bold"), soft_wrap=True)
    for r in loop.rounds:
        head = f"round {r.round}: best {_fmt(r.best_overall)} ({r.best_key or '-'})"
        head += f", elements {_fmt(r.best_elements)}, pick so far {r.best_so_far_key or '-'}"
        console.print(Text(head, style="bold"), soft_wrap=True)
        if r.error:
            print_line(console, f"  {r.error}", style="red")
        if r.human_feedback:
            print_line(console, f"  human feedback: {r.human_feedback}")
        if r.changes is None:
            print_line(console, f"  prompt: {' '.join(r.prompt.split())}")
        else:
            line = Text("  prompt: ")
            line.append_text(diff_text(r.changes) if any(op != "=" for op, _ in r.changes) else Text("(same)"))
            console.print(line, soft_wrap=True)
        if r.failed:
            print_line(console, f"  failed: {'; '.join(r.failed)}", style="dim")
    if loop.stop_reason:
        print_line(console, f"stopped: {loop.stop_reason}")
    if loop.scope and loop.pick:  # the stage's own pick is marked in its candidate matrix
        print_line(console, f"pick: {loop.pick}")


def render_iterations(console: Console, stage: StageReport) -> None:
    """Every iteration of the writer/critic loop with its whole prompt and, from the second one of a scope
    on, the word-level change from the previous prompt; prompts are lines, never cut table cells."""
    console.print(Text(f"{stage.title}: writer/critic iterations", style="bold"))
    for it in stage.iterations:
        scope = f"{it.scope} " if it.scope else ""
        head = f"{scope}iteration {it.iteration}: critic {_fmt(it.critic_score)}"
        head += f", ${_fmt(it.cost_usd, 4)}, {_fmt(it.latency_s, 2)}s"
        console.print(Text(head, style="bold"), soft_wrap=True)
        if it.human_feedback:  # the person's words in full: they are why this iteration exists
            print_line(console, f"  human feedback: {it.human_feedback}")
        print_line(console, f"  prompt: {' '.join(it.prompt.split())}")
        if it.changes is not None:
            line = Text("  changed: ")
            line.append_text(diff_text(it.changes) if it.changes else Text("(no change)"))
            console.print(line, soft_wrap=True)
        feedback = critic_feedback(it.feedback)
        if feedback:
            print_line(console, f"  critic: {feedback}", style="dim")


def candidate_matrix(stage: StageReport, selection: str = "weighted") -> Table:
    """Candidates as rows, every scorer as a column, overall, winner marked, cost and latency per row."""
    candidates = stage.candidates
    groups = sorted({c.group for c in candidates})
    if all(c.key.startswith(c.group) for c in candidates):
        groups = groups[:1]  # the keys name their group already (clip_01_video_02)
    rounds = stage.rounds
    picking = stage.picking
    caption = f"{WINNER} = pick" if picking else "keyframes: every one is used"
    caption += "; overall: " + ("mean rank, lower is better" if selection == "rank" else "weighted mean, 0-100")
    table = _table(title=f"{stage.title}: candidates x scorers", title_justify="left", caption=caption)
    if picking:
        table.add_column(WINNER, justify="center", no_wrap=True)
    table.add_column("Candidate", no_wrap=True)
    if len(groups) > 1:
        table.add_column("Group", no_wrap=True)
    if rounds > 1:
        table.add_column("Rd", justify="right")
    for scorer in stage.scorers:
        table.add_column(scorer, justify="right")
    table.add_column("Overall", justify="right")
    table.add_column("Cost", justify="right")
    table.add_column("Lat. (s)", justify="right")
    table.add_column("File")
    previous: str | None = None
    for c in candidates:
        if previous is not None and c.group != previous:
            table.add_section()
        previous = c.group
        row: list[str | Text] = [WINNER if c.winner else ""] if picking else []
        row.append(escape(c.key))
        if len(groups) > 1:
            row.append(escape(c.group))
        if rounds > 1:
            row.append(str(c.round))
        row += [_fmt(c.scores.get(s)) for s in stage.scorers]
        row += [
            _fmt(c.overall, 2 if selection == "rank" else 1),
            f"{c.cost_usd:.4f}",
            _fmt(c.latency_s, 2),
        ]
        if c.status != "succeeded":
            row.append(Text(f"{c.status}: {c.error or ''}".strip(": "), style="red"))
        elif not c.exists:
            row.append(Text("missing", style="red"))
        else:
            row.append("ok")
        table.add_row(*row, style="bold" if c.winner else None)
    return table


def review_table(report: InspectReport) -> Table:
    table = _table(title="human reviews", title_justify="left")
    table.add_column("At (UTC)", no_wrap=True)
    table.add_column("Stage")
    table.add_column("Decision")
    table.add_column("Feedback")
    for r in report.reviews:
        decision = r.action + (f" {r.choice}" if r.choice else "")
        table.add_row(_date(r.at)[:16], escape(r.stage), escape(decision), escape(r.feedback or "-"))
    return table


def totals_table(report: InspectReport) -> Table:
    totals = report.totals
    table = _table(title="totals", title_justify="left", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_row("status", escape(report.status))
    table.add_row("stages done", f"{totals.stages_done} of {totals.stages}")
    table.add_row("cost", f"${totals.cost_usd:.4f}" + (" (offline: nothing paid)" if report.offline else ""))
    table.add_row("time", f"{totals.time_s:.1f}s")
    table.add_row("iterations", str(totals.iterations))
    failed = f" ({totals.candidates_failed} failed)" if totals.candidates_failed else ""
    table.add_row("candidates", f"{totals.candidates}{failed}")
    table.add_row("reviews", str(totals.reviews))
    if report.best_image:
        table.add_row("best image", escape(report.best_image))
    if report.best_videos:
        for label, path in zip(clip_labels(report.best_videos), report.best_videos, strict=True):
            table.add_row(f"best video ({label})", escape(path))
    elif report.best_video:
        table.add_row("best video", escape(report.best_video))
    if report.final_video:
        join = report.final_video_join or {}
        how = {"stream_copy": "stream copy", "reencode": "re-encoded"}.get(join.get("mode", ""), "")
        facts = f" ({join['frames']} frames, {join['duration_s']:.2f}s, {how})" if join.get("frames") else ""
        table.add_row("final video", escape(report.final_video + facts))
    if totals.missing_files:
        table.add_row("missing files", Text(", ".join(totals.missing_files), style="red"))
    return table


# ------------------------------------------------------------------------------------------------
# two runs side by side


def _pick_text(pick: dict[str, Any] | None) -> str:
    if pick is None:
        return "-"
    if all(k == "prompt" or k.startswith("clip ") for k in pick):  # prompts: their start and end
        width = 40 if len(pick) == 1 else 24
        return "\n".join(
            excerpt(str(v), width) if k == "prompt" else f"{k}: {excerpt(str(v), width)}" for k, v in pick.items()
        )
    return "\n".join(str(v) if k in ("", "all") else f"{k}: {v}" for k, v in pick.items())


def render_compare(console: Console, report: CompareReport) -> None:
    a, b = report.a, report.b
    print_line(console, f"A: {a.run_id}  {a.workflow}  {a.backend}  {a.status}  {a.run_dir}")
    print_line(console, f"B: {b.run_id}  {b.workflow}  {b.backend}  {b.status}  {b.run_dir}")
    changed = _option_changes(a.options, b.options)
    if changed:
        print_line(console, "options changed: " + ", ".join(changed))
    console.print("deltas are B - A", markup=False, style="dim")
    for stage in report.stages:
        table = _table(title=f"{stage.number}. {stage.name}", title_justify="left")
        table.add_column("", style="bold", no_wrap=True)
        table.add_column("A", justify="right")
        table.add_column("B", justify="right")
        table.add_column("Δ (B-A)", justify="right")
        table.add_row("status", escape(stage.status.a or "-"), escape(stage.status.b or "-"), "")
        for key, v in stage.scores.items():
            shown = places(stage.name, key)
            table.add_row(
                escape(key),
                _fmt(v.a, shown),
                _fmt(v.b, shown),
                _delta_text(shown_delta(v.a, v.b, shown), shown, higher_is_better=True),
            )
        for label, figure, digits in (("cost (USD)", stage.cost_usd, 4), ("time (s)", stage.wall_time_s, 1)):
            delta = shown_delta(figure.a, figure.b, digits)
            table.add_row(label, _fmt(figure.a, digits), _fmt(figure.b, digits), _delta_text(delta, digits))
        if stage.iterations.a or stage.iterations.b:
            v = stage.iterations
            table.add_row("iterations", str(v.a or 0), str(v.b or 0), _delta_text(v.delta, 0))
        prompts = not stage.picking
        if prompts and (stage.pick.a or stage.pick.b):  # the prompts follow the table, whole
            table.add_row("prompt", "", "", _pick_verdict(stage))
        else:
            pick_a, pick_b = _pick_text(stage.pick.a), _pick_text(stage.pick.b)
            table.add_row("pick", escape(pick_a), escape(pick_b), _pick_verdict(stage))
        print_table(console, table)
        if prompts:
            render_prompt_changes(console, stage.pick.a, stage.pick.b)
    totals = _table(title="totals", title_justify="left")
    totals.add_column("", style="bold")
    totals.add_column("A", justify="right")
    totals.add_column("B", justify="right")
    totals.add_column("Δ (B-A)", justify="right")
    t = report.totals
    for label, figure, digits in (
        ("cost (USD)", t.cost_usd, 4),
        ("time (s)", t.time_s, 1),
        ("iterations", t.iterations, 0),
        ("candidates", t.candidates, 0),
    ):
        delta = shown_delta(figure.a, figure.b, digits)
        totals.add_row(label, _fmt(figure.a, digits), _fmt(figure.b, digits), _delta_text(delta, digits))
    print_table(console, totals)


def shown_delta(a: Any, b: Any, digits: int) -> float | None:
    """B - A of the values as shown (rounded to `digits`), so 91.5 -> 94.0 reads +2.5, never +2.4."""
    if not (isinstance(a, int | float) and isinstance(b, int | float)):
        return None
    return round(round(float(b), digits) - round(float(a), digits), digits)


def prompt_pairs(pick_a: dict[str, Any] | None, pick_b: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(label, prompt of A, prompt of B) for each prompt the two runs settled on ("" where a run has none)."""
    labels = list(pick_a or {}) + [k for k in pick_b or {} if k not in (pick_a or {})]
    return [(label, str((pick_a or {}).get(label) or ""), str((pick_b or {}).get(label) or "")) for label in labels]


def render_prompt_changes(console: Console, pick_a: dict[str, Any] | None, pick_b: dict[str, Any] | None) -> None:
    for label, a, b in prompt_pairs(pick_a, pick_b):
        print_line(console, f"{label} A: {' '.join(a.split()) or '-'}")
        print_line(console, f"{label} B: {' '.join(b.split()) or '-'}")
        if a and b:
            changes = word_diff(a, b)
            line = Text(f"{label} A -> B: ")
            same = all(op == "=" for op, _ in changes)
            line.append_text(Text("(same)") if same else diff_text(changes))
            console.print(line, soft_wrap=True)


def _pick_verdict(stage: CompareStage) -> Text | str:
    if stage.pick_changed is None:
        return ""
    if not stage.pick_changed:
        return "same"
    if stage.pick_same_file:
        return "same file"
    return Text("changed", style="yellow")


def _delta_text(value: float | None, digits: int, higher_is_better: bool | None = None) -> Text | str:
    if value is None:
        return "-"
    text = _fmt(value, digits, signed=True)
    if higher_is_better is None or value == 0:
        return text
    good = value > 0 if higher_is_better else value < 0
    return Text(text, style="green" if good else "red")


def _option_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    skip = {"prompt_file", "verbose", "schema_version"}
    return [f"{k} {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if k not in skip and a.get(k) != b.get(k)]


def relative_to(path: Path, start: Path) -> str:
    """`path` relative to `start` (for links from a report file), falling back to the absolute path."""
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path.resolve())
