"""Does a run take as long as its slowest chain of calls, not the sum of them?

Runs a full storyboard workflow (2 clips, 8 images, 3 video attempts per clip) on the offline backend with
simulated latencies (0.3 s per LLM call, 1.0 s per image, 3.0 s per video), then the same run with every
provider limited to one call at a time, side by side in one process.

    python bench/workflow.py [--llm 0.3 --image 1.0 --video 3.0 --concurrency 8]

The critical-path lower bound is computed from the run's own trace: per stage, the longest chain of calls that
must follow each other (the writer/critic iterations of a loop; ceil(items / limit) rounds of media jobs), times
the simulated latency. Wall time is the engine's, from the run_started to the run_finished event. Offline media
are rendered small so that local rendering (which a real provider does on its side) stays out of the way.
Last lines: wall, bound, ratio (target <= 1.10), and the speed-up over concurrency 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: argparse.Namespace, concurrency: int, out: Path) -> dict:
    env = {
        **os.environ,
        "FBLOOP_OFFLINE_LATENCY_LLM": str(args.llm),
        "FBLOOP_OFFLINE_LATENCY_IMAGE": str(args.image),
        "FBLOOP_OFFLINE_LATENCY_VIDEO": str(args.video),
        "FBLOOP_OFFLINE_CONCURRENCY": str(concurrency),
        "FBLOOP_OFFLINE_IMAGE_SIZE": "192",
        "FBLOOP_OFFLINE_VIDEO_SECONDS": "1.0",
    }
    for key in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "feedback_cli",
        "run",
        str(REPO / "examples" / "red_fox.txt"),
        "--backend",
        "offline",
        "--storyboard",
        "--clips",
        "2",
        "--num-image-variations",
        "8",
        "--num-video-attempts",
        "3",
        "--seed",
        "1",
        "--output-dir",
        str(out),
    ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    return json.loads((run_dir / "workflow_trace.json").read_text())


def wall_time(trace: dict) -> float:
    events = trace["events"]
    start = next(e["at"] for e in events if e["kind"] == "run_started")
    end = next(e["at"] for e in reversed(events) if e["kind"] == "run_finished")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def lower_bound(trace: dict, args: argparse.Namespace, concurrency: int) -> float:
    total = 0.0
    for stage in trace["stages"]:
        agent_calls = [
            e
            for e in trace["ledger"]
            if e["stage"] == stage["name"]
            and e["provider"] == "offline"
            and not e["what"].startswith(("image_", "keyframe_", "clip_", "video_"))
        ]
        scopes: dict[str, int] = {}
        for it in stage["iterations"]:
            scopes[it["scope"]] = scopes.get(it["scope"], 0) + 2  # writer then critic
        loose = len(agent_calls) - sum(scopes.values())  # plan / describe calls: one each, in sequence
        rounds = (
            max(scopes.values(), default=0)
            if concurrency >= len(scopes)
            else math.ceil(sum(scopes.values()) / concurrency)
        )
        total += (loose + rounds) * args.llm
        media = [i for i in stage["items"] if i["status"] == "succeeded"]
        if media:
            latency = args.video if media[0]["artifact"]["kind"] == "video" else args.image
            total += math.ceil(len(media) / concurrency) * latency
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llm", type=float, default=0.3)
    parser.add_argument("--image", type=float, default=1.0)
    parser.add_argument("--video", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        concurrent = run(args, args.concurrency, Path(tmp) / "concurrent")
        serial = run(args, 1, Path(tmp) / "serial")
    wall, bound = wall_time(concurrent), lower_bound(concurrent, args, args.concurrency)
    serial_wall = wall_time(serial)
    per_stage = ", ".join(f"{s['name']}={s['wall_time_s']:.2f}s" for s in concurrent["stages"])
    print(f"latencies: llm {args.llm}s, image {args.image}s, video {args.video}s; limit {args.concurrency}")
    print(f"stages: {per_stage}")
    print(f"concurrency 1 wall time: {serial_wall:.2f} s (lower bound {lower_bound(serial, args, 1):.2f} s)")
    print(f"wall time: {wall:.2f} s")
    print(f"critical-path lower bound: {bound:.2f} s")
    print(f"ratio wall / bound: {wall / bound:.3f} (target <= 1.10)")
    print(f"speed-up over concurrency 1: {serial_wall / wall:.2f}x")


if __name__ == "__main__":
    main()
