"""Time-driven fake Replicate predictions.

A prediction's status is a pure function of the clock: ``starting`` for the first
:data:`STARTING_FRACTION` of its latency, ``processing`` until the latency has elapsed, then its
scripted outcome (``succeeded`` by default, or ``failed`` / ``canceled``; a stalled prediction stays
``processing``). A client cancel ends it at that moment.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["starting", "processing", "succeeded", "failed", "canceled"]
Outcome = Literal["succeed", "fail", "cancel", "stall"]
OutputFault = Literal["missing", "corrupt"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
STARTING_FRACTION = 0.2
_OUTCOME_STATUS: dict[Outcome, Status] = {"succeed": "succeeded", "fail": "failed", "cancel": "canceled"}
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_prediction_id() -> str:
    """A 26-character lowercase id shaped like Replicate's."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def placeholder_version(model: str) -> str:
    """Official-model predictions still carry a version string; use a stable 64-hex stand-in."""
    return hashlib.sha256(model.encode()).hexdigest()


def iso(wall_time: float) -> str:
    return datetime.fromtimestamp(wall_time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class OutputFile:
    name: str  # e.g. "out-0.png" / "output.mp4"
    kind: Literal["image", "video"]
    index: int


@dataclass
class FakePrediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    is_video: bool
    latency: float
    outputs: list[OutputFile]
    single_output: bool
    outcome: Outcome = "succeed"
    error: str | None = None
    output_fault: OutputFault | None = None
    created_mono: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    canceled_mono: float | None = None
    webhook: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def started_mono(self) -> float:
        return self.created_mono + self.latency * STARTING_FRACTION

    @property
    def scheduled_end_mono(self) -> float | None:
        """When the prediction ends on its own (``None`` = never: a stalled prediction)."""
        return None if self.outcome == "stall" else self.created_mono + self.latency

    def finished_mono(self) -> float | None:
        """When it reached a terminal status (or will, if not yet); ``None`` if it never will."""
        end = self.scheduled_end_mono
        if self.canceled_mono is not None and (end is None or self.canceled_mono < end):
            return self.canceled_mono
        return end

    def status(self, now: float | None = None) -> Status:
        now = time.monotonic() if now is None else now
        finished = self.finished_mono()
        if finished is not None and now >= finished:
            if self.canceled_mono is not None and finished == self.canceled_mono:
                return "canceled"
            return _OUTCOME_STATUS.get(self.outcome, "processing")
        return "starting" if now < self.started_mono else "processing"

    def cancel(self, now: float | None = None) -> bool:
        """Cancel if still running; returns whether the status changed."""
        now = time.monotonic() if now is None else now
        with self.lock:
            if self.status(now) in TERMINAL:
                return False
            self.canceled_mono = now
            return True

    # -- JSON ---------------------------------------------------------------------------------
    def _wall(self, mono: float) -> float:
        return self.created_wall + (mono - self.created_mono)

    def _logs(self, status: Status, now: float) -> str:
        if status == "starting":
            return ""
        steps = 20 if self.is_video else 4
        run_time = max(self.latency * (1 - STARTING_FRACTION), 1e-9)
        done = min(steps, int(steps * max(0.0, now - self.started_mono) / run_time))
        if status == "succeeded":
            done = steps
        percent = 100 * done // steps
        bar = ("█" * (percent // 10)).ljust(10)
        seed = self.input.get("seed", "random")
        lines = [
            f"Using seed: {seed}",
            "Running predict()...",
            f"{percent:3d}%|{bar}| {done}/{steps} [00:00<00:00]",
        ]
        if status == "failed":
            lines.append(f"Traceback (most recent call last):\n  ...\nRuntimeError: {self.error}")
        return "\n".join(lines) + "\n"

    def to_json(self, base_url: str, output_value: Callable[[FakePrediction, OutputFile], str]) -> dict[str, Any]:
        """The prediction as the Replicate API returns it; ``output_value`` renders one output file."""
        now = time.monotonic()
        status = self.status(now)
        finished = self.finished_mono()
        started = self.started_mono if now >= self.started_mono else None
        if status == "canceled" and self.canceled_mono is not None and self.canceled_mono < self.started_mono:
            started = None
        output: Any = None
        metrics: dict[str, float] = {}
        if status in TERMINAL and finished is not None:
            if started is not None:
                metrics["predict_time"] = round(finished - started, 6)
            metrics["total_time"] = round(finished - self.created_mono, 6)
        if status == "succeeded":
            rendered = [output_value(self, out) for out in self.outputs]
            output = rendered[0] if self.single_output else rendered
        url = f"{base_url}/v1/predictions/{self.id}"
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": self._logs(status, now),
            "output": output,
            "data_removed": False,
            "error": self.error if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": iso(self.created_wall),
            "started_at": iso(self._wall(started)) if started is not None else None,
            "completed_at": iso(self._wall(finished)) if status in TERMINAL and finished is not None else None,
            "urls": {"get": url, "cancel": f"{url}/cancel", "web": f"{base_url}/p/{self.id}"},
            "metrics": metrics,
        }


def max_overlap(intervals: Iterable[tuple[float, float | None]]) -> int:
    """The largest number of half-open ``[start, end)`` intervals alive at once (``None`` = open)."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        events.append((start, 1))
        if end is not None:
            events.append((end, -1))
    best = alive = 0
    for _, delta in sorted(events, key=lambda event: (event[0], event[1])):  # ends sort before starts
        alive += delta
        best = max(best, alive)
    return best
