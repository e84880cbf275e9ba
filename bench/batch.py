"""Does a batch run as fast as its shared provider limit allows, with flat memory, and what does Ray add?

Starts the fake provider server (tests/fakes) with a fixed latency per image prediction, then runs
`fbloop batch` (image-only, cloud backend, real `openai`/`replicate` clients) as a subprocess:

1. 50 prompts x N images, local executor: wall time against the bound the shared limit sets,
   ceil(50 * N / limit) rounds of one image latency (the LLM calls have no latency here), and against the same
   bound with the time an image really took end to end (create, polls, download, checks, checkpoint), which
   shows whether the batch keeps the shared limit busy;
2. peak RSS of the batch process at 5 and at 50 prompts (same concurrency): it must stay flat;
3. the same 50 prompts with `--executor ray` (a local Ray instance the command starts itself): wall time,
   and Ray's start-up measured on its own, so the overhead per row is visible.

    python bench/batch.py [--prompts 50 --images 4 --latency 0.5 --limit 8 --concurrency 8] [--no-ray]

Last lines: the figures and the ratios (wall / bound, RSS 50 / RSS 5, ray / local).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.provider_server import FakeProviderServer  # noqa: E402

#: runs a command and prints its peak RSS (KiB, Linux) as the last line: the child's own high-water mark
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def batch(args: argparse.Namespace, prompts: int, executor: str, out: Path) -> dict:
    server = FakeProviderServer(image_latency=args.latency).start()  # one per batch: its counts are the batch's
    try:
        return _batch(args, server, prompts, executor, out)
    finally:
        server.stop()


def _batch(args: argparse.Namespace, server: FakeProviderServer, prompts: int, executor: str, out: Path) -> dict:
    prompts_file = out / f"prompts_{prompts}.txt"
    prompts_file.write_text("".join(f"a product shot of item {i}, studio light\n" for i in range(prompts)))
    env = {
        **os.environ,
        **server.env(),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "FBLOOP_REPLICATE_CONCURRENCY": str(args.limit),
        "FBLOOP_POLL_INTERVAL_S": "0.05",
        "FBLOOP_SCORERS": "offline",
        "RAY_AUTH_MODE": "disabled",
    }
    target = out / f"{executor}_{prompts}"
    cmd = [
        sys.executable, "-c", RSS_WRAPPER,
        sys.executable, "-m", "feedback_cli", "batch", str(prompts_file), "--workflow", "image-only",
        "--backend", "cloud", "--max-iterations-image", "1", "--num-image-variations", str(args.images),
        "--concurrency", str(args.concurrency), "--seed", "1", "--executor", executor, "--output-dir", str(target),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"batch failed ({executor}, {prompts}): {done.stderr[-2000:]}")
    folder = next(p for p in target.iterdir() if p.is_dir())
    summary = json.loads((folder / "batch_summary.json").read_text())
    latencies = [
        item["latency_s"]
        for checkpoint in folder.glob("runs/*/workflow_checkpoint.json")
        for stage in json.loads(checkpoint.read_text())["state"]["stages"]
        for item in stage["items"]
        if item.get("latency_s")
    ]
    return {
        "wall_s": wall,
        "batch_wall_s": summary["wall_time_s"],
        "rss_mib": int(done.stdout.strip().splitlines()[-1]) / 1024,
        "completed": summary["counts"].get("completed", 0),
        "created": server.predictions_created,
        "max_in_flight": server.max_in_flight_predictions,
        "item_latency_s": sum(latencies) / len(latencies),
    }


def ray_startup() -> float:
    code = (
        "import time, os; os.environ['RAY_AUTH_MODE'] = 'disabled'; t = time.perf_counter(); import ray; "
        "ray.init(include_dashboard=False); ray.get(ray.remote(lambda: 1).remote()); "
        "print(time.perf_counter() - t); ray.shutdown()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--small", type=int, default=5, help="prompts of the small batch (RSS comparison)")
    parser.add_argument("--images", type=int, default=4, help="images per prompt")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per image prediction")
    parser.add_argument("--limit", type=int, default=8, help="FBLOOP_REPLICATE_CONCURRENCY: the shared limit")
    parser.add_argument("--concurrency", type=int, default=8, help="runs in flight")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fbloop-bench-batch-") as tmp:
        out = Path(tmp)
        small = batch(args, args.small, "local", out)
        large = batch(args, args.prompts, "local", out)
        remote = None if args.no_ray else batch(args, args.prompts, "ray", out)
    rounds = math.ceil(args.prompts * args.images / args.limit)
    bound = rounds * args.latency
    print(
        f"{args.prompts} prompts x {args.images} images, {args.latency} s per image, shared limit {args.limit}, "
        f"{args.concurrency} runs in flight"
    )
    print(f"local: {large['completed']}/{args.prompts} completed, {large['created']} predictions created, "
          f"max {large['max_in_flight']} in flight")  # fmt: skip
    print(f"local wall time: {large['batch_wall_s']:.2f} s (process {large['wall_s']:.2f} s)")
    print(f"bound from the shared limit: {bound:.2f} s ({rounds} rounds x {args.latency} s)")
    print(f"ratio wall / bound: {large['batch_wall_s'] / bound:.3f}")
    # what one image really took end to end (create, polls, download, checks, checkpoint) on this machine
    effective = rounds * large["item_latency_s"]
    print(
        f"mean time per image as the runs measured it: {large['item_latency_s']:.2f} s; bound with it: "
        f"{effective:.2f} s, ratio wall / that bound: {large['batch_wall_s'] / effective:.3f}"
    )
    print(f"peak RSS: {small['rss_mib']:.0f} MiB at {args.small} prompts, {large['rss_mib']:.0f} MiB at "
          f"{args.prompts} prompts, ratio {large['rss_mib'] / small['rss_mib']:.3f}")  # fmt: skip
    if remote is not None:
        startup = ray_startup()
        print(f"ray: {remote['completed']}/{args.prompts} completed, {remote['created']} predictions created")
        print(f"ray wall time: {remote['batch_wall_s']:.2f} s (process {remote['wall_s']:.2f} s), "
              f"of which Ray start-up about {startup:.2f} s")  # fmt: skip
        print(f"ray overhead over local: {remote['batch_wall_s'] - large['batch_wall_s']:.2f} s, "
              f"{remote['batch_wall_s'] - startup - large['batch_wall_s']:.2f} s without the start-up "
              f"({(remote['batch_wall_s'] - startup) / large['batch_wall_s']:.3f}x local)")  # fmt: skip


if __name__ == "__main__":
    main()
