"""Crash trials: kill -9 a real `fbloop run` at random moments, resume it, and check the promises.

    python scripts/crash_trials.py --trials 20 --backend offline
    python scripts/crash_trials.py --trials 20 --backend cloud     # against the fake provider server
    python scripts/crash_trials.py --trials 20 --backend netcut    # network cuts instead of kill -9
    python scripts/crash_trials.py --report docs/reliability.md    # all three, 20 each, and write the report

For each trial: a full storyboard run with simulated latency is started and, after a random delay (uniform
over the length of an undisturbed run), killed with SIGKILL (offline, cloud), or cut off from the network
(netcut: the run talks to the fake server through a TCP forwarder in its own process; the forwarder is killed,
so every open connection drops and new ones are refused, and started again on the same port after
--outage seconds; the run itself is left alone until it ends). Then:
- the checkpoint (if the run got far enough to write one) must load and validate;
- `fbloop resume` must finish the run (exit 0, status completed);
- every artifact recorded as finished at the interruption must be byte-identical afterwards;
- cloud, netcut: the fake server must have created exactly one prediction per item that owns one (nothing paid
  twice), and the run's Replicate ledger must equal what the fake server billed for the trial (every prediction
  that succeeded, at Replicate's prices: nothing paid and left out, nothing booked twice);
- cloud, netcut: every chat completion the fake server answered (billed) must be in the ledger: at its tokens,
  or, if the interruption came while it was in flight, at its estimate (marked `estimated`), and nothing booked
  twice.
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
from feedback_cli.files import sha256_file  # noqa: E402
from feedback_cli.workflow import checkpoint  # noqa: E402

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
    #: cloud and netcut: the run's Replicate ledger and the fake server's bill for the trial (USD)
    ledger_usd: float = 0.0
    billed_usd: float = 0.0
    #: netcut: the run's exit code when it ended on its own after the cut, and what it told the user
    first_exit: int | None = None
    first_said: str = ""
    #: chat completions the server billed that the ledger has neither at their tokens nor as an estimate
    unbooked: int = 0
    #: of the billed ones, booked at their estimate (in flight at the kill)
    estimated: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ledger_matches(self) -> bool:
        return abs(self.ledger_usd - self.billed_usd) < 1e-6

    @property
    def ok(self) -> bool:
        return (
            self.checkpoint_readable
            and self.resumed_ok
            and self.identical
            and self.duplicates == 0
            and self.ledger_matches
            and self.unbooked == 0
        )


class Forwarder:
    """tests/fakes/forwarder.py in its own process: killing it is a network cut, starting it again ends it."""

    def __init__(self, target: str) -> None:
        self.target = target.removeprefix("http://")
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.forwarder", "--target", self.target, "--port", str(self.port)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().strip())

    def cut(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def close(self) -> None:
        self.cut()


class FakeServer:
    """The fake OpenAI + Replicate server in its own process, shared by the trials (netcut: reached through
    a forwarder, which the server also names in its output URLs)."""

    def __init__(self, latency: float, through_forwarder: bool = False) -> None:
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
        self.forwarder = Forwarder(self.url) if through_forwarder else None
        public = self.forwarder.url if self.forwarder else self.url
        if self.forwarder:
            request = urllib.request.Request(
                f"{self.url}/_fake/config",
                data=json.dumps({"public_url": public}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=5).close()
        self.env = {
            "OPENAI_BASE_URL": f"{public}/v1",
            "REPLICATE_BASE_URL": public,
            "OPENAI_API_KEY": "sk-crash-trials-000",
            "REPLICATE_API_TOKEN": "r8_crash_trials_000",
        }

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=5) as response:
            return json.loads(response.read())

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
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


def stage_now(out: Path) -> str:
    """The stage a run is in, from its checkpoint (written atomically, so readable while it runs)."""
    runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    if not runs or not (runs[0] / "workflow_checkpoint.json").exists():
        return "before the first checkpoint"
    try:
        _, state = checkpoint.load(runs[0], verify_artifacts=False)
    except FbloopError:
        return "unreadable"
    if state.status == "completed":
        return "after the last stage"
    running = [r.name for r in state.stages if r.status in ("running", "interrupted", "failed")]
    pending = [r.name for r in state.stages if r.status == "pending"]
    return running[0] if running else (pending[0] if pending else "after the last stage")


def wait_for_a_prediction_in_flight(out: Path, proc: subprocess.Popen, limit_s: float = 60.0) -> None:
    """Until the run's checkpoint shows an item waiting on its prediction (or the run ended)."""
    end = time.monotonic() + limit_s
    while proc.poll() is None and time.monotonic() < end:
        runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
        if runs and (runs[0] / "workflow_checkpoint.json").exists():
            try:
                _, state = checkpoint.load(runs[0], verify_artifacts=False)
            except FbloopError:
                state = None
            if state is not None and any(i.status == "submitted" for r in state.stages for i in r.items):
                return
        time.sleep(0.02)


def trial(
    number: int,
    backend: str,
    cmd: list[str],
    env: dict[str, str],
    out: Path,
    kill_after: float,
    server: FakeServer | None,
    outage: float = 3.0,
) -> Trial:
    result = Trial(number, round(kill_after, 2))
    before_stats = server.stats() if server else None
    log = out.with_suffix(".stderr")
    with log.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    time.sleep(kill_after)
    if backend == "netcut":
        assert server is not None and server.forwarder is not None
        started = time.monotonic() - kill_after
        wait_for_a_prediction_in_flight(out, proc)  # mid-stage: the cut finds fbloop waiting on predictions
        server.forwarder.cut()
        result.kill_after_s = round(time.monotonic() - started, 2)
        result.stage_at_kill = stage_now(out)
        time.sleep(outage)
        server.forwarder.start()  # the network is back; the run is left to end on its own
        result.first_exit = proc.wait(timeout=600)
        printed = log.read_text().splitlines()
        in_flight = sum(line.strip().startswith("~ ") for line in printed)
        failed = sum(line.strip().startswith("! ") for line in printed)
        result.first_said = f"{in_flight} items left in flight, {failed} failed"
    else:
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
        checkpoint.load(run_dir, verify_artifacts=False)  # must validate
        if backend != "netcut":
            result.stage_at_kill = stage_now(out)
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
    summary_path = run_dir / "workflow_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"status": "missing"}
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
        # the bill: what the server charged for this trial's predictions; the ledger: what the run booked
        after = server.stats()["billed_by_prediction"]
        result.billed_usd = round(
            sum(usd for pid, usd in after.items() if pid not in before_stats["billed_by_prediction"]), 6
        )
        result.ledger_usd = round(sum(e.usd for e in final.ledger if e.provider == "replicate"), 6)
        if not result.ledger_matches:
            result.problems.append(f"ledger ${result.ledger_usd:.4f} but billed ${result.billed_usd:.4f}")
        billed = server.stats()["chat_completions"] - before_stats["chat_completions"]
        llm = [e for e in final.ledger if e.provider == "openai"]
        exact = sum(not e.estimated for e in llm)
        result.estimated = sum(e.estimated for e in llm)
        # an estimate stands for a request in flight at the kill, answered (billed) or not
        result.unbooked = max(billed - exact - result.estimated, 0)
        if result.unbooked or exact > billed:
            result.problems.append(f"{billed} chat completions billed, {exact} booked (+{result.estimated} estimated)")
    return result


def run_trials(backend: str, trials: int, latency: float, seed: int, outage: float = 3.0) -> list[Trial]:
    rng = random.Random(seed)
    server = FakeServer(latency, through_forwarder=backend == "netcut") if backend != "offline" else None
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
                "offline" if backend == "offline" else "cloud",
                "--scorers",
                "offline",
                *RUN_ARGS,
            ]
            duration = one_run([*base, "--seed", "0", "--output-dir", str(Path(tmp) / "baseline")], env)
            for n in range(1, trials + 1):
                out = Path(tmp) / f"trial_{n:02d}"
                cmd = [*base, "--seed", str(n), "--output-dir", str(out)]
                results.append(trial(n, backend, cmd, env, out, rng.uniform(0.4, duration), server, outage))
                verb = "network cut" if backend == "netcut" else "killed"
                print(
                    f"{backend} trial {n}: {verb} after {results[-1].kill_after_s}s in "
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
        *(
            [
                f"{backend}: ledger equals the provider's bill: {sum(r.ledger_matches for r in results)} of "
                f"{len(results)} trials (ledger ${sum(r.ledger_usd for r in results):.4f}, billed "
                f"${sum(r.billed_usd for r in results):.4f})"
            ]
            if backend != "offline"
            else []
        ),
        *(
            [
                f"{backend}: runs that stopped on their own after the cut: "
                f"{sum(r.first_exit not in (None, 0) for r in results)}; that rode it out: "
                f"{sum(r.first_exit == 0 for r in results)}"
            ]
            if backend == "netcut"
            else []
        ),
        f"{backend}: billed chat completions missing from the ledger: {sum(r.unbooked for r in results)}"
        f" ({sum(r.estimated for r in results)} requests in flight at an interruption booked at their estimate)",
    ]


HEADER = """# Reliability: crash trials and network cuts

Generated by `python scripts/crash_trials.py --report docs/reliability.md` (sections of the backends run are
replaced, the others kept), last on {date}. Each trial starts a full storyboard run (`{args}`) with simulated
latency ({latency} s per media call) and interrupts it after a random delay: **offline** and **cloud** (against
the fake Replicate server) kill it with SIGKILL; **netcut** (cloud, through a TCP forwarder in front of the fake
server) kills the forwarder, so every open connection drops and new ones are refused, and starts it again
{outage} s later, leaving the run to end on its own. Then `fbloop resume` runs once. Each trial checks that the
checkpoint was readable, the run finished, every artifact finished before the interruption is byte-identical
after, and (cloud, netcut) that no prediction was created twice (*paid = items*: the server created exactly one
prediction per item owning one), that the run's Replicate ledger equals the fake server's bill for the trial (every
prediction that succeeded, at Replicate's prices, from the fake's own table), and that every chat completion the
fake answered is in the ledger once: at its tokens, or at its estimate (marked `estimated`) when the interruption
came while it was in flight.
"""


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each section of a report, in order. A section runs from its `## ` (or, after the
    title, `# `) heading to the next one; deeper headings and fenced code belong to it. Each body ends in one
    blank line (the last section of a file does not, and a section kept from there must not run into the one
    after it). What comes before the first section (the title and the intro) is not a section: it is
    regenerated."""
    sections: list[list[str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(keepends=True)):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (line.startswith("## ") or (number > 0 and line.startswith("# "))):
            sections.append([line.strip(), ""])
        if sections:
            sections[-1][1] += line
    return [(heading, body.rstrip("\n") + "\n\n") for heading, body in sections]


def write_report(path: Path, by_backend: dict[str, list[Trial]], latency: float, outage: float = 3.0) -> None:
    """The title, the intro and the sections of the backends run are generated; every other section (results of
    a backend not run this time, hand-written ones such as "## Money" or "## Secrets") is kept where it stood."""
    fresh: dict[str, str] = {}
    for backend, results in by_backend.items():
        verb = "cut after" if backend == "netcut" else "killed after"
        lines = [
            f"## {backend}",
            "",
            *[f"- {line}" for line in summary_lines(backend, results)],
            "",
            f"| trial | {verb} (s) | stage at the {'cut' if backend == 'netcut' else 'kill'} | finished artifacts"
            f" | {'the run, left alone | ' if backend == 'netcut' else ''}ledger = bill (USD) | result |",
            f"|---|---|---|---|{'---|' if backend == 'netcut' else ''}---|---|",
        ]
        lines += [
            f"| {r.number} | {r.kill_after_s} | {r.stage_at_kill} | {r.finished_artifacts} | "
            + (f"{r.first_exit} ({r.first_said}) | " if backend == "netcut" else "")
            + (f"{r.ledger_usd:.4f} = {r.billed_usd:.4f}" if backend != "offline" else "-")
            + f" | {'ok' if r.ok else '; '.join(r.problems).replace(chr(10), ' ')} |"
            for r in results
        ]
        fresh[f"## {backend}"] = "\n".join(lines) + "\n\n"
    kept = _sections(path.read_text()) if path.exists() else []
    body = "".join(fresh.pop(heading, section) for heading, section in kept) + "".join(fresh.values())
    header = HEADER.format(date=time.strftime("%Y-%m-%d"), args=" ".join(RUN_ARGS), latency=latency, outage=outage)
    path.write_text(header + "\n" + body.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--backend", choices=["offline", "cloud", "netcut", "both", "all"], default="offline")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--outage", type=float, default=3.0, help="netcut: seconds the network stays cut")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    backends = {
        "both": ["offline", "cloud"],
        "all": ["offline", "cloud", "netcut"],
    }.get(args.backend, [args.backend])
    by_backend = {b: run_trials(b, args.trials, args.latency, args.seed, args.outage) for b in backends}
    if args.report:
        write_report(args.report, by_backend, args.latency, args.outage)
    for backend, results in by_backend.items():
        for line in summary_lines(backend, results):
            print(line)
    return 0 if all(r.ok for results in by_backend.values() for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
