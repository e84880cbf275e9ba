"""`fbloop inspect RUN --html FILE`: one self-contained HTML file that can be mailed to someone.
`fbloop inspect A --compare B --html FILE`: the same for two runs side by side.

Renders the typed report that `fbloop inspect RUN --json` prints (`workflow/inspect_report.py`). The
candidates of a stage are a grid of cards (media, every score, cost, latency, seed), the rounds of each loop
(the stage's, or each storyboard clip's) show the prompt's word diff, the failed questions, the best score and
the pick, the storyboard shows each clip's start and end frame, a panel lists the options and seeds, and a
table the cost of every call. Nothing is wider than the page: long words and paths break, and the few wide
tables scroll inside their own box (checked at 1280 and 390 px).

No external resource: the CSS is inline, every image is a downscaled JPEG thumbnail embedded as a `data:`
URI, small videos are embedded too (with a poster frame) and larger ones are linked by their path relative
to the report. Every score, prompt and iteration is in it, with cost and time per stage; offline runs are
marked OFFLINE at the top.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from feedback_cli.files import atomic_write_bytes
from feedback_cli.ui.inspect_view import prompt_pairs, relative_to, shown_delta
from feedback_cli.ui.summary import clip_labels, places, score_text
from feedback_cli.workflow.inspect_report import (
    CompareReport,
    InspectReport,
    RoundLoop,
    StageReport,
    WordChange,
    word_diff,
)
from feedback_cli.workflow.safe_text import printable

THUMB_PX = 320
#: videos up to this size are embedded (the report stays mailable); larger ones are linked
EMBED_VIDEO_BYTES = 2_000_000
EMBED_VIDEO_TOTAL = 20_000_000

CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --win: #fff4cc; --bad: #b3261e; --ok: #1e7b34; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px; max-width: 1400px; overflow-wrap: break-word; }
@media (max-width: 600px) { body { padding: 10px; } }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta { color: var(--muted); }
.offline { background: #fff0c2; border: 1px solid #e0b400; padding: 8px 12px; margin: 12px 0; font-weight: 600; }
.error { color: var(--bad); font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; max-width: 100%; }
code { overflow-wrap: anywhere; word-break: break-all; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f5f8; }
.num.ok { color: var(--ok); } .num.bad { color: var(--bad); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.winner td { background: var(--win); font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: #e8ecf1; }
.badge.win { background: #f5c400; color: #000; }
.missing, .failed { color: var(--bad); font-weight: 600; }
img.thumb { display: block; max-width: min(220px, 100%); max-height: 160px; border: 1px solid var(--line); }
video.clip { display: block; max-width: min(260px, 100%); border: 1px solid var(--line); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; margin: 8px 0 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px; min-width: 0; }
.card.winner { background: var(--win); border-color: #e0b400; }
.card img.thumb, .card video.clip { width: 100%; max-width: 100%; max-height: none; height: auto; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 0 8px; margin: 6px 0 0; font-size: 13px; }
.card dt { color: var(--muted); } .card dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.card .file { font-size: 12px; }
.iteration { border-left: 3px solid var(--line); padding: 2px 10px; margin: 10px 0; }
.iteration .head { font-weight: 600; } .iteration .criteria { font-size: 12px; color: var(--muted); }
ins { background: #d4f4dc; text-decoration: none; } del { background: #fadbd8; }
.frames { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.frames figure { margin: 0; min-width: 0; } .frames figcaption { color: var(--muted); font-size: 12px; }
.sides { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(280px, 100%), 1fr)); gap: 16px; }
.sides > div { min-width: 0; }
table.options td, table.seeds td { overflow-wrap: anywhere; }
.prompt { white-space: pre-wrap; max-width: 900px; }
td ul { margin: 0; padding-left: 16px; }
td.feedback { min-width: 220px; } td.criteria { min-width: 160px; font-size: 12px; color: var(--muted); }
.wide { overflow-x: auto; }
details > summary { cursor: pointer; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
.gallery figure { margin: 0; } .gallery figcaption { color: var(--muted); font-size: 12px; }
footer { color: var(--muted); margin-top: 32px; font-size: 12px; }
"""


def _e(value: Any) -> str:
    """Escaped for HTML, and without the control, bidi and zero-width characters a page must not carry."""
    return html.escape(printable("" if value is None else str(value)), quote=True)


def _num(value: Any, digits: int = 1) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_thumbnail(path: Path, px: int = THUMB_PX) -> str | None:
    """A downscaled JPEG of an image as a data: URI, or None when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            return _jpeg_uri(image, px)
    except (OSError, ValueError):
        return None


def _jpeg_uri(image: Any, px: int) -> str:
    image = image.convert("RGB")
    image.thumbnail((px, px))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80, optimize=True)
    return _data_uri(buffer.getvalue(), "image/jpeg")


def video_poster(path: Path, px: int = THUMB_PX) -> str | None:
    """The first frame of a video, downscaled, as a data: URI (None when it cannot be decoded)."""
    try:
        import av

        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return _jpeg_uri(frame.to_image(), px)
    except Exception:  # any decode problem: the report shows a link instead of a poster
        return None
    return None


class _Media:
    """Renders one file as embedded media, keeping the total of embedded video bytes bounded."""

    def __init__(self, run_dir: Path, report_dir: Path) -> None:
        self.run_dir = run_dir
        self.report_dir = report_dir
        self.embedded_video_bytes = 0

    def link(self, relative: str) -> str:
        return relative_to(self.run_dir / relative, self.report_dir)

    def html(self, relative: str | None, kind: str | None, exists: bool, alt: str) -> str:
        if not relative:
            return '<span class="missing">no file</span>'
        if not exists:
            return f'<span class="missing">missing</span><br><code>{_e(relative)}</code>'
        path = self.run_dir / relative
        href = _e(self.link(relative))
        if kind == "video" or path.suffix.lower() in (".mp4", ".webm", ".mov"):
            poster = video_poster(path)
            size = path.stat().st_size
            if size <= EMBED_VIDEO_BYTES and self.embedded_video_bytes + size <= EMBED_VIDEO_TOTAL:
                self.embedded_video_bytes += size
                src = _data_uri(path.read_bytes(), "video/mp4")
                note = "embedded"
            else:
                src = self.link(relative)
                note = "linked"
            poster_attr = f' poster="{poster}"' if poster else ""
            return (
                f'<video class="clip" controls muted preload="metadata"{poster_attr} src="{_e(src)}"></video>'
                f'<a href="{href}">{_e(relative)}</a> <span class="meta">({note})</span>'
            )
        thumb = image_thumbnail(path)
        if thumb is None:
            return f'<a href="{href}">{_e(relative)}</a> <span class="missing">(unreadable image)</span>'
        return f'<img class="thumb" alt="{_e(alt)}" src="{thumb}"><a href="{href}">{_e(relative)}</a>'


def render_html(report: InspectReport, report_dir: Path) -> str:
    """The report as one HTML string; links are relative to `report_dir` (where the file will be)."""
    run_dir = Path(report.run_dir)
    media = _Media(run_dir, report_dir)
    out: list[str] = []
    title = f"fbloop run {report.run_id}"
    out.append(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
    )
    out.append(f'<header><h1 id="title">{_e(title)}</h1>')
    out.append(
        f'<div class="meta">workflow <b>{_e(report.workflow)}</b> · backend <b>{_e(report.backend)}</b>'
        f' · status <b id="status">{_e(report.status)}</b> · created {_e(report.created_at)}'
        f" · updated {_e(report.updated_at)} · fbloop {_e(report.fbloop_version)}</div>"
    )
    if report.offline:
        label = str(report.label or "OFFLINE: made by fbloop's offline backend")
        label = label if label.upper().startswith("OFFLINE") else f"OFFLINE: {label}"
        out.append(f'<div class="offline" id="offline">{_e(label)}</div>')
    if report.error:
        out.append(f'<p class="error">error: {_e(report.error)}</p>')
    out.append("</header>")

    out.append('<section id="overview"><h2>Overview</h2>')
    for label, prompt in (
        ("Starting prompt", report.source_prompt),
        ("Final image prompt", report.final_image_prompt),
        ("Final video prompt", report.final_video_prompt),
    ):
        if prompt:
            out.append(f'<h3>{label}</h3><div class="prompt">{_e(prompt)}</div>')
    gallery = []
    for label, path in (
        ("prompt image", report.prompt_image),
        ("input image", report.input_image),
        ("best image", report.best_image),
    ):
        if path:
            gallery.append((label, path, "image", (run_dir / path).is_file()))
    if report.final_video:
        gallery.append(("final video", report.final_video, "video", (run_dir / report.final_video).is_file()))
    if report.best_videos:
        for label, path in zip(clip_labels(report.best_videos), report.best_videos, strict=True):
            gallery.append((f"best video ({label})", path, "video", (run_dir / path).is_file()))
    elif report.best_video:
        gallery.append(("best video", report.best_video, "video", (run_dir / report.best_video).is_file()))
    if gallery:
        out.append('<div class="gallery">')
        for label, path, kind, exists in gallery:
            out.append(f"<figure>{media.html(path, kind, exists, label)}<figcaption>{_e(label)}</figcaption></figure>")
        out.append("</div>")
    out.append(_totals(report))
    out.append(_stage_overview(report))
    out.append("</section>")
    out.append(_options_panel(report))

    for stage in report.stages:
        out.append(_stage_section(stage, report, media))
    if report.reviews:
        out.append('<section id="reviews"><h2>Human reviews</h2><table><tr>')
        out.append("<th>At (UTC)</th><th>Stage</th><th>Decision</th><th>Choice</th><th>Feedback</th></tr>")
        for r in report.reviews:
            out.append(
                f"<tr><td>{_e(r.at)}</td><td>{_e(r.stage)}</td><td>{_e(r.action)}</td>"
                f"<td>{_e(r.choice or '')}</td><td>{_e(r.feedback or '')}</td></tr>"
            )
        out.append("</table></section>")
    out.append(_calls(report))
    if report.notices:
        out.append("<section id='notices'><h2>Notices</h2><ul>")
        out.extend(f"<li>{_e(n)}</li>" for n in report.notices)
        out.append("</ul></section>")
    out.append(
        f"<footer>Report of run folder <code>{_e(report.run_dir)}</code>. Scores are 0-100 (raw values in the"
        " tooltips). Made by <code>fbloop inspect --html</code>.</footer></body></html>\n"
    )
    return "".join(out)


def _totals(report: InspectReport) -> str:
    t = report.totals
    rows = [
        ("Status", report.status),
        ("Stages done", f"{t.stages_done} of {t.stages}"),
        ("Total cost", f"${t.cost_usd:.4f}" + (" (offline: nothing paid)" if report.offline else "")),
        ("Total time", f"{t.time_s:.1f} s"),
        ("Prompt iterations", t.iterations),
        ("Candidates", f"{t.candidates}" + (f" ({t.candidates_failed} failed)" if t.candidates_failed else "")),
        ("Human reviews", t.reviews),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    if t.missing_files:
        missing = ", ".join(_e(p) for p in t.missing_files)
        body += f'<tr><th>Missing files</th><td class="missing">{missing}</td></tr>'
    return f'<div class="wide"><table id="totals">{body}</table></div>'


def _stage_overview(report: InspectReport) -> str:
    rows = [
        "<div class='wide'><table id='stages'><tr><th>Stage</th><th>Status</th><th>Time (s)</th><th>Cost (USD)</th>"
        "<th>Scores</th></tr>"
    ]
    for s in report.stages:
        status = s.status + (f": {s.skip_reason}" if s.skip_reason else "")
        scores = ", ".join(f"{k}={score_text(s.name, k, v)}" for k, v in s.scores.items() if v is not None)
        rows.append(
            f'<tr><td><a href="#stage-{_e(s.name)}">{s.number}. {_e(s.name)}</a></td><td>{_e(status)}</td>'
            f'<td class="num">{_num(s.wall_time_s)}</td><td class="num">{_num(s.cost_usd, 4)}</td>'
            f"<td>{_e(scores)}</td></tr>"
        )
    rows.append("</table></div>")
    return "".join(rows)


def _stage_section(stage: StageReport, report: InspectReport, media: _Media) -> str:
    out = [f'<section class="stage" id="stage-{_e(stage.name)}">']
    out.append(f"<h2>Stage {stage.number}: {_e(stage.title)}</h2>")
    status = stage.status + (f": {stage.skip_reason}" if stage.skip_reason else "")
    out.append(
        f'<div class="meta">status <b>{_e(status)}</b> · time {_num(stage.wall_time_s)} s'
        f" · cost ${stage.cost_usd:.4f} · attempts {stage.attempts}</div>"
    )
    if stage.error:
        out.append(f'<p class="error">{_e(stage.error)}</p>')
    if stage.scores:
        scores = ", ".join(f"{k} = {score_text(stage.name, k, v)}" for k, v in stage.scores.items() if v is not None)
        out.append(f"<p>scores: {_e(scores)}</p>")
    if stage.iterations:
        out.append(_iterations(stage))
    for loop in stage.round_loops:
        if loop.rounds:
            out.append(_rounds(stage, loop))
    if stage.candidates:
        out.append(_matrix(stage, report.selection, media))
    out.append(_storyboard_frames(stage, media))
    outputs = stage.outputs
    for key in ("final_prompt", "image_prompt", "video_prompt"):
        if isinstance(outputs.get(key), str):
            out.append(f'<h3>{_e(key.replace("_", " "))}</h3><div class="prompt">{_e(outputs[key])}</div>')
    for clip in outputs.get("clip_prompts") or []:
        if isinstance(clip, dict) and clip.get("motion_prompt"):
            out.append(
                f"<h3>clip {_e(clip.get('clip'))} motion prompt</h3>"
                f'<div class="prompt">{_e(clip["motion_prompt"])}</div>'
            )
    files = [f for f in stage.files if f.path not in frame_paths(stage)]  # the frames are shown above
    if files:
        out.append("<h3>Files</h3><ul>")
        for f in files:
            if f.exists:
                out.append(f'<li><a href="{_e(media.link(f.path))}">{_e(f.path)}</a></li>')
            else:
                out.append(f'<li><code>{_e(f.path)}</code> <span class="missing">missing</span></li>')
        out.append("</ul>")
    if stage.notes:
        out.append("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in stage.notes) + "</ul>")
    out.append("</section>")
    return "".join(out)


def _diff_html(changes: list[WordChange]) -> str:
    parts = []
    for op, words in changes:
        if op == "-":
            parts.append(f"<del>{_e(words)}</del>")
        elif op == "+":
            parts.append(f"<ins>{_e(words)}</ins>")
        else:
            parts.append(_e(words))
    return " ".join(parts)


def _rounds(stage: StageReport, loop: RoundLoop) -> str:
    """One round loop (issue 13), the stage's or a storyboard clip's: each round's best score and the pick so
    far, the prompt as a word diff from the previous round's, the questions its best candidate failed; then
    why the rounds stopped and the loop's pick."""
    if loop.scope:  # a storyboard clip's loop: its group, e.g. clip_01
        out = [f"<h3 id='rounds-{_e(stage.name)}-{_e(loop.scope)}'>Rounds of {_e(loop.scope)}</h3>"]
    else:
        out = ["<h3>Rounds</h3>"]
    out.append("<div class='iterations'>")
    for r in loop.rounds:
        out.append(
            f"<div class='iteration'><div class='head'>round {_e(r.round)} · best {_num(r.best_overall)}"
            f" ({_e(r.best_key or '-')}) · elements {_num(r.best_elements)}"
            f" · pick so far {_e(r.best_so_far_key or '-')}</div>"
        )
        if r.error:
            out.append(f"<div class='failed'>{_e(r.error)}</div>")
        if r.human_feedback:
            out.append(f"<div>human feedback: <b>{_e(r.human_feedback)}</b></div>")
        if r.changes:
            out.append(f"<div class='diff'>prompt: {_diff_html(r.changes)}</div>")
        else:
            out.append(f"<div class='prompt'>{_e(r.prompt)}</div>")
        if r.failed:
            out.append("<ul class='feedback'>" + "".join(f"<li>failed: {_e(q)}</li>" for q in r.failed) + "</ul>")
        out.append("</div>")
    if loop.stop_reason:
        out.append(f"<p>stopped: {_e(loop.stop_reason)}</p>")
    if loop.scope and loop.pick:  # the stage's own pick is highlighted among its candidates
        out.append(f"<p>pick: <b>{_e(loop.pick)}</b></p>")
    out.append("</div>")
    return "".join(out)


def _iterations(stage: StageReport) -> str:
    """Each iteration as a block: the whole prompt, its word diff from the previous one, the critic's view."""
    out = ["<h3>Writer/critic iterations</h3><div class='iterations'>"]
    for it in stage.iterations:
        scope = f"{_e(it.scope)} " if it.scope else ""
        out.append(
            f"<div class='iteration'><div class='head'>{scope}iteration {it.iteration}"
            f" · critic {_num(it.critic_score)} · ${_num(it.cost_usd, 4)} · {_num(it.latency_s, 2)} s</div>"
        )
        if it.human_feedback:
            out.append(f"<div>human feedback: <b>{_e(it.human_feedback)}</b></div>")
        out.append(f"<div class='prompt'>{_e(it.prompt)}</div>")
        if it.changes:
            out.append(f"<div class='diff'>changed: {_diff_html(it.changes)}</div>")
        criteria = " · ".join(f"{_e(k)}&nbsp;{_num(v, 0)}" for k, v in it.criteria.items())
        if criteria:
            out.append(f"<div class='criteria'>{criteria}</div>")
        if it.feedback:
            out.append("<ul class='feedback'>" + "".join(f"<li>{_e(f)}</li>" for f in it.feedback) + "</ul>")
        if it.rationale:
            out.append(f"<details><summary>why</summary>{_e(it.rationale)}</details>")
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _matrix(stage: StageReport, selection: str, media: _Media) -> str:
    """The candidates side by side: one card each (media, every score, overall, cost, latency, seed, file)."""
    picking = stage.picking
    overall_note = "mean rank, lower is better" if selection == "rank" else "weighted mean, 0-100"
    title = "Candidates" + (" (highlighted: the pick)" if picking else " (every keyframe is used)")
    out = [f"<h3>{title}</h3><p class='meta'>overall: {_e(overall_note)}</p>"]
    groups = {x.group for x in stage.candidates}
    previous: str | None = None
    for c in stage.candidates:
        if c.group != previous:
            if previous is not None:
                out.append("</div>")
            if c.group and len(groups) > 1:
                out.append(f"<h4>{_e(c.group)}</h4>")
            out.append("<div class='grid'>")
            previous = c.group
        badge = ' <span class="badge win">pick</span>' if c.winner else ""
        status = "" if c.status == "succeeded" else f'<div class="failed">{_e(c.status)}</div>'
        error = f'<div class="failed">{_e(c.error)}</div>' if c.error else ""
        rows = []
        if stage.rounds > 1:
            rows.append(("round", str(c.round), ""))
        for s in stage.scorers:
            rows.append((s, _num(c.scores.get(s)), f"raw {c.raw_scores.get(s)}"))
        rows.append(("overall", _num(c.overall, 2 if selection == "rank" else 1), overall_note))
        rows.append(("cost (USD)", _num(c.cost_usd, 4), ""))
        rows.append(("latency (s)", _num(c.latency_s, 2), ""))
        rows.append(("seed", "-" if c.seed is None else str(c.seed), ""))
        facts = "".join(
            f"<dt>{_e(k)}</dt><dd{f' title={chr(34)}{_e(t)}{chr(34)}' if t else ''}>{_e(v)}</dd>" for k, v, t in rows
        )
        out.append(
            f"<div class='card {'winner' if c.winner else 'candidate'}' id='{_e(stage.name)}-{_e(c.key)}'>"
            f"<div><b>{_e(c.key)}</b>{badge}</div>{status}{error}"
            f"<div class='file'>{media.html(c.path, c.kind, c.exists, c.key)}</div>"
            f"<dl>{facts}</dl></div>"
        )
    if previous is not None:
        out.append("</div>")
    return "".join(out)


def _storyboard_frames(stage: StageReport, media: _Media) -> str:
    """Each clip's start and end frame as images, the clip's prompt under them."""
    clips = [c for c in stage.outputs.get("clips") or [] if isinstance(c, dict)]
    if not clips:
        return ""
    run_dir = media.run_dir
    out = ["<h3>Start and end frames</h3>"]
    for clip in clips:
        out.append(f"<h4>clip {_e(clip.get('clip'))}</h4><div class='frames'>")
        for label, key in (("start", "start_frame"), ("end", "end_frame")):
            path = clip.get(key)
            if isinstance(path, str):
                exists = (run_dir / path).is_file()
                figure = media.html(path, "image", exists, f"clip {clip.get('clip')} {label}")
                out.append(f"<figure>{figure}<figcaption>{label} frame</figcaption></figure>")
        out.append("</div>")
        if clip.get("prompt"):
            out.append(f"<div class='prompt meta'>{_e(clip['prompt'])}</div>")
    return "".join(out)


def frame_paths(stage: StageReport) -> set[str]:
    return {
        str(clip.get(key))
        for clip in stage.outputs.get("clips") or []
        if isinstance(clip, dict)
        for key in ("start_frame", "end_frame")
        if clip.get(key)
    }


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None or value == "" else str(value)


def _options_panel(report: InspectReport) -> str:
    """The options the run was made with, its providers, and the seed of every candidate."""
    options = {k: v for k, v in report.options.items() if k != "schema_version"}
    rows = "".join(f"<tr><th>{_e(k.replace('_', ' '))}</th><td>{_e(_value(v))}</td></tr>" for k, v in options.items())
    for role, provider in report.providers.items():
        rows += f"<tr><th>{_e(role)} provider</th><td>{_e(_value(provider))}</td></tr>"
    seeds = []
    for stage in report.stages:
        keyed = [f"{_e(c.key)}&nbsp;{_e(c.seed)}" for c in stage.candidates if c.seed is not None]
        if keyed:
            seeds.append(f"<tr><th>{_e(stage.name)}</th><td>{' · '.join(keyed)}</td></tr>")
    out = ['<section id="options"><h2>Options and seeds</h2><div class="sides">']
    out.append(f"<div><h3>Options</h3><div class='wide'><table class='options'>{rows}</table></div></div>")
    if seeds:
        out.append(f"<div><h3>Seeds</h3><div class='wide'><table class='seeds'>{''.join(seeds)}</table></div></div>")
    out.append("</div></section>")
    return "".join(out)


def _calls(report: InspectReport) -> str:
    """Every call in the cost ledger with what it cost."""
    calls = report.calls
    if not calls:
        return ""
    head = "<tr><th>#</th><th>Stage</th><th>What</th><th>Model</th><th>Provider</th><th>Cost (USD)</th>"
    head += "<th>Figures</th></tr>"
    rows = [f'<section id="calls"><h2>Cost per call</h2><div class="wide"><table class="calls">{head}']
    for index, call in enumerate(calls, start=1):
        figures = ", ".join(f"{_e(k.replace('_', ' '))} {_e(v)}" for k, v in call.detail.items())
        estimated = " (estimate)" if call.estimated else ""
        rows.append(
            f"<tr><td class='num'>{index}</td><td>{_e(call.stage)}</td><td>{_e(call.what)}</td>"
            f"<td>{_e(call.model)}</td><td>{_e(call.provider)}</td>"
            f"<td class='num'>{call.usd:.4f}{estimated}</td><td>{figures}</td></tr>"
        )
    total = sum(call.usd for call in calls)
    rows.append(f"<tr><th colspan='5'>total</th><td class='num'>{total:.4f}</td><td></td></tr>")
    rows.append("</table></div></section>")
    return "".join(rows)


# -- two runs ---------------------------------------------------------------------------------------


def _delta_cell(a: Any, b: Any, digits: int, higher_is_better: bool | None = None) -> str:
    delta = shown_delta(a, b, digits)
    if delta is None:
        return "<td class='num'>-</td>"
    cls = ""
    if higher_is_better is not None and delta != 0:
        cls = " ok" if (delta > 0) == higher_is_better else " bad"
    return f"<td class='num{cls}'>{delta:+.{digits}f}</td>"


def render_compare_html(report: CompareReport, report_dir: Path) -> str:
    """Two runs side by side: their best outputs, per stage the scores, cost and time with B - A (from the
    values as shown), the picks, and the prompts whole with their word diff."""
    a, b = report.a, report.b
    media = {"a": _Media(Path(a.run_dir), report_dir), "b": _Media(Path(b.run_dir), report_dir)}
    title = f"fbloop compare {a.run_id} / {b.run_id}"
    out = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
    ]
    out.append(f'<header><h1 id="title">{_e(title)}</h1><p class="meta">deltas are B - A</p></header>')
    out.append('<section id="runs" class="sides">')
    for side, head in (("a", a), ("b", b)):
        label = "OFFLINE · " if head.offline else ""
        out.append(
            f"<div id='run-{side}'><h2>{side.upper()}: {_e(head.run_id)}</h2>"
            f"<div class='meta'>{label}{_e(head.workflow)} · {_e(head.backend)} · {_e(head.status)}"
            f" · created {_e(head.created_at)}</div><code>{_e(head.run_dir)}</code><div class='frames'>"
        )
        run_dir = Path(head.run_dir)
        shown = [("best image", head.best_image, "image")]
        shown += [(f"best video {i}", p, "video") for i, p in enumerate(head.best_videos, 1) if p]
        for caption, path, kind in shown:
            if path:
                figure = media[side].html(path, kind, (run_dir / path).is_file(), caption)
                out.append(f"<figure>{figure}<figcaption>{_e(caption)}</figcaption></figure>")
        out.append("</div></div>")
    out.append("</section>")
    changes = [
        (k, a.options.get(k), b.options.get(k))
        for k in sorted(set(a.options) | set(b.options))
        if k not in ("prompt_file", "verbose", "schema_version") and a.options.get(k) != b.options.get(k)
    ]
    if changes:
        rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(_value(x))}</td><td>{_e(_value(y))}</td></tr>" for k, x, y in changes
        )
        out.append("<section id='options'><h2>Options changed</h2><div class='wide'><table>")
        out.append(f"<tr><th></th><th>A</th><th>B</th></tr>{rows}</table></div></section>")
    for stage in report.stages:
        out.append(f"<section class='stage' id='stage-{_e(stage.name)}'>")
        out.append(f"<h2>{stage.number}. {_e(stage.name)}</h2>")
        out.append("<div class='wide'><table><tr><th></th><th>A</th><th>B</th><th>Δ (B-A)</th></tr>")
        out.append(
            f"<tr><th>status</th><td>{_e(stage.status.a or '-')}</td><td>{_e(stage.status.b or '-')}</td>"
            + "<td></td></tr>"
        )
        for key, v in stage.scores.items():
            shown = places(stage.name, key)
            out.append(
                f"<tr><th>{_e(key)}</th><td class='num'>{_num(v.a, shown)}</td><td class='num'>"
                f"{_num(v.b, shown)}</td>{_delta_cell(v.a, v.b, shown, True)}</tr>"
            )
        for label, figure, digits in (("cost (USD)", stage.cost_usd, 4), ("time (s)", stage.wall_time_s, 1)):
            out.append(
                f"<tr><th>{label}</th><td class='num'>{_num(figure.a, digits)}</td><td class='num'>"
                f"{_num(figure.b, digits)}</td>{_delta_cell(figure.a, figure.b, digits)}</tr>"
            )
        if stage.picking:
            picks = {
                side: ", ".join(f"{k}: {v}" if k else str(v) for k, v in (pick or {}).items())
                for side, pick in (("a", stage.pick.a), ("b", stage.pick.b))
            }
            verdict = {None: "", True: "changed", False: "same"}[stage.pick_changed]
            out.append(
                f"<tr><th>pick</th><td>{_e(picks['a'] or '-')}</td><td>{_e(picks['b'] or '-')}</td>"
                f"<td>{verdict}</td></tr>"
            )
        out.append("</table></div>")
        if not stage.picking:
            for label, pa, pb in prompt_pairs(stage.pick.a, stage.pick.b):
                out.append(f"<h3>{_e(label)}</h3><div class='sides'>")
                out.append(f"<div><b>A</b><div class='prompt'>{_e(pa or '-')}</div></div>")
                out.append(f"<div><b>B</b><div class='prompt'>{_e(pb or '-')}</div></div></div>")
                if pa and pb:
                    out.append(f"<div class='diff'><b>A → B</b>: {_diff_html(word_diff(pa, pb))}</div>")
        out.append("</section>")
    out.append("<section id='totals'><h2>Totals</h2><div class='wide'><table>")
    out.append("<tr><th></th><th>A</th><th>B</th><th>Δ (B-A)</th></tr>")
    t = report.totals
    for label, figure, digits in (
        ("cost (USD)", t.cost_usd, 4),
        ("time (s)", t.time_s, 1),
        ("iterations", t.iterations, 0),
        ("candidates", t.candidates, 0),
    ):
        out.append(
            f"<tr><th>{label}</th><td class='num'>{_num(figure.a, digits)}</td><td class='num'>"
            f"{_num(figure.b, digits)}</td>{_delta_cell(figure.a, figure.b, digits)}</tr>"
        )
    out.append("</table></div></section><footer>Made by <code>fbloop inspect A --compare B --html</code>.</footer>")
    out.append("</body></html>\n")
    return "".join(out)


def write_html(report: InspectReport | CompareReport, target: Path) -> Path:
    """Write the report (of one run, or of two compared) atomically; returns its path."""
    target = target.expanduser()
    if target.is_dir():
        name = f"{report.a.run_id}_vs_{report.b.run_id}" if isinstance(report, CompareReport) else report.run_id
        target = target / f"fbloop_{name}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    report_dir = target.resolve().parent
    if isinstance(report, CompareReport):
        text = render_compare_html(report, report_dir)
    else:
        text = render_html(report, report_dir)
    atomic_write_bytes(target, text.encode("utf-8"))
    return target
