"""Provider interfaces. Stages talk only to these; `offline` and the cloud backends implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from feedback_cli.agents.questions import QuestionSet, QuestionsRequest
from feedback_cli.agents.revision import Revision, RevisionRequest
from feedback_cli.agents.schemas import Critique, CritiqueRequest, Draft, PlanRequest, Usage, VideoPlan, WriteRequest
from feedback_cli.errors import ProviderError

T = TypeVar("T")


@dataclass
class AgentReply(Generic[T]):
    value: T
    model: str
    cost_usd: float = 0.0
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    #: what the trace should show about the request (never secrets)
    request: dict[str, Any] = field(default_factory=dict)


@dataclass
class BilledResponse:
    """One response an agent backend got for a request, priced: what the ledger books for it."""

    model: str
    #: None when the model has no known price (booked at $0 with a note)
    usd: float | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    #: no usage was reported (no answer, a gateway error after the model ran): booked at the call's estimate
    estimated: bool = False
    note: str = ""
    request: dict[str, Any] = field(default_factory=dict)


class CallMeter(Protocol):
    """How an agent backend books every request it sends, whatever happens to the reply after.

    `started` is awaited before a request goes out: it holds the call to the cost cap (BudgetError) and
    records it in the checkpoint, so a crash before the answer leaves it to be booked as an estimate on
    resume. `finished` follows once per started call: with the priced response, or None when the provider
    answered with an error it does not bill; `error` is the provider's whole message, kept in the trace.
    """

    async def started(self, model: str, estimate_usd: float | None) -> str: ...

    def finished(self, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None: ...


#: the meter of the agent call being made in this task (the engine sets it around each call: concurrent
#: loops each have their own); a backend that finds none books nothing itself and the engine books its reply
CALL_METER: ContextVar[CallMeter | None] = ContextVar("fbloop_call_meter", default=None)


class SyncCallMeter(Protocol):
    """A CallMeter for code that calls a paid API from a worker thread (a scorer asking a VLM): the same
    promise, blocking. `started` returns once the call is held to the cap and recorded in the checkpoint."""

    def started(self, model: str, estimate_usd: float | None) -> str: ...

    def finished(self, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None: ...


#: the meter of the scoring call being made in this thread (the engine sets it around each scorer it runs
#: in its worker thread; `fbloop score` sets a tally); a scorer that finds none books nothing
SCORER_CALL_METER: ContextVar[SyncCallMeter | None] = ContextVar("fbloop_scorer_call_meter", default=None)


class Agents(Protocol):
    name: str  # "offline", "openai"

    async def write(self, request: WriteRequest) -> AgentReply[Draft]: ...

    async def critique(self, request: CritiqueRequest) -> AgentReply[Critique]: ...

    async def plan_video(self, request: PlanRequest) -> AgentReply[VideoPlan]: ...

    async def describe_image(self, image: Path) -> AgentReply[str]: ...

    async def decompose(self, request: QuestionsRequest) -> AgentReply[QuestionSet]:
        """The user's prompt as DSG-style yes/no questions with parent ids (once per generation stage)."""
        ...

    async def revise(self, request: RevisionRequest) -> AgentReply[Revision]:
        """Between rounds: the critic (what to change, from the best candidates and their failed questions),
        then the writer (the revised prompt, keeping what worked); cost and usage are the two calls' sum."""
        ...

    def estimate_call_cost(self) -> float | None:
        """A typical writer or critic call's price in USD (budget checks and --dry-run); None if unknown."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class ImageRequest:
    prompt: str
    seed: int
    aspect_ratio: str = "1:1"
    reference_image: Path | None = None


@dataclass
class VideoRequest:
    prompt: str
    seed: int
    start_image: Path
    end_image: Path | None = None
    duration_s: float = 5.0


@dataclass
class MediaOutput:
    data: bytes
    extension: str  # ".png", ".mp4"
    model: str
    cost_usd: float = 0.0
    job_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobHook:
    """How a media backend tells the engine about a job before waiting on it.

    `existing_job_id` is set on resume: the backend re-attaches to it instead of paying again.
    `submitted` must be awaited right after the job is created; it records the id in the checkpoint.
    """

    existing_job_id: str | None
    submitted: Callable[[str], Awaitable[None]]
    #: set when an earlier attempt at this item started (at this UTC time) but recorded no job id: a crash
    #: may have come between the provider creating the job and the checkpoint; look for it before paying again
    orphan_since: str | None = None
    #: job ids other items of the run own (never adopted as this item's orphan)
    claimed: frozenset[str] = frozenset()
    #: tell the person a request is being retried (status, wait) instead of going silent
    retrying: Callable[[str], None] | None = None
    #: the job is paid for (USD) the moment the provider finished it, before any download can fail
    paid: Callable[[float], None] | None = None
    #: a create request got no answer at this UTC time: the job may exist; a later retry must look for it
    unanswered: Callable[[str], None] | None = None
    #: the provider was seen to end the job ("succeeded", "failed", "canceled") or not to know it ("gone")
    settled: Callable[[str], None] | None = None
    #: fbloop gave up waiting and canceled the job at the provider (the sentence says why)
    canceled: Callable[[str], None] | None = None


class JobInFlight(ProviderError):
    """fbloop stopped waiting on a job whose end it has not seen: polling kept failing, or the deadline passed,
    and the cancel failed or was not wanted; or a create got no answer and the lookup for it failed too.

    The job may still finish and be billed, so the item is never "failed": it stays in flight and a resume
    re-attaches to it (or looks for it), downloads what it made and books it."""


class Media(Protocol):
    name: str  # "offline", "replicate"

    def image_model(self) -> str: ...

    def video_model(self, with_end_frame: bool) -> str: ...

    def estimate_image_cost(self) -> float | None:
        """USD for one image, None when the model has no known price."""
        ...

    def estimate_video_cost(self, with_end_frame: bool, duration_s: float) -> float | None: ...

    async def generate_image(self, request: ImageRequest, job: JobHook) -> MediaOutput: ...

    async def generate_video(self, request: VideoRequest, job: JobHook) -> MediaOutput: ...

    async def aclose(self) -> None: ...
