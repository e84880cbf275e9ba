"""`fbloop inspect BATCH_DIR`: the batch's leaderboard (one row per prompt, sortable by any score) and its
best and worst prompts as a table, and an HTML grid of each prompt's picked image and video.

Only rendering: the data is the typed `BatchInspectReport` built by `workflow/batch_leaderboard.py`, the same
report `--json` prints. Nothing is written except the HTML file asked for.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from feedback_cli.files import atomic_write_bytes
from feedback_cli.workflow.batch_leaderboard import BatchInspectReport


def _fmt(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f}"


def _excerpt(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def short_header(column: str) -> str:
    """`image_generation.best_overall` -> `image overall`: the table must fit a terminal."""
    stage, _, name = column.partition(".")
    if not name:
        return column
    name = name.removeprefix("best_").removeprefix("prompt_")
    from feedback_cli.stages.registry import get as get_stage

    try:
        label = get_stage(stage).label()
    except KeyError:  # a stage this version does not know: its own name
        label = stage
    return f"{label} {name}"


def render_batch(console: Console, data: BatchInspectReport) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(data.counts.items()))
    cap = f" of ${data.max_cost:.4f}" if data.max_cost is not None else ""
    console.print(
        f"batch {data.batch_id} ({data.executor}): {data.rows_total} prompts, {counts}; "
        f"${data.total_cost_usd:.4f}{cap}, {data.wall_time_s:.1f}s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    key = data.sort_key
    others = [c for c in data.score_columns if c != key and c.endswith("overall")][:2]
    table = Table(title=f"leaderboard by {key or '(no scores yet)'}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    if key:
        table.add_column(short_header(key), justify="right", style="bold", no_wrap=True, min_width=7)
    for column in others:
        table.add_column(short_header(column), justify="right", no_wrap=True, min_width=7)
    table.add_column("cost $", justify="right", no_wrap=True)
    table.add_column("time s", justify="right", no_wrap=True)
    table.add_column("prompt", no_wrap=True, overflow="ellipsis", min_width=12)
    for row in data.leaderboard:
        cells = [str(row.rank or "-"), row.id, row.status]
        if key:
            cells.append(_fmt(row.sort_value))
        cells.extend(_fmt(row.scores.get(c)) for c in others)
        cells.extend([f"{row.cost_usd:.4f}", f"{row.time_s:.1f}", _excerpt(row.prompt)])
        table.add_row(*cells)
    console.print(table)
    by_id = {r.id: r for r in data.leaderboard}
    for label, ids in (("best", data.best), ("worst", data.worst)):
        if ids:
            names = ", ".join(f"{i} ({_fmt(by_id[i].sort_value)})" for i in ids)
            console.print(f"{label}: {names}", markup=False, highlight=False, soft_wrap=True)
    for notice in data.notices:
        console.print(f"note: {notice}", markup=False, highlight=False, soft_wrap=True)


def _media_cell(root: Path, relative: str | None, report_dir: Path) -> str:
    from feedback_cli.ui.html_report import image_thumbnail, video_poster
    from feedback_cli.ui.inspect_view import relative_to

    if not relative:
        return '<div class="none">no pick</div>'
    path = root / relative
    if not path.is_file():
        return f'<div class="none">missing: {html.escape(relative)}</div>'
    link = html.escape(relative_to(path, report_dir), quote=True)
    is_video = path.suffix.lower() in (".mp4", ".webm", ".mov")
    thumb = video_poster(path) if is_video else image_thumbnail(path)
    label = "video" if is_video else "image"
    if thumb is None:
        return f'<a href="{link}">{label}</a>'
    return f'<a href="{link}"><img alt="{label}" src="{thumb}"></a>'


def render_batch_html(data: BatchInspectReport, report_dir: Path) -> str:
    root = Path(data.batch_dir)
    key = data.sort_key
    cards = []
    for row in data.leaderboard:
        scores = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in sorted(row.scores.items()))
        cards.append(
            f'<div class="card {html.escape(row.status)}">'
            f"<h3>#{row.rank or '-'} {html.escape(row.id)} <small>{html.escape(row.status)}</small></h3>"
            f'<p class="prompt">{html.escape(row.prompt)}</p>'
            f'<div class="media">{_media_cell(root, row.best_image, report_dir)}'
            f"{_media_cell(root, row.best_video, report_dir)}</div>"
            f"<p>{html.escape(key or '')}: <b>{_fmt(row.sort_value)}</b> · ${row.cost_usd:.4f} · "
            f"{row.time_s:.1f}s</p><details><summary>scores</summary><table>{scores}</table></details>"
            + (f'<p class="error">{html.escape(row.error)}</p>' if row.error else "")
            + "</div>"
        )
    counts = ", ".join(f"{n} {html.escape(s)}" for s, n in sorted(data.counts.items()))
    style = (
        "body{font-family:system-ui,sans-serif;margin:1.5em}.grid{display:grid;"
        "grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1em}.card{border:1px solid #ccc;"
        "border-radius:6px;padding:.7em}.card.failed,.card.budget_exceeded{border-color:#c44}.media{display:flex;"
        "gap:.4em}.media img{max-width:140px;border-radius:4px}.prompt{color:#333}.none{color:#999}"
        ".error{color:#a00}small{color:#666;font-weight:normal}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>fbloop batch {html.escape(data.batch_id)}</title><style>{style}</style></head><body>"
        f"<h1>Batch {html.escape(data.batch_id)}</h1><p>{data.rows_total} prompts: {counts}; "
        f"${data.total_cost_usd:.4f}; sorted by {html.escape(key or '-')}</p>"
        f'<div class="grid">{"".join(cards)}</div></body></html>\n'
    )


def write_batch_html(data: BatchInspectReport, target: Path) -> Path:
    target = target.expanduser()
    if target.is_dir():
        target = target / f"fbloop_batch_{data.batch_id}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, render_batch_html(data, target.resolve().parent).encode("utf-8"))
    return target
