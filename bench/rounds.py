"""What do rounds buy? Best score and element score after round 1 vs after the last round (issue 13).

Over the 20 prompts of examples/prompts.txt, runs `fbloop stage image-generation` with rounds
(`--max-rounds-image 3`, `--target-image 100`, `--patience 1` by default) and reads each run's rounds.json:
the pick's overall score and element score after round 1 (the best of round 1: what best-of-N gives) and after
the last round (the pick across all rounds), the cost of round 1 vs the whole stage (from the ledger), and the
wall time of round 1 vs all rounds with their revisions (rounds.json's `wall_s`).

    python bench/rounds.py [--rounds 3 --num 4 --prompts examples/prompts.txt] [--backend cloud] [--keep DIR]

Offline by default: the offline renderer draws what a prompt names and sometimes misses an element, and its
element check reads the pixels. That is a SIMULATION of the mechanism, not evidence of quality. With
OPENAI_API_KEY and REPLICATE_API_TOKEN set, `--backend cloud` runs the same table on the real providers (it
pays for up to rounds x num images per prompt, plus the questions, VQA answers and revisions), or on the
OpenAI-compatible and Replicate-compatible servers OPENAI_BASE_URL and REPLICATE_BASE_URL name (the label says
which).

Cost of round 1: its images, every paid scorer call on them (the element check's VQA answers) and the questions
(asked once, before round 1): what best-of-N with the element check costs. Later rounds add their revision,
images and scorer calls. All rounds: every ledger entry of the stage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_prompt(prompt: str, index: int, args: argparse.Namespace, out: Path) -> dict:
    prompt_file = out / f"prompt_{index:02d}.txt"
    prompt_file.write_text(prompt + "\n")
    env = {**os.environ, "FBLOOP_OFFLINE_IMAGE_SIZE": str(args.size)}
    if args.backend == "offline":
        for key in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN"):
            env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "feedback_cli",
        "stage",
        "image-generation",
        "--prompt-file",
        str(prompt_file),
        "--backend",
        args.backend,
        "--num",
        str(args.num),
        "--max-rounds-image",
        str(args.rounds),
        "--target-image",
        str(args.target),
        "--patience",
        str(args.patience),
        "--seed",
        str(args.seed + index),
        "--output-dir",
        str(out / f"run_{index:02d}"),
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise SystemExit(f"prompt {index + 1} failed: {last}")
    run = next((out / f"run_{index:02d}" / "image_generation").iterdir())
    trace = json.loads((run / "workflow_trace.json").read_text())
    return {"prompt": prompt, **summarize(trace), "wall": wall}


def round_of(what: str, item_rounds: dict[str, int]) -> int | None:
    """The round a ledger entry of the stage paid for: an item ("image_01") or a paid scorer call on it
    ("elements image_01") is its item's round; "revision image round N" made the prompt of round N + 1; the
    questions are asked once, before round 1."""
    words = what.split()
    if not words:
        return None
    if words[-1] in item_rounds:
        return item_rounds[words[-1]]
    if words[0] == "revision" and len(words) >= 3 and words[-2] == "round" and words[-1].isdigit():
        return int(words[-1]) + 1
    if words[0] == "questions":
        return 1
    return None


def summarize(trace: dict[str, Any]) -> dict[str, Any]:
    """One prompt's row of the table, from its run's workflow_trace.json."""
    stage = next(s for s in trace["stages"] if s["name"] == "image_generation")
    rounds = stage["outputs"]["rounds"]
    items = {i["key"]: i for i in stage["items"]}
    first = items[rounds[0]["best_so_far_key"]]
    last = items[rounds[-1]["best_so_far_key"]]

    def elements(item: dict) -> float:
        return float((item["extra"].get("elements") or {}).get("score", 0.0))

    def round_time(r: dict) -> float:  # the round's items, and the revision that made its prompt
        return float(r.get("wall_s") or 0.0) + float((r.get("revision") or {}).get("latency_s") or 0.0)

    item_rounds = {i["key"]: int(i["extra"]["round"]) for i in stage["items"] if "round" in i["extra"]}
    entries = [e for e in trace["ledger"] if e["stage"] == "image_generation"]
    cost_all = sum(e["usd"] for e in entries)
    cost_first = sum(e["usd"] for e in entries if round_of(e["what"], item_rounds) == 1)
    time_all = sum(round_time(r) for r in rounds)
    return {
        "rounds": len(rounds),
        "stop": stage["outputs"]["stop_reason"].split(":")[0],
        "best_1": first["overall"],
        "best_n": last["overall"],
        "elements_1": elements(first),
        "elements_n": elements(last),
        "cost_1": cost_first,
        "cost_n": cost_all,
        "time_1": round_time(rounds[0]),
        "time_n": time_all,
        # paid for but not placed in a round (a new kind of call): counted in all rounds, never lost
        "cost_unplaced": sum(e["usd"] for e in entries if round_of(e["what"], item_rounds) is None),
    }


def backend_label(backend: str) -> str:
    if backend == "offline":
        return "offline (a simulation of the mechanism, not evidence of quality)"
    openai_url, replicate_url = os.environ.get("OPENAI_BASE_URL"), os.environ.get("REPLICATE_BASE_URL")
    if openai_url or replicate_url:  # not the real providers: say which servers answered
        return (
            f"cloud (OpenAI API at {openai_url or 'api.openai.com'}, "
            f"Replicate API at {replicate_url or 'api.replicate.com'})"
        )
    return "cloud (real providers: OpenAI, Replicate)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=Path, default=REPO / "examples" / "prompts.txt")
    parser.add_argument("--backend", choices=("offline", "cloud"), default="offline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num", type=int, default=4)
    parser.add_argument("--target", type=float, default=100.0)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    if args.backend == "cloud":
        missing = [k for k in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN") if not os.environ.get(k)]
        if missing:
            print(f"--backend cloud needs {' and '.join(missing)} set", file=sys.stderr)
            raise SystemExit(2)
    prompts = [p.strip() for p in args.prompts.read_text().splitlines() if p.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fbloop-bench-rounds-") as tmp:
        out = args.keep.resolve() if args.keep else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for index, prompt in enumerate(prompts):
            row = run_prompt(prompt, index, args, out)
            rows.append(row)
            print(
                f"{index + 1:2d} r={row['rounds']} {row['stop']:<8} best {row['best_1']:6.1f} -> {row['best_n']:6.1f}"
                f"  elements {row['elements_1']:6.1f} -> {row['elements_n']:6.1f}"
                f"  ${row['cost_1']:.4f} -> ${row['cost_n']:.4f}  {prompt[:48]}",
                flush=True,
            )
    improved = sum(r["elements_n"] > r["elements_1"] for r in rows)
    cost_1, cost_n = sum(r["cost_1"] for r in rows), sum(r["cost_n"] for r in rows)
    unplaced = sum(r["cost_unplaced"] for r in rows)
    time_1, time_n = sum(r["time_1"] for r in rows), sum(r["time_n"] for r in rows)
    lines = [
        f"backend: {backend_label(args.backend)}",
        f"prompts: {len(rows)}, up to {args.rounds} rounds x {args.num} images, "
        f"mean rounds run {mean(r['rounds'] for r in rows):.2f}",
        f"best score after round 1: {mean(r['best_1'] for r in rows):.1f}, "
        f"after the last round: {mean(r['best_n'] for r in rows):.1f}",
        f"element score after round 1: {mean(r['elements_1'] for r in rows):.1f}, "
        f"after the last round: {mean(r['elements_n'] for r in rows):.1f} ({improved} of {len(rows)} improved)",
        f"cost: round 1 ${cost_1:.4f}, all rounds ${cost_n:.4f}"
        + (f" (${unplaced:.4f} of it in no round)" if unplaced else ""),
        f"cost ratio (all rounds / round 1): {cost_n / cost_1:.2f}" if cost_1 else "cost ratio: n/a (nothing paid)",
        f"wall time ratio (all rounds / round 1): {time_n / max(time_1, 1e-9):.2f}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
