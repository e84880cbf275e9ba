"""The stage interface and the context the orchestrator hands to a stage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.ledger import CostLedger
from feedback_cli.runstate.models import ItemRecord, RunOptions, RunState, StageRecord
from feedback_cli.runstate.runfolder import RunFolder
from feedback_cli.stages.facts import PathQuoter, Pricing, StageEstimate, StageInputs
from feedback_cli.stages.services import Services


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
    """A stage of the workflow. Besides `run`, a stage declares every fact the rest of fbloop needs about it
    (which workflows run it, what `fbloop stage` needs, its dry-run estimate, its review, its summary), so the
    engine and the commands read declarations and never name a stage. Adding a stage is its module (the class
    decorated with `@register`) plus one line: the module's name in `BUILTIN_MODULES` (stages/registry.py)."""

    name: ClassVar[str]
    number: ClassVar[int]
    title: ClassVar[str]
    #: the workflows (`Workflow` values: "full", "image-only", ...) that run this stage
    workflows: ClassVar[tuple[str, ...]] = ()
    #: where it runs among a workflow's stages (ascending); None: at `number`
    position: ClassVar[float | None] = None
    #: its name for `fbloop stage NAME`; None: `name` with dashes
    cli_name: ClassVar[str | None] = None
    #: a short label for narrow tables (the batch leaderboard); None: `name`
    short_label: ClassVar[str | None] = None
    #: what `fbloop stage NAME` needs
    inputs: ClassVar[StageInputs] = StageInputs()
    #: what an interactive review after this stage shows; None: no review
    review: ClassVar[ReviewKind | None] = None
    #: at its review a person may pick another candidate (the stage then implements `apply_pick`)
    can_pick: ClassVar[bool] = False
    #: `run` makes something new from a reviewer's written feedback, so the review offers to regenerate
    accepts_feedback: ClassVar[bool] = False
    #: the run results this stage reports in workflow_summary.json: summary field -> the output key it is read
    #: from (the latest finished stage's value, else the value handed to a `fbloop stage` run); a field is
    #: reported only by runs with a stage that declares it
    summary_outputs: ClassVar[dict[str, str]] = {}
    #: the figures among its `record.scores` that are counts (shown as whole numbers), not 0-100 scores
    count_scores: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def folder(cls) -> str:
        return f"stage_{cls.number}_{cls.name}"

    @classmethod
    def order(cls) -> float:
        return cls.number if cls.position is None else cls.position

    @classmethod
    def command_name(cls) -> str:
        return cls.cli_name or cls.name.replace("_", "-")

    @classmethod
    def label(cls) -> str:
        return cls.short_label or cls.name

    @classmethod
    def roles(cls, options: RunOptions) -> frozenset[str]:
        """The provider roles (`agents`, `media`) this stage calls with these options: a run needs a cloud
        provider's key only for the roles its stages use. A stage that does not say uses both."""
        return frozenset(("agents", "media"))

    @classmethod
    def planned_skip(cls, options: RunOptions) -> str | None:
        """Why this stage will not run with these options (the dry run says so too), or None when it runs."""
        return None

    def skip_reason(self, state: RunState) -> str | None:
        """Why this stage does not run in this run, or None when it runs."""
        return self.planned_skip(state.options)

    @classmethod
    def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
        """This stage's part of the dry-run plan. Every stage must declare it (a free stage returns an empty
        `StageEstimate()`): `register` refuses a stage that does not, so none is priced at $0 by omission."""
        raise NotImplementedError(f"stage {cls.name} declares no estimate")

    # -- the review -------------------------------------------------------------------------------------

    @classmethod
    def review_prompt(cls, record: StageRecord, latest: list[ItemRecord]) -> str:
        """The prompt the review shows: the latest round's own prompt."""
        return str(
            next((i.extra.prompt for i in latest if i.extra.prompt), "")
            or next((i.request["prompt"] for i in latest if i.request.get("prompt")), "")
        )

    @classmethod
    def picked_keys(cls, record: StageRecord) -> list[str]:
        """The keys of the candidates that are the stage's current picks (preselected at the review)."""
        return []

    @classmethod
    def apply_pick(cls, record: StageRecord, item: ItemRecord) -> None:
        """Make `item` (a candidate with a file) the pick of its group, as a person chose at the review, and
        keep the summary scores those of the picks. Required when `can_pick`."""
        raise NotImplementedError(f"stage {cls.name} takes no pick")

    # -- the summary --------------------------------------------------------------------------------------

    @classmethod
    def follow_on(cls, record: StageRecord, state: RunState, path: PathQuoter) -> str | None:
        """The `fbloop stage ...` command that continues a finished `fbloop stage` run of this stage from its
        output (`path` quotes a path relative to the run folder), or None."""
        return None

    @classmethod
    def undeclared(cls) -> list[str]:
        """The facts this stage must declare and does not (checked by `register`)."""
        missing = [
            attribute
            for attribute in ("name", "number", "title")
            if not isinstance(getattr(cls, attribute, None), str | int)
        ]
        from feedback_cli.choices import Workflow

        known = {w.value for w in Workflow}
        missing.extend(f"a known workflow (not {w!r})" for w in cls.workflows if w not in known)
        if _own(cls, "estimate") is _own(Stage, "estimate"):
            missing.append("estimate")
        if cls.can_pick and _own(cls, "apply_pick") is _own(Stage, "apply_pick"):
            missing.append("apply_pick (it has can_pick)")
        return missing

    @abstractmethod
    async def run(self, ctx: StageContext) -> None:
        """Do the stage's work, filling `ctx.record` (items, iterations, outputs, artifacts, scores).

        Must be resumable: items already `succeeded` in `ctx.record` are kept as they are.
        """


def _own(cls: type, attribute: str) -> Any:
    """The function behind a (class)method, whichever class it was looked up on."""
    value = getattr(cls, attribute)
    return getattr(value, "__func__", value)
