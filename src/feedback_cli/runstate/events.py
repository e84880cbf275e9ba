"""Events the engine emits; the UI (or a test) subscribes and renders them. The engine never prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from feedback_cli.redaction import Redactor
from feedback_cli.runstate.models import utcnow

EventKind = Literal[
    "run_started",
    "run_resumed",
    "notice",
    "stage_started",
    "stage_skipped",
    "stage_finished",
    "stage_failed",
    "iteration_started",
    "iteration",
    "item_started",
    "item_submitted",
    "item_finished",
    "item_failed",
    "item_scoring",
    "item_scored",
    "item_in_flight",
    "job_canceled",
    "agent_call_error",  # a provider's whole error text (the person's line has it shortened)
    "final_video",
    "review",
    "run_finished",
    "run_interrupted",
]


class Event(BaseModel):
    kind: EventKind
    stage: str | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    at: str = Field(default_factory=utcnow)


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out; subscribers must be quick (they run on the event loop)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        #: every event is redacted before any subscriber (terminal, run.log, trace) sees it; the
        #: orchestrator sets the run's redactor
        self.redactor = redactor or Redactor()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, kind: EventKind, message: str = "", stage: str | None = None, **data: Any) -> Event:
        event = Event(kind=kind, stage=stage, message=self.redactor.redact(message), data=self.redactor.scrub(data))
        for subscriber in self._subscribers:
            subscriber(event)
        return event
