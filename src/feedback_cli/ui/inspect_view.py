"""`fbloop inspect`: the data it shows, built from a run's checkpoint, and the Rich tables that show it.

Three views, each a plain JSON-able dict first (that is what `--json` prints and the HTML report reads) and
then tables:

- the runs under an output dir (`list_runs`), newest first, broken folders listed as broken;
- one run (`inspect_run`): per stage, the writer/critic iterations or the candidates as a promptfoo-style
  matrix (candidates x scorers, overall, winner, cost, latency), then totals and the human reviews;
- two runs side by side (`compare_runs`): per stage the deltas of scores, cost and time, and whether the
  pick changed.

Everything reads the checkpoint without verifying artifacts, so failed, interrupted and old runs whose
files were moved still inspect; a missing file is shown as missing.
"""

from __future__ import annotations

import difflib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from feedback_cli.errors import CheckpointError
from feedback_cli.ui.console import heading, print_line, print_table
from feedback_cli.ui.summary import COUNT_FIGURES, clip_labels, score_text
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.models import ItemRecord, RunState, StageRecord
from feedback_cli.workflow.report import summarize

INSPECT_FORMAT = "fbloop-inspect"
COMPARE_FORMAT = "fbloop-compare"
INSPECT_SCHEMA_VERSION = 1
WINNER = "*"
#: light rules, no vertical lines: the tables stay readable in 80 columns
BOX = box.SIMPLE_HEAD
#: stages whose candidates compete for a pick; the others' items are all used (storyboard keyframes)
PICKING_STAGES = ("image_generation", "video_generation")


# ------------------------------------------------------------------------------------------------
# the list of runs


class RunListing(BaseModel):
    run_id: str
    path: str
    created_at: str | None = None
    workflow: str | None = None
    backend: str | None = None
    status: str
    prompt: str | None = None
    best_image_score: float | None = None
    best_video_score: float | None = None
    cost_usd: float | None = None
    time_s: float | None = None
    problem: str | None = None


def _table(*, title: str, **options: Any) -> Table:
    """Light rules, no vertical lines, one space between columns: readable in 80 columns."""
    return Table(title=title, box=box.SIMPLE_HEAD, padding=0, show_edge=False, **options)


def _candidate_dirs(root: Path) -> list[Path]:
    from feedback_cli.workflow.locate import run_dirs  # workflow runs and `fbloop stage` runs (DIR/{stage}/)

    return run_dirs(root)


def _mtime_iso(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="milliseconds")
    except OSError:
        return None


def _broken(folder: Path, problem: str) -> RunListing:
    return RunListing(
        run_id=folder.name, path=str(folder), created_at=_mtime_iso(folder), status="broken", problem=problem
    )


def list_runs(root: Path) -> list[RunListing]:
    """Every folder under `root`, newest first; one that is not a readable run is listed as broken."""
    out = []
    for folder in _candidate_dirs(root):
        try:
            _, state = checkpoint.load(folder, verify_artifacts=False)
            summary = summarize(state)
        except CheckpointError as exc:
            problem = exc.message.replace(str(folder / checkpoint.CHECKPOINT_NAME), checkpoint.CHECKPOINT_NAME)
            out.append(_broken(folder, problem.replace(str(folder), folder.name)))
            continue
        except Exception as exc:  # a state this version cannot summarise is still listed, never a crash
            out.append(_broken(folder, f"{type(exc).__name__}: {exc}"))
            continue
        scores = {s.name: s.scores for s in summary.stages}
        out.append(
            RunListing(
                run_id=state.run_id,
                path=str(folder),
                created_at=state.created_at,
                workflow=summary.workflow,
                backend=summary.backend,
                status=state.status,
                prompt=" ".join(state.source_prompt.split()) or None,
                best_image_score=scores.get("image_generation", {}).get("best_overall"),
                best_video_score=scores.get("video_generation", {}).get("best_overall"),
                cost_usd=summary.total_cost_usd,
                time_s=summary.total_time_s,
            )
        )
    out.sort(key=lambda r: (r.created_at or "", r.run_id), reverse=True)
    return out


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


def resolve_run(target: Path, output_dir: Path | None = None) -> Path:
    """A run folder, its checkpoint, or a run id under the output dir (workflow or stage run)."""
    if output_dir is None:
        return target
    from feedback_cli.workflow.locate import find_run

    return find_run(target, output_dir)


def load_state(target: Path) -> tuple[Path, RunState]:
    return checkpoint.load(target, verify_artifacts=False)


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _exists(run_dir: Path, relative: str | None) -> bool:
    if not relative:
        return False
    try:
        return (run_dir / relative).is_file()
    except OSError:
        return False


def _winners(record: StageRecord) -> dict[str, str]:
    """group -> key of the current pick, from the stage's outputs (a human pick included)."""
    out: dict[str, str] = {}
    if record.name not in PICKING_STAGES:
        return out
    paths: list[str] = []
    for key in ("best_image", "best_video"):
        if isinstance(record.outputs.get(key), str):
            paths.append(record.outputs[key])
    paths.extend(p for p in record.outputs.get("best_videos") or [] if isinstance(p, str))
    best_key = record.best_key
    for item in record.items:
        if item.key == best_key or (item.artifact is not None and item.artifact.path in paths):
            out[item.extra.group] = item.key
    return out


def _candidate(run_dir: Path, item: ItemRecord, winners: dict[str, str]) -> dict[str, Any]:
    path = item.artifact.path if item.artifact else None
    group = item.extra.group
    return {
        "key": item.key,
        "group": group,
        "round": item.extra.round_no,
        "status": item.status,
        "kind": item.artifact.kind if item.artifact else None,
        "path": path,
        "exists": _exists(run_dir, path),
        "seed": item.seed,
        "provider": item.provider,
        "model": item.model,
        "scores": {e.scorer: round(e.normalized, 3) for e in item.scores},
        "raw_scores": {e.scorer: e.raw for e in item.scores},
        "overall": item.overall,
        "winner": winners.get(group) == item.key,
        "cost_usd": item.cost_usd,
        "latency_s": item.latency_s,
        "prompt": str(item.extra.prompt or item.request.get("prompt") or ""),
        "error": item.error,
    }


def _iteration(it: Any) -> dict[str, Any]:
    return {
        "scope": it.scope,
        "iteration": it.iteration,
        "prompt": it.prompt,
        "rationale": it.rationale,
        "critic_score": it.critique.overall,
        "criteria": it.critique.scores,
        "feedback": list(it.critique.feedback),
        "faithful": it.critique.faithful,
        "human_feedback": it.human_feedback,
        "writer_model": it.writer_model,
        "critic_model": it.critic_model,
        "cost_usd": it.cost_usd,
        "latency_s": it.latency_s,
        "at": it.at,
    }


def _with_changes(iterations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each iteration gets `changes`: the word diff from the previous prompt of its scope (None for the first)."""
    previous: dict[str, str] = {}
    for it in iterations:
        before = previous.get(it["scope"])
        it["changes"] = None if before is None else word_diff(before, it["prompt"])
        previous[it["scope"]] = it["prompt"]
    return iterations


def _small_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """The stage outputs worth showing (the video plan and the questions are long and live in their own files)."""
    return {k: v for k, v in outputs.items() if k not in ("plan", "questions")}


def _round_log(record: StageRecord) -> list[dict[str, Any]]:
    """The rounds of a generation stage (issue 13): each round's prompt with its word diff from the previous
    round's, the questions its best candidate failed, its best score, the pick so far, and what the revision
    was asked by a person."""
    out: list[dict[str, Any]] = []
    before: str | None = None
    for r in record.outputs.get("rounds") or []:
        prompt = str(r.get("prompt", ""))
        out.append(
            {
                "round": r.get("round"),
                "prompt": prompt,
                "changes": None if before is None else word_diff(before, prompt),
                "failed": list(r.get("failed") or []),
                "best_key": r.get("best_key"),
                "best_overall": r.get("best_overall"),
                "best_elements": r.get("best_elements"),
                "best_so_far_key": r.get("best_so_far_key"),
                "best_so_far_overall": r.get("best_so_far_overall"),
                "human_feedback": r.get("human_feedback"),
                "status": r.get("status"),
            }
        )
        before = prompt
    return out


def _stage(run_dir: Path, record: StageRecord, selection: str) -> dict[str, Any]:
    winners = _winners(record)
    candidates = [_candidate(run_dir, item, winners) for item in record.items]
    scorers: list[str] = []
    for c in candidates:
        scorers.extend(name for name in c["scores"] if name not in scorers)
    rank_rule = selection == "rank"

    def order(c: dict[str, Any]) -> tuple[Any, ...]:
        overall = c["overall"]
        value = 0.0 if overall is None else (overall if rank_rule else -overall)
        return (c["group"], -c["round"], c["status"] != "succeeded", overall is None, value, c["key"])

    candidates.sort(key=order)
    item_paths = {c["path"] for c in candidates}
    files = [
        {"path": a.path, "kind": a.kind, "exists": _exists(run_dir, a.path)}
        for a in record.artifacts
        if a.path not in item_paths
    ]
    return {
        "number": record.number,
        "name": record.name,
        "title": _title(record.name),
        "folder": record.folder,
        "status": record.status,
        "skip_reason": record.skip_reason,
        "error": record.error,
        "attempts": record.attempts,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "cost_usd": round(record.cost_usd, 6),
        "wall_time_s": round(record.wall_time_s, 3),
        "scores": record.scores,
        "outputs": _small_outputs(record.outputs),
        "notes": list(record.notes),
        "iterations": _with_changes([_iteration(it) for it in record.iterations]),
        "scorers": scorers,
        "candidates": candidates,
        "winners": winners,
        "rounds": max((c["round"] for c in candidates), default=0),
        "round_log": _round_log(record),
        "stop_reason": record.outputs.get("stop_reason"),
        "files": files,
    }


def inspect_run(target: Path) -> dict[str, Any]:
    """Everything `fbloop inspect RUN` shows, as one JSON-able dict."""
    run_dir, state = load_state(target)
    return build_inspection(run_dir, state)


def build_inspection(run_dir: Path, state: RunState) -> dict[str, Any]:
    summary = summarize(state)
    selection = str(state.settings.get("selection", "weighted"))
    stages = [_stage(run_dir, record, selection) for record in state.stages]
    candidates = [c for s in stages for c in s["candidates"]]
    missing = sorted(
        {c["path"] for c in candidates if c["path"] and not c["exists"]}
        | {f["path"] for s in stages for f in s["files"] if not f["exists"]}
    )
    return {
        "format": INSPECT_FORMAT,
        "schema_version": INSPECT_SCHEMA_VERSION,
        "run_id": state.run_id,
        "run_dir": str(run_dir),
        "kind": state.kind,
        "workflow": summary.workflow,
        "backend": summary.backend,
        "offline": summary.offline,
        "label": summary.label,
        "status": state.status,
        "error": state.error,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "fbloop_version": state.fbloop_version,
        "selection": selection,
        "options": state.options.model_dump(mode="json"),
        "providers": state.providers,
        "source_prompt": state.source_prompt,
        "prompt_image": state.prompt_image,
        "input_image": state.input_image,
        "final_image_prompt": summary.final_image_prompt,
        "final_video_prompt": summary.final_video_prompt,
        "best_image": summary.best_image,
        "best_video": summary.best_video,
        "best_videos": summary.best_videos,
        "final_video": summary.final_video,
        "final_video_join": state.output("assembly") if summary.final_video else None,
        "totals": {
            "cost_usd": summary.total_cost_usd,
            "time_s": summary.total_time_s,
            "stages": len(stages),
            "stages_done": sum(1 for s in stages if s["status"] in ("completed", "skipped")),
            "candidates": len(candidates),
            "candidates_failed": sum(1 for c in candidates if c["status"] == "failed"),
            "iterations": sum(len(s["iterations"]) for s in stages),
            "reviews": len(state.reviews),
            "missing_files": missing,
        },
        "stages": stages,
        "reviews": [r.model_dump(mode="json") for r in state.reviews],
        "notices": list(state.notices),
        "calls": [_call(entry) for entry in state.ledger],
    }


def _call(entry: Any) -> dict[str, Any]:
    """One paid (or offline, free) call of the cost ledger; of its detail only the figures (tokens, seconds)."""
    figures = {k: v for k, v in entry.detail.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {
        "stage": entry.stage,
        "provider": entry.provider,
        "model": entry.model,
        "what": entry.what,
        "usd": entry.usd,
        "estimated": entry.estimated,
        "at": entry.at,
        "detail": figures,
    }


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


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 2].rstrip(" ;,") + " …"


def _stage_status(stage: dict[str, Any]) -> str:
    if stage["status"] == "skipped":
        return f"skipped: {stage['skip_reason']}" if stage["skip_reason"] else "skipped"
    if stage["error"]:
        return f"{stage['status']}: {stage['error']}"
    return str(stage["status"])


def _scores_text(scores: dict[str, Any]) -> str:
    """Every figure, none left out: a narrow terminal gets the stacked layout instead."""
    return ", ".join(f"{k}={score_text(k, v)}" for k, v in scores.items() if isinstance(v, int | float))


def render_run(console: Console, data: dict[str, Any]) -> None:
    """Header, stage overview, then per stage its iterations or its candidate matrix, then totals."""
    console.print(
        f"run {data['run_id']}  {data['workflow']}  backend {data['backend']}  status {data['status']}"
        f"  created {_date(data['created_at'])}",
        markup=False,
        style="bold",
    )
    print_line(console, f"folder: {data['run_dir']}")
    if data.get("label"):
        console.print(data["label"], markup=False, style="yellow")
    if data.get("source_prompt"):
        print_line(console, f"prompt: {' '.join(data['source_prompt'].split())}")
    if data.get("error"):
        console.print(f"error: {data['error']}", markup=False, style="red")

    overview = _table(title="stages")
    overview.add_column("Stage", no_wrap=True)
    overview.add_column("Status")
    overview.add_column("Time (s)", justify="right")
    overview.add_column("Cost (USD)", justify="right")
    overview.add_column("Scores")
    for stage in data["stages"]:
        overview.add_row(
            f"{stage['number']}. {stage['name']}",
            escape(_stage_status(stage)),
            _fmt(stage["wall_time_s"]),
            _fmt(stage["cost_usd"], 4),
            escape(_scores_text(stage["scores"])),
        )
    print_table(console, overview)

    for stage in data["stages"]:
        if stage["status"] == "skipped" or not (stage["iterations"] or stage["candidates"]):
            continue
        title = f"Stage {stage['number']}: {stage['title']} ({stage['status']}"
        title += f", {_fmt(stage['wall_time_s'])}s, ${stage['cost_usd']:.4f})"
        console.print()
        heading(console, title)
        if stage["iterations"]:
            render_iterations(console, stage)
        if stage.get("round_log"):
            render_rounds(console, stage)
        if stage["candidates"]:
            print_table(console, candidate_matrix(stage, data.get("selection", "weighted")))
        for note in stage["notes"]:
            console.print(f"note: {note}", markup=False, style="dim")

    if data["reviews"]:
        console.print()
        print_table(console, review_table(data["reviews"]))
    console.print()
    print_table(console, totals_table(data))


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level changes from `before` to `after`: ("=", words), ("-", removed words), ("+", added words)."""
    a, b = before.split(), after.split()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("-", " ".join(a[i1:i2])))
        if j2 > j1:
            out.append(("+", " ".join(b[j1:j2])))
    return out


def diff_text(changes: list[tuple[str, str]]) -> Text:
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


def render_rounds(console: Console, stage: dict[str, Any]) -> None:
    """Each round: its best score and the pick so far, the prompt as a word diff from the previous round's,
    and the questions its best candidate failed; then why the rounds stopped."""
    console.print(Text(f"{stage['title']}: rounds", style="bold"))
    for r in stage["round_log"]:
        head = f"round {r['round']}: best {_fmt(r['best_overall'])} ({r['best_key'] or '-'})"
        head += f", elements {_fmt(r['best_elements'])}, pick so far {r['best_so_far_key'] or '-'}"
        console.print(Text(head, style="bold"), soft_wrap=True)
        if r["human_feedback"]:
            print_line(console, f"  human feedback: {r['human_feedback']}")
        if r["changes"] is None:
            print_line(console, f"  prompt: {' '.join(r['prompt'].split())}")
        else:
            line = Text("  prompt: ")
            line.append_text(diff_text(r["changes"]) if any(op != "=" for op, _ in r["changes"]) else Text("(same)"))
            console.print(line, soft_wrap=True)
        if r["failed"]:
            print_line(console, f"  failed: {'; '.join(r['failed'])}", style="dim")
    if stage.get("stop_reason"):
        print_line(console, f"stopped: {stage['stop_reason']}")


def render_iterations(console: Console, stage: dict[str, Any]) -> None:
    """Every iteration of the writer/critic loop with its whole prompt and, from the second one of a scope
    on, the word-level change from the previous prompt; prompts are lines, never cut table cells."""
    console.print(Text(f"{stage['title']}: writer/critic iterations", style="bold"))
    for it in stage["iterations"]:
        scope = f"{it['scope']} " if it["scope"] else ""
        head = f"{scope}iteration {it['iteration']}: critic {_fmt(it['critic_score'])}"
        head += f", ${_fmt(it['cost_usd'], 4)}, {_fmt(it['latency_s'], 2)}s"
        console.print(Text(head, style="bold"), soft_wrap=True)
        if it["human_feedback"]:  # the person's words in full: they are why this iteration exists
            print_line(console, f"  human feedback: {it['human_feedback']}")
        print_line(console, f"  prompt: {' '.join(it['prompt'].split())}")
        if it.get("changes") is not None:
            line = Text("  changed: ")
            line.append_text(diff_text(it["changes"]) if it["changes"] else Text("(no change)"))
            console.print(line, soft_wrap=True)
        feedback = critic_feedback(it["feedback"])
        if feedback:
            print_line(console, f"  critic: {feedback}", style="dim")


def candidate_matrix(stage: dict[str, Any], selection: str = "weighted") -> Table:
    """Candidates as rows, every scorer as a column, overall, winner marked, cost and latency per row."""
    candidates = stage["candidates"]
    groups = sorted({c["group"] for c in candidates})
    if all(c["key"].startswith(c["group"]) for c in candidates):
        groups = groups[:1]  # the keys name their group already (clip_01_video_02)
    rounds = stage["rounds"]
    picking = stage["name"] in PICKING_STAGES
    caption = f"{WINNER} = pick" if picking else "keyframes: every one is used"
    caption += "; overall: " + ("mean rank, lower is better" if selection == "rank" else "weighted mean, 0-100")
    table = _table(title=f"{stage['title']}: candidates x scorers", title_justify="left", caption=caption)
    if picking:
        table.add_column(WINNER, justify="center", no_wrap=True)
    table.add_column("Candidate", no_wrap=True)
    if len(groups) > 1:
        table.add_column("Group", no_wrap=True)
    if rounds > 1:
        table.add_column("Rd", justify="right")
    for scorer in stage["scorers"]:
        table.add_column(scorer, justify="right")
    table.add_column("Overall", justify="right")
    table.add_column("Cost", justify="right")
    table.add_column("Lat. (s)", justify="right")
    table.add_column("File")
    previous: str | None = None
    for c in candidates:
        if previous is not None and c["group"] != previous:
            table.add_section()
        previous = c["group"]
        row: list[str | Text] = [WINNER if c["winner"] else ""] if picking else []
        row.append(escape(c["key"]))
        if len(groups) > 1:
            row.append(escape(c["group"]))
        if rounds > 1:
            row.append(str(c["round"]))
        row += [_fmt(c["scores"].get(s)) for s in stage["scorers"]]
        row += [
            _fmt(c["overall"], 2 if selection == "rank" else 1),
            f"{c['cost_usd']:.4f}",
            _fmt(c["latency_s"], 2),
        ]
        if c["status"] != "succeeded":
            row.append(Text(f"{c['status']}: {c['error'] or ''}".strip(": "), style="red"))
        elif not c["exists"]:
            row.append(Text("missing", style="red"))
        else:
            row.append("ok")
        table.add_row(*row, style="bold" if c["winner"] else None)
    return table


def review_table(reviews: list[dict[str, Any]]) -> Table:
    table = _table(title="human reviews", title_justify="left")
    table.add_column("At (UTC)", no_wrap=True)
    table.add_column("Stage")
    table.add_column("Decision")
    table.add_column("Feedback")
    for r in reviews:
        decision = r["action"] + (f" {r['choice']}" if r.get("choice") else "")
        table.add_row(_date(r["at"])[:16], escape(r["stage"]), escape(decision), escape(r.get("feedback") or "-"))
    return table


def totals_table(data: dict[str, Any]) -> Table:
    totals = data["totals"]
    table = _table(title="totals", title_justify="left", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_row("status", escape(data["status"]))
    table.add_row("stages done", f"{totals['stages_done']} of {totals['stages']}")
    table.add_row("cost", f"${totals['cost_usd']:.4f}" + (" (offline: nothing paid)" if data["offline"] else ""))
    table.add_row("time", f"{totals['time_s']:.1f}s")
    table.add_row("iterations", str(totals["iterations"]))
    failed = f" ({totals['candidates_failed']} failed)" if totals["candidates_failed"] else ""
    table.add_row("candidates", f"{totals['candidates']}{failed}")
    table.add_row("reviews", str(totals["reviews"]))
    if data.get("best_image"):
        table.add_row("best image", escape(data["best_image"]))
    if data.get("best_videos"):
        for label, path in zip(clip_labels(data["best_videos"]), data["best_videos"], strict=True):
            table.add_row(f"best video ({label})", escape(path))
    elif data.get("best_video"):
        table.add_row("best video", escape(data["best_video"]))
    if data.get("final_video"):
        join = data.get("final_video_join") or {}
        how = {"stream_copy": "stream copy", "reencode": "re-encoded"}.get(join.get("mode", ""), "")
        facts = f" ({join['frames']} frames, {join['duration_s']:.2f}s, {how})" if join.get("frames") else ""
        table.add_row("final video", escape(data["final_video"] + facts))
    if totals["missing_files"]:
        table.add_row("missing files", Text(", ".join(totals["missing_files"]), style="red"))
    return table


# ------------------------------------------------------------------------------------------------
# two runs side by side


def _delta(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return round(float(b) - float(a), 6)
    return None


def _pick_of(stage: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a stage settled on: its winner(s) for candidate stages, its final prompt(s) for prompt stages."""
    if stage is None or stage["status"] == "skipped":
        return None
    if stage["name"] in PICKING_STAGES:
        return dict(sorted(stage["winners"].items())) or None
    outputs = stage["outputs"]
    if outputs.get("clip_prompts"):
        return {f"clip {c.get('clip', i + 1)}": c.get("motion_prompt") for i, c in enumerate(outputs["clip_prompts"])}
    for key in ("final_prompt", "video_prompt", "image_prompt"):
        if outputs.get(key):
            return {"prompt": outputs[key]}
    return None


def _pick_hashes(run_dir: Path, state: RunState, name: str) -> list[str]:
    if not state.has_stage(name):
        return []
    record = state.stage(name)
    keys = set(_winners(record).values())
    return sorted(i.artifact.sha256 for i in record.items if i.key in keys and i.artifact is not None)


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """Run B against run A, stage by stage (matched by name): B - A deltas and pick changes."""
    dir_a, state_a = load_state(a)
    dir_b, state_b = load_state(b)
    data_a, data_b = build_inspection(dir_a, state_a), build_inspection(dir_b, state_b)
    by_a = {s["name"]: s for s in data_a["stages"]}
    by_b = {s["name"]: s for s in data_b["stages"]}
    names = [s["name"] for s in data_a["stages"]] + [n for n in by_b if n not in by_a]
    stages = []
    for name in names:
        sa, sb = by_a.get(name), by_b.get(name)
        keys: list[str] = []
        for s in (sa, sb):
            for key in (s or {}).get("scores", {}):
                if key not in keys:
                    keys.append(key)
        scores = {
            key: {
                "a": (sa or {}).get("scores", {}).get(key),
                "b": (sb or {}).get("scores", {}).get(key),
                "delta": _delta((sa or {}).get("scores", {}).get(key), (sb or {}).get("scores", {}).get(key)),
            }
            for key in keys
        }
        pick_a, pick_b = _pick_of(sa), _pick_of(sb)
        same_content = (
            name in PICKING_STAGES
            and bool(_pick_hashes(dir_a, state_a, name))
            and _pick_hashes(dir_a, state_a, name) == _pick_hashes(dir_b, state_b, name)
        )
        stages.append(
            {
                "name": name,
                "number": (sa or sb or {}).get("number"),
                "status": {"a": sa["status"] if sa else None, "b": sb["status"] if sb else None},
                "scores": scores,
                "cost_usd": _triple(sa, sb, "cost_usd"),
                "wall_time_s": _triple(sa, sb, "wall_time_s"),
                "iterations": _triple(
                    {"n": len(sa["iterations"])} if sa else None, {"n": len(sb["iterations"])} if sb else None, "n"
                ),
                "pick": {"a": pick_a, "b": pick_b},
                "pick_changed": None if pick_a is None or pick_b is None else pick_a != pick_b,
                "pick_same_file": same_content,
            }
        )
    return {
        "format": COMPARE_FORMAT,
        "schema_version": INSPECT_SCHEMA_VERSION,
        "a": _run_head(data_a),
        "b": _run_head(data_b),
        "stages": stages,
        "totals": {
            "cost_usd": _triple(data_a["totals"], data_b["totals"], "cost_usd"),
            "time_s": _triple(data_a["totals"], data_b["totals"], "time_s"),
            "iterations": _triple(data_a["totals"], data_b["totals"], "iterations"),
            "candidates": _triple(data_a["totals"], data_b["totals"], "candidates"),
        },
    }


def _triple(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> dict[str, Any]:
    va = a.get(key) if a else None
    vb = b.get(key) if b else None
    return {"a": va, "b": vb, "delta": _delta(va, vb)}


def _run_head(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: data[k] for k in ("run_id", "run_dir", "workflow", "backend", "offline", "status", "created_at", "options")
    } | {"best_image": data["best_image"], "best_videos": data["best_videos"] or [data["best_video"]]}


def _pick_text(pick: dict[str, Any] | None) -> str:
    if pick is None:
        return "-"
    if all(k == "prompt" or k.startswith("clip ") for k in pick):  # prompts: their start and end
        width = 40 if len(pick) == 1 else 24
        return "\n".join(
            excerpt(str(v), width) if k == "prompt" else f"{k}: {excerpt(str(v), width)}" for k, v in pick.items()
        )
    return "\n".join(str(v) if k in ("", "all") else f"{k}: {v}" for k, v in pick.items())


def render_compare(console: Console, data: dict[str, Any]) -> None:
    a, b = data["a"], data["b"]
    print_line(console, f"A: {a['run_id']}  {a['workflow']}  {a['backend']}  {a['status']}  {a['run_dir']}")
    print_line(console, f"B: {b['run_id']}  {b['workflow']}  {b['backend']}  {b['status']}  {b['run_dir']}")
    changed = _option_changes(a.get("options") or {}, b.get("options") or {})
    if changed:
        print_line(console, "options changed: " + ", ".join(changed))
    console.print("deltas are B - A", markup=False, style="dim")
    for stage in data["stages"]:
        table = _table(title=f"{stage['number']}. {stage['name']}", title_justify="left")
        table.add_column("", style="bold", no_wrap=True)
        table.add_column("A", justify="right")
        table.add_column("B", justify="right")
        table.add_column("Δ (B-A)", justify="right")
        table.add_row("status", escape(stage["status"]["a"] or "-"), escape(stage["status"]["b"] or "-"), "")
        for key, v in stage["scores"].items():
            places = 0 if key in COUNT_FIGURES else 1
            table.add_row(
                escape(key),
                _fmt(v["a"], places),
                _fmt(v["b"], places),
                _delta_text(shown_delta(v["a"], v["b"], places), places, higher_is_better=True),
            )
        for label, key, digits in (("cost (USD)", "cost_usd", 4), ("time (s)", "wall_time_s", 1)):
            v = stage[key]
            delta = shown_delta(v["a"], v["b"], digits)
            table.add_row(label, _fmt(v["a"], digits), _fmt(v["b"], digits), _delta_text(delta, digits))
        if stage["iterations"]["a"] or stage["iterations"]["b"]:
            v = stage["iterations"]
            table.add_row("iterations", str(v["a"] or 0), str(v["b"] or 0), _delta_text(v["delta"], 0))
        prompts = stage["name"] not in PICKING_STAGES
        if prompts and (stage["pick"]["a"] or stage["pick"]["b"]):  # the prompts follow the table, whole
            table.add_row("prompt", "", "", _pick_verdict(stage))
        else:
            pick_a, pick_b = _pick_text(stage["pick"]["a"]), _pick_text(stage["pick"]["b"])
            table.add_row("pick", escape(pick_a), escape(pick_b), _pick_verdict(stage))
        print_table(console, table)
        if prompts:
            render_prompt_changes(console, stage["pick"]["a"], stage["pick"]["b"])
    totals = _table(title="totals", title_justify="left")
    totals.add_column("", style="bold")
    totals.add_column("A", justify="right")
    totals.add_column("B", justify="right")
    totals.add_column("Δ (B-A)", justify="right")
    for label, key, digits in (
        ("cost (USD)", "cost_usd", 4),
        ("time (s)", "time_s", 1),
        ("iterations", "iterations", 0),
        ("candidates", "candidates", 0),
    ):
        v = data["totals"][key]
        delta = shown_delta(v["a"], v["b"], digits)
        totals.add_row(label, _fmt(v["a"], digits), _fmt(v["b"], digits), _delta_text(delta, digits))
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


def _pick_verdict(stage: dict[str, Any]) -> Text | str:
    if stage["pick_changed"] is None:
        return ""
    if not stage["pick_changed"]:
        return "same"
    if stage["pick_same_file"]:
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
