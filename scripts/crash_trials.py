"""Crash trials: kill -9 a real `fbloop run` at random moments, resume it, and check the promises.

    python scripts/crash_trials.py --trials 20 --backend offline
    python scripts/crash_trials.py --trials 20 --backend cloud     # against the fake provider server
    python scripts/crash_trials.py --report docs/reliability.md    # both, 20 each, and write the report

For each trial: a full storyboard run with simulated latency is started and killed with SIGKILL after a
random delay (uniform over the length of an undisturbed run). Then:
- the checkpoint (if the run got far enough to write one) must load and validate;
- `fbloop resume` must finish the run (exit 0, status completed);
- every artifact recorded as finished at the kill must be byte-identical afterwards;
- cloud: the fake server must have created exactly one prediction per item that owns one (nothing paid twice);
- cloud: every chat completion the fake server answered (billed) must be in the ledger: at its tokens, or, if the
  kill came while it was in flight, at its estimate (marked `estimated`), and nothing booked twice.
The last lines print the counts; `--report` writes them as markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from feedback_cli.errors import FbloopError  # noqa: E402
from feedback_cli.workflow import checkpoint  # noqa: E402
from feedback_cli.workflow.files import sha256_file  # noqa: E402

RUN_ARGS = ["--storyboard", "--clips", "2", "--num-image-variations", "4", "--num-video-attempts", "2"]


@dataclass
class Trial:
    number: int
    kill_after_s: float
    stage_at_kill: str = "-"
    checkpoint_readable: bool = True
    resumed_ok: bool = False
    identical: bool = True
    finished_artifacts: int = 0
    duplicates: int = 0
    #: chat completions the server billed that the ledger has neither at their tokens nor as an estimate
    unbooked: int = 0
    #: of the billed ones, booked at their estimate (in flight at the kill)
    estimated: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.checkpoint_readable
            and self.resumed_ok
            and self.identical
            and self.duplicates == 0
            and self.unbooked == 0
        )


class FakeServer:
    """The fake OpenAI + Replicate server in its own process, shared by the trials."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.provider_server",
                "--port",
                "0",
                "--llm-latency",
                str(latency / 3),
                "--image-latency",
                str(latency),
                "--video-latency",
                str(latency * 2),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.env = {
            "OPENAI_BASE_URL": f"{self.url}/v1",
            "REPLICATE_BASE_URL": self.url,
            "OPENAI_API_KEY": "sk-crash-trials-000",
            "REPLICATE_API_TOKEN": "r8_crash_trials_000",
        }

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=5) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def finished_artifacts(run_dir: Path) -> dict[str, str]:
    _, state = checkpoint.load(run_dir, verify_artifacts=False)
    out: dict[str, str] = {}
    for record in state.stages:
        for item in record.items:
            if item.status == "succeeded" and item.artifact is not None:
                out[item.artifact.path] = item.artifact.sha256
        if record.status == "completed":
            out.update({a.path: a.sha256 for a in record.artifacts})
    return out


def base_env(backend: str, latency: float, server: FakeServer | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FBLOOP_") and k not in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN")
    }
    env.update(FBLOOP_OFFLINE_IMAGE_SIZE="128", FBLOOP_OFFLINE_VIDEO_SECONDS="0.5", PYTHONPATH=str(REPO / "src"))
    if backend == "offline":
        env.update(FBLOOP_OFFLINE_LATENCY=str(latency), FBLOOP_OFFLINE_LATENCY_LLM=str(latency / 3))
    else:
        assert server is not None
        env.update(server.env, FBLOOP_POLL_INTERVAL_S="0.05")
    return env


def one_run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - start


def trial(
    number: int,
    backend: str,
    cmd: list[str],
    env: dict[str, str],
    out: Path,
    kill_after: float,
    server: FakeServer | None,
) -> Trial:
    result = Trial(number, round(kill_after, 2))
    before_stats = server.stats() if server else None
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    if not runs or not (runs[0] / "workflow_checkpoint.json").exists():
        result.stage_at_kill = "before the first checkpoint"
        result.resumed_ok = True  # nothing to resume; nothing was paid for or lost
        if server is not None and before_stats is not None:
            result.duplicates = server.stats()["predictions_created"] - before_stats["predictions_created"]
        return result
    run_dir = runs[0]
    try:
        frozen = finished_artifacts(run_dir)
        _, state = checkpoint.load(run_dir, verify_artifacts=False)
        running = [r.name for r in state.stages if r.status in ("running", "interrupted")]
        pending = [r.name for r in state.stages if r.status == "pending"]
        result.stage_at_kill = running[0] if running else (pending[0] if pending else "after the last stage")
    except FbloopError as exc:
        result.checkpoint_readable = False
        result.problems.append(f"checkpoint unreadable: {exc.message}")
        return result
    result.finished_artifacts = len(frozen)
    resume = subprocess.run(
        [sys.executable, "-m", "feedback_cli", "resume", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads((run_dir / "workflow_summary.json").read_text())
    result.resumed_ok = resume.returncode == 0 and summary["status"] == "completed"
    if not result.resumed_ok:
        result.problems.append(f"resume exit {resume.returncode}: {resume.stderr.strip()[-200:]}")
    changed = [p for p, digest in frozen.items() if sha256_file(run_dir / p) != digest]
    result.identical = not changed
    if changed:
        result.problems.append(f"changed: {changed[:3]}")
    try:
        checkpoint.load(run_dir)
    except FbloopError as exc:
        result.checkpoint_readable = False
        result.problems.append(f"final checkpoint invalid: {exc.message}")
    if server is not None and before_stats is not None:
        # paid twice = the server created more predictions in this trial than the run has items owning one
        created = server.stats()["predictions_created"] - before_stats["predictions_created"]
        _, final = checkpoint.load(run_dir, verify_artifacts=False)
        owned = {i.job_id for r in final.stages for i in r.items if i.job_id}
        result.duplicates = created - len(owned)
        if result.duplicates:
            result.problems.append(f"{created} predictions created for {len(owned)} items")
        billed = server.stats()["chat_completions"] - before_stats["chat_completions"]
        llm = [e for e in final.ledger if e.provider == "openai"]
        exact = sum(not e.estimated for e in llm)
        result.estimated = sum(e.estimated for e in llm)
        # an estimate stands for a request in flight at the kill, answered (billed) or not
        result.unbooked = max(billed - exact - result.estimated, 0)
        if result.unbooked or exact > billed:
            result.problems.append(f"{billed} chat completions billed, {exact} booked (+{result.estimated} estimated)")
    return result


def run_trials(backend: str, trials: int, latency: float, seed: int) -> list[Trial]:
    rng = random.Random(seed)
    server = FakeServer(latency) if backend == "cloud" else None
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = base_env(backend, latency, server)
            base = [
                sys.executable,
                "-m",
                "feedback_cli",
                "run",
                str(REPO / "examples" / "red_fox.txt"),
                "--backend",
                backend,
                "--scorers",
                "offline",
                *RUN_ARGS,
            ]
            duration = one_run([*base, "--seed", "0", "--output-dir", str(Path(tmp) / "baseline")], env)
            for n in range(1, trials + 1):
                out = Path(tmp) / f"trial_{n:02d}"
                cmd = [*base, "--seed", str(n), "--output-dir", str(out)]
                results.append(trial(n, backend, cmd, env, out, rng.uniform(0.4, duration), server))
                print(
                    f"{backend} trial {n}: killed after {results[-1].kill_after_s}s in "
                    f"{results[-1].stage_at_kill}: {'ok' if results[-1].ok else results[-1].problems}",
                    flush=True,
                )
    finally:
        if server is not None:
            server.close()
    return results


def summary_lines(backend: str, results: list[Trial]) -> list[str]:
    ok = sum(r.ok for r in results)
    return [
        f"{backend}: {len(results)} trials, {ok} ok, {len(results) - ok} failed",
        f"{backend}: checkpoints unreadable: {sum(not r.checkpoint_readable for r in results)}",
        f"{backend}: resumes that did not finish: {sum(not r.resumed_ok for r in results)}",
        f"{backend}: finished artifacts checked: {sum(r.finished_artifacts for r in results)}, "
        f"changed: {sum(not r.identical for r in results)} trials",
        f"{backend}: duplicate predictions: {sum(r.duplicates for r in results)}",
        f"{backend}: billed chat completions missing from the ledger: {sum(r.unbooked for r in results)}"
        f" ({sum(r.estimated for r in results)} requests in flight at a kill booked at their estimate)",
    ]


#: the report's title; it and the "## <backend>" sections of the backends run are generated, every other
#: section is kept
REPORT_TITLE = "# Reliability: crash trials"


def write_report(path: Path, by_backend: dict[str, list[Trial]], latency: float) -> None:
    lines = [
        REPORT_TITLE,
        "",
        "Generated by `python scripts/crash_trials.py --report docs/reliability.md` "
        f"on {time.strftime('%Y-%m-%d')}. Each trial starts a full storyboard run "
        f"(`{' '.join(RUN_ARGS)}`) with simulated latency ({latency} s per media call), kills it with SIGKILL "
        "after a random delay, resumes it with `fbloop resume`, and checks that the checkpoint was readable, the "
        "run finished, every artifact finished before the kill is byte-identical after, and (cloud, against the "
        "fake Replicate server) that no prediction was created twice.",
        "",
    ]
    for backend, results in by_backend.items():
        lines += [
            f"## {backend}",
            "",
            *[f"- {line}" for line in summary_lines(backend, results)],
            "",
            "| trial | killed after (s) | stage at kill | finished artifacts | result |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.number} | {r.kill_after_s} | {r.stage_at_kill} | {r.finished_artifacts} | "
            f"{'ok' if r.ok else '; '.join(r.problems).replace(chr(10), ' ')} |"
            for r in results
        ]
        lines.append("")
    path.write_text("\n".join(lines) + _other_sections(path, by_backend))


def _other_sections(path: Path, by_backend: dict[str, list[Trial]]) -> str:
    """The report's sections the trials do not generate (e.g. "## Secrets", "## Money"), written by hand:
    kept, in their order, wherever they stood, when the report is regenerated. A section runs from its
    "# " or "## " heading to the next one (deeper headings and fenced code belong to it)."""
    try:
        old = path.read_text().splitlines(keepends=True)
    except OSError:
        return ""
    # a backend not run this time keeps its old results
    generated = {REPORT_TITLE, *(f"## {backend}" for backend in by_backend)}
    kept: list[str] = []
    keeping = False
    fenced = False
    for line in old:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith(("# ", "## ")):
            keeping = line.strip() not in generated
        if keeping:
            kept.append(line)
    if not kept:
        return ""
    text = "".join(kept)
    return "\n" + (text if text.endswith("\n") else text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--backend", choices=["offline", "cloud", "both"], default="offline")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    backends = ["offline", "cloud"] if args.backend == "both" or args.report else [args.backend]
    by_backend = {b: run_trials(b, args.trials, args.latency, args.seed) for b in backends}
    if args.report:
        write_report(args.report, by_backend, args.latency)
    for backend, results in by_backend.items():
        for line in summary_lines(backend, results):
            print(line)
    return 0 if all(r.ok for results in by_backend.values() for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
