"""The stage interface and the context the orchestrator hands to a stage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from feedback_cli.workflow.events import EventBus
from feedback_cli.workflow.ledger import CostLedger
from feedback_cli.workflow.models import RunOptions, RunState, StageRecord
from feedback_cli.workflow.runfolder import RunFolder
from feedback_cli.workflow.services import Services


@dataclass
class StageContext:
    state: RunState
    record: StageRecord
    folder: RunFolder
    services: Services
    events: EventBus
    ledger: CostLedger
    #: saves the checkpoint; stages call it after every paid item
    checkpoint: Callable[[], Awaitable[None]]
    #: written feedback from a human review asking to regenerate, or None
    human_feedback: str | None = None

    @property
    def options(self) -> RunOptions:
        return self.state.options

    @property
    def stage_dir(self) -> str:
        return self.record.folder

    def rel(self, name: str) -> str:
        """A path inside this stage's folder, relative to the run folder."""
        return f"{self.record.folder}/{name}"

    def abs(self, relative: str) -> Path:
        return self.folder.path(relative)

    def emit(self, kind: str, message: str = "", **data: object) -> None:
        event = self.events.emit(kind, message, stage=self.record.name, **data)  # type: ignore[arg-type]
        self.state.events.append(event.model_dump(mode="json"))


ReviewKind = Literal["images", "frames", "videos"]


class Stage(ABC):
    name: ClassVar[str]
    number: ClassVar[int]
    title: ClassVar[str]
    #: what an interactive review after this stage shows; None: no review
    review: ClassVar[ReviewKind | None] = None

    @classmethod
    def folder(cls) -> str:
        return f"stage_{cls.number}_{cls.name}"

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        """The provider roles (`agents`, `media`) this stage calls with these options: a run needs a cloud
        provider's key only for the roles its stages use. A stage that does not say uses both."""
        return frozenset(("agents", "media"))

    def skip_reason(self, state: RunState) -> str | None:
        """Why this stage does not run in this run, or None when it runs."""
        return None

    @abstractmethod
    async def run(self, ctx: StageContext) -> None:
        """Do the stage's work, filling `ctx.record` (items, iterations, outputs, artifacts, scores).

        Must be resumable: items already `succeeded` in `ctx.record` are kept as they are.
        """
