"""`fbloop inspect RUN --html FILE`: one self-contained HTML file that can be mailed to someone.

Built from the same data as `fbloop inspect RUN --json`. No external resource: the CSS is inline, every
image is a downscaled JPEG thumbnail embedded as a `data:` URI, small videos are embedded too (with a
poster frame) and larger ones are linked by their path relative to the report. Every score, prompt and
iteration is in it, with cost and time per stage; offline runs are marked OFFLINE at the top.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from feedback_cli.ui.inspect_view import PICKING_STAGES, relative_to
from feedback_cli.ui.summary import clip_labels, score_text
from feedback_cli.workflow.files import atomic_write_bytes

THUMB_PX = 320
#: videos up to this size are embedded (the report stays mailable); larger ones are linked
EMBED_VIDEO_BYTES = 2_000_000
EMBED_VIDEO_TOTAL = 20_000_000

CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --win: #fff4cc; --bad: #b3261e; --ok: #1e7b34; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta { color: var(--muted); }
.offline { background: #fff0c2; border: 1px solid #e0b400; padding: 8px 12px; margin: 12px 0; font-weight: 600; }
.error { color: var(--bad); font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f5f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.winner td { background: var(--win); font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: #e8ecf1; }
.badge.win { background: #f5c400; color: #000; }
.missing, .failed { color: var(--bad); font-weight: 600; }
img.thumb { display: block; max-width: 220px; max-height: 160px; border: 1px solid var(--line); }
video.clip { display: block; max-width: 260px; border: 1px solid var(--line); }
.prompt { white-space: pre-wrap; max-width: 900px; }
td.prompt { min-width: 360px; }
td ul { margin: 0; padding-left: 16px; }
td.feedback { min-width: 220px; } td.criteria { min-width: 160px; font-size: 12px; color: var(--muted); }
.wide { overflow-x: auto; }
details > summary { cursor: pointer; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
.gallery figure { margin: 0; } .gallery figcaption { color: var(--muted); font-size: 12px; }
footer { color: var(--muted); margin-top: 32px; font-size: 12px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def render_html(data: dict[str, Any], report_dir: Path) -> str:
    """The report as one HTML string; links are relative to `report_dir` (where the file will be)."""
    run_dir = Path(data["run_dir"])
    media = _Media(run_dir, report_dir)
    out: list[str] = []
    title = f"fbloop run {data['run_id']}"
    out.append(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
    )
    out.append(f'<header><h1 id="title">{_e(title)}</h1>')
    out.append(
        f'<div class="meta">workflow <b>{_e(data["workflow"])}</b> · backend <b>{_e(data["backend"])}</b>'
        f' · status <b id="status">{_e(data["status"])}</b> · created {_e(data["created_at"])}'
        f" · updated {_e(data['updated_at'])} · fbloop {_e(data.get('fbloop_version'))}</div>"
    )
    if data.get("offline"):
        label = str(data.get("label") or "OFFLINE: made by fbloop's offline backend")
        label = label if label.upper().startswith("OFFLINE") else f"OFFLINE: {label}"
        out.append(f'<div class="offline" id="offline">{_e(label)}</div>')
    if data.get("error"):
        out.append(f'<p class="error">error: {_e(data["error"])}</p>')
    out.append("</header>")

    out.append('<section id="overview"><h2>Overview</h2>')
    for label, key in (
        ("Starting prompt", "source_prompt"),
        ("Final image prompt", "final_image_prompt"),
        ("Final video prompt", "final_video_prompt"),
    ):
        if data.get(key):
            out.append(f'<h3>{label}</h3><div class="prompt">{_e(data[key])}</div>')
    gallery = []
    for label, key in (("prompt image", "prompt_image"), ("input image", "input_image"), ("best image", "best_image")):
        if data.get(key):
            exists = (run_dir / data[key]).is_file()
            gallery.append((label, data[key], "image", exists))
    if data.get("final_video"):
        gallery.append(("final video", data["final_video"], "video", (run_dir / data["final_video"]).is_file()))
    if data.get("best_videos"):
        for label, path in zip(clip_labels(data["best_videos"]), data["best_videos"], strict=True):
            gallery.append((f"best video ({label})", path, "video", (run_dir / path).is_file()))
    elif data.get("best_video"):
        gallery.append(("best video", data["best_video"], "video", (run_dir / data["best_video"]).is_file()))
    if gallery:
        out.append('<div class="gallery">')
        for label, path, kind, exists in gallery:
            out.append(f"<figure>{media.html(path, kind, exists, label)}<figcaption>{_e(label)}</figcaption></figure>")
        out.append("</div>")
    out.append(_totals(data))
    out.append(_stage_overview(data))
    out.append("</section>")

    for stage in data["stages"]:
        out.append(_stage_section(stage, data, media))
    if data["reviews"]:
        out.append('<section id="reviews"><h2>Human reviews</h2><table><tr>')
        out.append("<th>At (UTC)</th><th>Stage</th><th>Decision</th><th>Choice</th><th>Feedback</th></tr>")
        for r in data["reviews"]:
            out.append(
                f"<tr><td>{_e(r['at'])}</td><td>{_e(r['stage'])}</td><td>{_e(r['action'])}</td>"
                f"<td>{_e(r.get('choice') or '')}</td><td>{_e(r.get('feedback') or '')}</td></tr>"
            )
        out.append("</table></section>")
    if data.get("notices"):
        out.append("<section id='notices'><h2>Notices</h2><ul>")
        out.extend(f"<li>{_e(n)}</li>" for n in data["notices"])
        out.append("</ul></section>")
    out.append(
        f"<footer>Report of run folder <code>{_e(data['run_dir'])}</code>. Scores are 0-100 (raw values in the"
        " tooltips). Made by <code>fbloop inspect --html</code>.</footer></body></html>\n"
    )
    return "".join(out)


def _totals(data: dict[str, Any]) -> str:
    t = data["totals"]
    rows = [
        ("Status", data["status"]),
        ("Stages done", f"{t['stages_done']} of {t['stages']}"),
        ("Total cost", f"${t['cost_usd']:.4f}" + (" (offline: nothing paid)" if data.get("offline") else "")),
        ("Total time", f"{t['time_s']:.1f} s"),
        ("Prompt iterations", t["iterations"]),
        (
            "Candidates",
            f"{t['candidates']}" + (f" ({t['candidates_failed']} failed)" if t["candidates_failed"] else ""),
        ),
        ("Human reviews", t["reviews"]),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    if t["missing_files"]:
        missing = ", ".join(_e(p) for p in t["missing_files"])
        body += f'<tr><th>Missing files</th><td class="missing">{missing}</td></tr>'
    return f'<table id="totals">{body}</table>'


def _count(total: int, failed: int) -> str:
    return f"{total} ({failed} failed)" if failed else str(total)


def _stage_overview(data: dict[str, Any]) -> str:
    rows = [
        "<table id='stages'><tr><th>Stage</th><th>Status</th><th>Time (s)</th><th>Cost (USD)</th><th>Scores</th></tr>"
    ]
    for s in data["stages"]:
        status = s["status"] + (f": {s['skip_reason']}" if s["skip_reason"] else "")
        scores = ", ".join(f"{k}={score_text(k, v)}" for k, v in s["scores"].items() if v is not None)
        rows.append(
            f'<tr><td><a href="#stage-{_e(s["name"])}">{s["number"]}. {_e(s["name"])}</a></td><td>{_e(status)}</td>'
            f'<td class="num">{_num(s["wall_time_s"])}</td><td class="num">{_num(s["cost_usd"], 4)}</td>'
            f"<td>{_e(scores)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _stage_section(stage: dict[str, Any], data: dict[str, Any], media: _Media) -> str:
    out = [f'<section class="stage" id="stage-{_e(stage["name"])}">']
    out.append(f"<h2>Stage {stage['number']}: {_e(stage['title'])}</h2>")
    status = stage["status"] + (f": {stage['skip_reason']}" if stage["skip_reason"] else "")
    out.append(
        f'<div class="meta">status <b>{_e(status)}</b> · time {_num(stage["wall_time_s"])} s'
        f" · cost ${stage['cost_usd']:.4f} · attempts {stage['attempts']}</div>"
    )
    if stage["error"]:
        out.append(f'<p class="error">{_e(stage["error"])}</p>')
    if stage["scores"]:
        scores = ", ".join(f"{k} = {score_text(k, v)}" for k, v in stage["scores"].items() if v is not None)
        out.append(f"<p>scores: {_e(scores)}</p>")
    if stage["iterations"]:
        out.append(_iterations(stage))
    if stage["candidates"]:
        out.append(_matrix(stage, data.get("selection", "weighted"), media))
    outputs = stage["outputs"]
    for key in ("final_prompt", "image_prompt", "video_prompt"):
        if isinstance(outputs.get(key), str):
            out.append(f'<h3>{_e(key.replace("_", " "))}</h3><div class="prompt">{_e(outputs[key])}</div>')
    for clip in outputs.get("clip_prompts") or []:
        if isinstance(clip, dict) and clip.get("motion_prompt"):
            out.append(
                f"<h3>clip {_e(clip.get('clip'))} motion prompt</h3>"
                f'<div class="prompt">{_e(clip["motion_prompt"])}</div>'
            )
    if stage["files"]:
        out.append("<h3>Files</h3><ul>")
        for f in stage["files"]:
            if f["exists"]:
                out.append(f'<li><a href="{_e(media.link(f["path"]))}">{_e(f["path"])}</a></li>')
            else:
                out.append(f'<li><code>{_e(f["path"])}</code> <span class="missing">missing</span></li>')
        out.append("</ul>")
    if stage["notes"]:
        out.append("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in stage["notes"]) + "</ul>")
    out.append("</section>")
    return "".join(out)


def _iterations(stage: dict[str, Any]) -> str:
    head = "<tr><th>Scope</th><th>#</th><th>Prompt</th><th>Critic</th><th>Criteria</th>"
    head += "<th>Critic feedback</th><th>Human feedback</th><th>Cost</th><th>Time (s)</th></tr>"
    rows = [f"<h3>Writer/critic iterations</h3><div class='wide'><table class='iterations'>{head}"]
    for it in stage["iterations"]:
        prompt = _e(it["prompt"])
        rationale = f"<details><summary>why</summary>{_e(it['rationale'])}</details>" if it["rationale"] else ""
        criteria = " · ".join(f"{_e(k)}&nbsp;{_num(v, 0)}" for k, v in it["criteria"].items())
        feedback = "".join(f"<li>{_e(f)}</li>" for f in it["feedback"])
        rows.append(
            f"<tr><td>{_e(it['scope'] or '-')}</td><td class='num'>{it['iteration']}</td>"
            f"<td class='prompt'>{prompt}{rationale}</td><td class='num'>{_num(it['critic_score'])}</td>"
            f"<td class='criteria'>{criteria}</td><td class='feedback'><ul>{feedback}</ul></td>"
            f"<td class='feedback'>{_e(it['human_feedback'] or '')}</td>"
            f"<td class='num'>{_num(it['cost_usd'], 4)}</td><td class='num'>{_num(it['latency_s'], 2)}</td></tr>"
        )
    rows.append("</table></div>")
    return "".join(rows)


def _matrix(stage: dict[str, Any], selection: str, media: _Media) -> str:
    picking = stage["name"] in PICKING_STAGES
    groups = sorted({c["group"] for c in stage["candidates"]})
    overall_note = "mean rank, lower is better" if selection == "rank" else "weighted mean, 0-100"
    head = "<tr><th>Candidate</th>" + ("<th>Group</th>" if len(groups) > 1 else "")
    head += "<th>Round</th>" if stage["rounds"] > 1 else ""
    head += "".join(f"<th>{_e(s)}</th>" for s in stage["scorers"])
    head += f"<th title='{_e(overall_note)}'>Overall</th><th>Cost (USD)</th><th>Latency (s)</th><th>Seed</th>"
    head += "<th>File</th></tr>"
    title = "Candidates × scorers" + (" (highlighted: the pick)" if picking else " (every keyframe is used)")
    rows = [f"<h3>{title}</h3><div class='wide'><table class='matrix'>{head}"]
    for c in stage["candidates"]:
        badge = ' <span class="badge win">pick</span>' if c["winner"] else ""
        status = "" if c["status"] == "succeeded" else f'<br><span class="failed">{_e(c["status"])}</span>'
        error = f'<br><span class="failed">{_e(c["error"])}</span>' if c["error"] else ""
        cells = [f"<td><b>{_e(c['key'])}</b>{badge}{status}{error}</td>"]
        if len(groups) > 1:
            cells.append(f"<td>{_e(c['group'])}</td>")
        if stage["rounds"] > 1:
            cells.append(f"<td class='num'>{c['round']}</td>")
        for s in stage["scorers"]:
            raw = c["raw_scores"].get(s)
            cells.append(f"<td class='num' title='raw {_e(raw)}'>{_num(c['scores'].get(s))}</td>")
        cells.append(f"<td class='num'>{_num(c['overall'], 2 if selection == 'rank' else 1)}</td>")
        cells.append(f"<td class='num'>{_num(c['cost_usd'], 4)}</td><td class='num'>{_num(c['latency_s'], 2)}</td>")
        cells.append(f"<td class='num'>{_e(c['seed'])}</td>")
        cells.append(f"<td>{media.html(c['path'], c['kind'], c['exists'], c['key'])}</td>")
        rows.append(f"<tr class='{'winner' if c['winner'] else 'candidate'}'>{''.join(cells)}</tr>")
    rows.append("</table></div>")
    return "".join(rows)


def write_html(data: dict[str, Any], target: Path) -> Path:
    """Write the report atomically; returns its path."""
    target = target.expanduser()
    if target.is_dir():
        target = target / f"fbloop_{data['run_id']}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(data, target.resolve().parent)
    atomic_write_bytes(target, text.encode("utf-8"))
    return target
