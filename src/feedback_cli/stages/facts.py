"""The shapes of what a stage declares about itself, so the engine, `--dry-run`, `fbloop stage`, the review and
the summary read a stage's own declarations instead of branching on its name: what `fbloop stage NAME` needs
(`StageInputs`), and its part of the dry-run plan (`StageEstimate`, priced with a `Pricing`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedback_cli.config import Settings
    from feedback_cli.providers.base import Agents, Media
    from feedback_cli.runstate.models import RunOptions


@dataclass(frozen=True)
class StageInputs:
    """What `fbloop stage NAME` needs and how it hands its files to the stage."""

    #: at least one of these flags must be given ("fbloop stage NAME needs --a or --b"); empty: none needed
    needs: tuple[str, ...] = ()
    #: said after the flags when one is missing, e.g. "(the best image)"
    needs_hint: str = ""
    #: --prompt-file must be a text file (an image is refused)
    text_prompt_only: bool = False
    #: the RunOptions field `--num` sets for this stage (bounded like the `fbloop run` flag); None: ignored
    count_option: str | None = None
    #: the `state.given` key the --prompt-file's text is handed over as; None: it is the run's source prompt only
    prompt_given_as: str | None = "final_prompt"
    #: RunOptions fields this stage sets when run alone (e.g. a mode it needs switched on)
    options: dict[str, Any] = field(default_factory=dict)
    #: a command of its own ("module:function"): `fbloop stage NAME FILE...` calls it with the file arguments
    #: and `output_dir`, `verbose`, `as_json` instead of building a run here; it returns the exit code
    command: str | None = None
    #: what the file arguments of such a command are, for the line refusing a flag it does not take
    files: str = ""


@dataclass
class StageEstimate:
    """A stage's part of the dry-run plan. The agent calls are priced by the engine at the agents provider's
    per-call estimate and added to `cost_*_usd`, which hold everything else the stage pays for (media, VQA)."""

    agent_calls_min: int = 0
    agent_calls_max: int = 0
    media_calls: int = 0
    #: the fewest media calls when the stage may stop early (rounds); None: `media_calls` is exact
    media_calls_min: int | None = None
    models: list[str] = field(default_factory=list)
    cost_min_usd: float = 0.0
    cost_max_usd: float = 0.0


@dataclass
class Pricing:
    """What a stage prices its estimate with: the providers the run would use (built without calling them),
    the settings, and where to record a note or a call with no known price."""

    options: RunOptions
    settings: Settings
    agents: Agents
    media: Media
    #: role -> provider name
    providers: dict[str, str]
    #: the run starts from an image (--prompt-file is an image), which is described first
    starts_from_image: bool
    notes: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def agents_offline(self) -> bool:
        return self.providers["agents"] == "offline"

    @property
    def agent_models(self) -> list[str]:
        """The writer and critic models (one name for the offline rubric)."""
        if self.agents_offline:
            return ["offline-rubric"]
        return sorted({self.settings.writer_model, self.settings.critic_model})

    def price(self, value: float | None, what: str) -> float:
        """A price, or 0 with `what` noted as unpriced (the dry run says so instead of hiding it)."""
        if value is None:
            self.unknown.append(what)
            return 0.0
        return value

    def note(self, line: str) -> None:
        self.notes.append(line)


#: `fbloop stage` follow-on commands quote each path they name with this
PathQuoter = Callable[[str], str]
