"""Start-up cost of the CLI: `fbloop --help` against `python -c "import typer"`, median of several runs,
measured side by side (interleaved) in one process so machine noise hits both alike.

    python bench/startup.py [--runs 15]

Last lines: the two medians, their ratio (target <= 1.5) and the heavy modules `fbloop --help` imports
(target: none), read from `python -X importtime`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "transformers", "openai", "replicate", "torchvision", "numpy", "av", "PIL", "httpx")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    fbloop = [sys.executable, "-m", "feedback_cli", "--help"]
    baseline = [sys.executable, "-c", "import typer"]
    for cmd in (fbloop, baseline):  # warm the file cache
        timed(cmd)
    ours, base = [], []
    for _ in range(args.runs):
        ours.append(timed(fbloop))
        base.append(timed(baseline))
    trace = subprocess.run([sys.executable, "-X", "importtime", *fbloop[1:]], capture_output=True, text=True).stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in trace.splitlines() if "|" in line}
    heavy = sorted(m for m in HEAVY if m in imported)
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"runs: {args.runs} each, interleaved")
    print(f"fbloop --help median: {m_ours * 1000:.0f} ms")
    print(f"python -c 'import typer' median: {m_base * 1000:.0f} ms")
    print(f"ratio: {m_ours / m_base:.2f} (target <= 1.5)")
    print(f"heavy modules imported by fbloop --help: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
