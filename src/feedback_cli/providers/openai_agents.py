"""The writer, critic, planner and describer on any OpenAI-compatible server (OpenAI, Ollama, vLLM, LM Studio).

Replies come back as pydantic models through structured outputs (JSON schema). A server without strict
schemas (a 400 on `json_schema`) is asked in JSON mode instead, the reply validated, and a reply that does
not validate gets one repair request with the error. So does a gateway's 5xx that says the model's reply
failed its schema validation (a bad reply, not a server fault to retry). A reply still bad after the
repair, a refusal, or a reply cut off by the token limit is a ProviderError with one clear line (the stage
records it; the provider's whole text goes to the trace).

Every request is booked as its response arrives, through the engine's CallMeter (`CALL_METER`), whatever
happens to the reply afterwards: a reply that fails validation, the repair, a refusal, a cut-off reply.
A request that got no answer (timeout, cancellation), or a gateway error raised after the model ran, is
booked at the call's estimate and marked estimated.
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import openai
from PIL import Image
from pydantic import BaseModel, ValidationError

from feedback_cli.agents import revision, templates
from feedback_cli.agents.questions import (
    QuestionSet,
    QuestionsReply,
    QuestionsRequest,
    normalize_questions,
    questions_messages,
)
from feedback_cli.agents.revision import Revision, RevisionNotes, RevisionRequest
from feedback_cli.agents.schemas import (
    Critique,
    CritiqueRequest,
    Draft,
    Entity,
    PlanRequest,
    Scene,
    Usage,
    VideoPlan,
    WriteRequest,
)
from feedback_cli.config import Settings
from feedback_cli.errors import ProviderError, UsageError
from feedback_cli.providers.base import CALL_METER, AgentReply, BilledResponse, CallMeter
from feedback_cli.providers.prices import load_prices
from feedback_cli.redaction import Redactor
from feedback_cli.text import shorten

R = TypeVar("R", bound=BaseModel)
MAX_TOKENS = 1500
#: reasoning models spend hidden tokens before answering and take `max_completion_tokens` only
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
REASONING_MAX_TOKENS = 8000
UNFAITHFUL_CAP = 50.0


def _schema_rejected(exc: openai.BadRequestError) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text or "schema" in text


_VALIDATION_WORDS = ("validat", "does not match", "did not match", "doesn't match", "not conform", "invalid")


def _reply_failed_schema(exc: openai.APIStatusError) -> bool:
    """A gateway's 5xx that reports the model's reply failing the JSON schema (e.g. LiteLLM's
    JSONSchemaValidationError): the model answered, badly; retrying blind would pay for the same again."""
    text = _message(exc, whole=True).lower()
    return "schema" in text and any(word in text for word in _VALIDATION_WORDS)


class _BadReply(Exception):
    """A reply that does not fit its schema, as judged by the server: worth one repair request."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Problem:
    """Why a reply did not validate: not JSON at all, or JSON that does not match the schema."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind  # "json" | "schema" | "server"
        self.detail = detail

    def failure(self, role: str, model: str, redact: Redactor) -> ProviderError:
        what = {
            "json": "did not return valid JSON",
            "schema": "returned JSON that did not match the schema",
            "server": "returned a reply the server found did not match the schema",
        }[self.kind]
        detail = redact(self.detail)
        error = ProviderError(f"{role} {model} {what} after one repair: {shorten(detail)}")
        error.detail = f"{role} {model} {what} after one repair: {detail}"
        return error


def _add_usage(total: Usage, completion: Any) -> None:
    usage = getattr(completion, "usage", None)
    if usage is None:  # local servers may omit it
        return
    total.prompt_tokens += usage.prompt_tokens or 0
    total.completion_tokens += usage.completion_tokens or 0
    details = getattr(usage, "prompt_tokens_details", None)
    total.cached_tokens += (getattr(details, "cached_tokens", 0) or 0) if details else 0


class OpenAIAgents:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        if settings.openai_api_key is None and not settings.openai_base_url:
            raise UsageError("the OpenAI agents need OPENAI_API_KEY, or OPENAI_BASE_URL for a local server")
        self.settings = settings
        self.prices = load_prices(settings.price_file)
        # one client per run, reused by every call; the SDK retries 408/409/429/5xx itself
        self.client = openai.AsyncOpenAI(
            # an OpenAI-compatible server (Ollama, vLLM, LM Studio) takes any key; the SDK insists on one
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "no-key",
            base_url=settings.openai_base_url,
            timeout=settings.request_timeout_s,
            max_retries=0,  # fbloop retries itself, so the person sees each retry and its wait
        )
        self.json_mode_only = False  # learnt from the first 400 on json_schema
        #: provider text (error bodies may echo the Authorization header) is redacted before it is a message,
        #: and before it is shortened for a line (a cut could leave part of a secret the redactor cannot match)
        self.redact = settings.redactor()
        #: where retry notices go (the engine points it at the running stage)
        self.notify: Callable[[str], None] | None = None

    def estimate_call_cost(self) -> float | None:
        estimates = [self.prices.llm_estimate(m) for m in (self.settings.writer_model, self.settings.critic_model)]
        return None if None in estimates else max(e for e in estimates if e is not None)

    # --- the four roles ---
    async def write(self, request: WriteRequest) -> AgentReply[Draft]:
        reply, meta = await self._structured(
            "writer", self.settings.writer_model, templates.writer_messages(request), templates.WriterReply
        )
        if not reply.prompt.strip():
            raise ProviderError(f"writer {self.settings.writer_model} returned an empty prompt")
        return self._reply(Draft(prompt=reply.prompt.strip(), rationale=reply.rationale), meta)

    async def critique(self, request: CritiqueRequest) -> AgentReply[Critique]:
        reply, meta = await self._structured(
            "critic",
            self.settings.critic_model,
            templates.critic_messages(request),
            templates.critic_reply(request.kind),
        )
        overall = float(reply.overall)
        if not reply.faithful:  # a prompt that lost the user's idea must never win the loop
            overall = min(overall, UNFAITHFUL_CAP)
        critique = Critique(
            scores={k: float(v) for k, v in reply.scores.model_dump().items()},
            overall=overall,
            feedback=reply.feedback,
            faithful=reply.faithful,
        )
        return self._reply(critique, meta)

    async def plan_video(self, request: PlanRequest) -> AgentReply[VideoPlan]:
        reply, meta = await self._structured(
            "planner", self.settings.planner_model, templates.planner_messages(request), templates.PlanReply
        )
        return self._reply(normalize_plan(reply, request), meta)

    async def describe_image(self, image: Path) -> AgentReply[str]:
        model = self.settings.vision_model
        content = [
            {"type": "text", "text": templates.DESCRIBE_PROMPT},
            {"type": "image_url", "image_url": {"url": _small_data_uri(image), "detail": "low"}},
        ]
        start = time.perf_counter()
        usage = Usage()
        completion = await self._call(model, [{"role": "user", "content": content}], usage, "describer")
        text = (completion.choices[0].message.content or "").strip()
        if not text:
            raise ProviderError(f"vision model {model} returned no description of {image.name}")
        meta = {
            "model": model,
            "usage": usage,
            "latency": time.perf_counter() - start,
            "request": {"role": "describer", "model": model, "image": image.name},
        }
        return self._reply(text, meta)

    # --- rounds: DSG questions once per stage, and the critic + writer between rounds ---
    async def decompose(self, request: QuestionsRequest) -> AgentReply[QuestionSet]:
        model = self.settings.writer_model
        reply, meta = await self._structured("questions", model, questions_messages(request), QuestionsReply)
        questions = normalize_questions(reply.questions, kind=request.kind, source=request.source, model=model)
        if not questions.questions:
            raise ProviderError(f"questions {model} returned no question for the prompt")
        return self._reply(questions, meta)

    async def revise(self, request: RevisionRequest) -> AgentReply[Revision]:
        what = revision.WHAT[request.kind]
        shown = [{"type": "text", "text": revision.critic_text(request)}] + [
            {"type": "image_url", "image_url": {"url": _small_data_uri(Path(c.image)), "detail": "low"}}
            for c in request.candidates
            if c.image
        ]
        critic_messages = [
            {"role": "system", "content": revision.CRITIC_SYSTEM.format(what=what)},
            {"role": "user", "content": shown},
        ]
        critic_model = self.settings.critic_model
        notes, meta = await self._structured("round critic", critic_model, critic_messages, RevisionNotes)
        critic = self._reply(notes, meta)
        writer_messages = [
            {"role": "system", "content": revision.WRITER_SYSTEM.format(what=what)},
            {"role": "user", "content": revision.writer_text(request, notes)},
        ]
        writer_model = self.settings.writer_model
        draft, meta = await self._structured("round writer", writer_model, writer_messages, templates.WriterReply)
        if not draft.prompt.strip():
            raise ProviderError(f"writer {writer_model} returned an empty prompt")
        writer = self._reply(draft, meta)
        usage = Usage(**{k: getattr(critic.usage, k) + getattr(writer.usage, k) for k in Usage.model_fields})
        value = Revision(
            prompt=draft.prompt.strip(),
            rationale=draft.rationale,
            changes=notes.changes,
            keep=notes.keep,
            human_feedback=request.human_feedback,
        )
        return AgentReply(
            value,
            f"{critic.model}+{writer.model}",
            cost_usd=critic.cost_usd + writer.cost_usd,
            usage=usage,
            latency_s=critic.latency_s + writer.latency_s,
            request={"critic": critic.request, "writer": writer.request},
        )

    async def aclose(self) -> None:
        await self.client.close()

    # --- plumbing ---
    def _reply(self, value: Any, meta: dict[str, Any]) -> AgentReply[Any]:
        usage: Usage = meta["usage"]
        cost = self.prices.llm_cost(meta["model"], usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        request = {
            **meta["request"],
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
        }
        if cost is None:
            request["cost_note"] = f"no price known for {meta['model']}"
        return AgentReply(
            value, meta["model"], cost_usd=cost or 0.0, usage=usage, latency_s=meta["latency"], request=request
        )

    async def _call(
        self, model: str, messages: list[dict[str, Any]], usage: Usage, purpose: str = "reply", **kwargs: Any
    ) -> Any:
        """One chat completion, retried on 429/5xx/connection faults; every request booked through the meter
        (`purpose`, e.g. "repair", goes into its ledger entry)."""
        limit = (
            {"max_completion_tokens": REASONING_MAX_TOKENS}
            if model.startswith(REASONING_PREFIXES)
            else {"max_tokens": MAX_TOKENS}
        )
        meter = CALL_METER.get()
        estimate = self.prices.llm_estimate(model)
        structured = "response_format" in kwargs
        attempt = 0
        while True:
            call_id = await meter.started(model, estimate) if meter is not None else ""
            try:
                completion = await self.client.chat.completions.create(
                    model=model,
                    messages=messages,
                    **limit,
                    **kwargs,  # type: ignore[arg-type]
                )
                break
            except asyncio.CancelledError:  # the request is out: the provider may bill it
                _finish(meter, call_id, _at_estimate(model, estimate, "cancelled before the answer came"))
                raise
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                status = getattr(exc, "status_code", None)
                whole = _describe(model, exc, self.redact, whole=True)
                if isinstance(exc, openai.APITimeoutError):  # it may have run to the end: priced at the estimate
                    timed_out = f"no answer within {self.settings.request_timeout_s:g}s"
                    _finish(meter, call_id, _at_estimate(model, estimate, timed_out), whole)
                elif may_have_run(exc):
                    lost = "the connection was lost after the request went out"
                    _finish(meter, call_id, _at_estimate(model, estimate, lost), whole)
                elif isinstance(exc, openai.InternalServerError) and structured and _reply_failed_schema(exc):
                    ran = f"HTTP {status} after the model replied: its reply failed the schema"
                    _finish(meter, call_id, _at_estimate(model, estimate, ran), whole)
                    raise _BadReply(f"HTTP {status}: {_message(exc, self.redact, whole=True)}") from None
                else:
                    _finish(meter, call_id, None, whole)  # an error answer: not billed
                if getattr(exc, "code", None) == "insufficient_quota" or attempt >= self.settings.llm_retries:
                    raise _provider_error(model, exc, self.redact) from None
                wait = _retry_after(exc, attempt)
                what = f"answered HTTP {status}" if status else f"did not answer ({type(exc).__name__})"
                if self.notify is not None:
                    self.notify(f"{model} {what}; retry {attempt + 1} of {self.settings.llm_retries} in {wait:.1f}s")
                await asyncio.sleep(wait)
                attempt += 1
            except openai.APIStatusError as exc:
                _finish(meter, call_id, None, _describe(model, exc, self.redact, whole=True))
                asked_schema = kwargs.get("response_format", {}).get("type") == "json_schema"
                if exc.status_code == 400 and asked_schema and _schema_rejected(exc):  # type: ignore[arg-type]
                    raise
                raise _provider_error(model, exc, self.redact) from None
        # billed: booked now, before anything below can reject the reply
        _add_usage(usage, completion)
        described = {
            "purpose": purpose,
            "mode": (kwargs.get("response_format") or {}).get("type", "text"),
            "messages": len(messages),
        }
        _finish(meter, call_id, self._priced(model, completion, estimate, described))
        choice = completion.choices[0]
        if getattr(choice.message, "refusal", None):
            refusal = self.redact(choice.message.refusal)
            error = ProviderError(f"{model} refused: {shorten(refusal)}")
            error.detail = f"{model} refused: {refusal}"
            raise error
        if choice.finish_reason == "length":
            raise ProviderError(f"{model}: the reply was cut off at the token limit")
        return completion

    def _priced(self, model: str, completion: Any, estimate: float | None, request: dict[str, Any]) -> BilledResponse:
        one = Usage()
        _add_usage(one, completion)
        if getattr(completion, "usage", None) is None:  # local servers may omit it
            if estimate is None:
                return BilledResponse(model, None, note="the server reported no token usage", request=request)
            return _at_estimate(model, estimate, "the server reported no token usage", request)
        return BilledResponse(
            model,
            self.prices.llm_cost(model, one.prompt_tokens, one.completion_tokens, one.cached_tokens),
            prompt_tokens=one.prompt_tokens,
            completion_tokens=one.completion_tokens,
            cached_tokens=one.cached_tokens,
            request=request,
        )

    async def _structured(
        self, role: str, model: str, messages: list[dict[str, Any]], reply_type: type[R]
    ) -> tuple[R, dict[str, Any]]:
        start = time.perf_counter()
        usage = Usage()
        response_format: dict[str, Any] = {"type": "json_object"}

        async def ask(conversation: list[dict[str, Any]], purpose: str) -> tuple[str | None, _Problem | None]:
            """The reply's text (None when the server judged it), or the problem with it."""
            try:
                completion = await self._call(model, conversation, usage, purpose, response_format=response_format)
            except _BadReply as bad:
                return None, _Problem("server", bad.detail)
            return completion.choices[0].message.content or "", None

        content: str | None = None
        problem: _Problem | None = None
        asked = False
        if not self.json_mode_only:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": reply_type.__name__, "schema": strict_schema(reply_type), "strict": True},
            }
            try:
                content, problem = await ask(messages, role)
                asked = True
            except openai.BadRequestError:
                self.json_mode_only = True  # this server has no strict schemas: JSON mode from now on
                response_format = {"type": "json_object"}
        mode = "json_object" if self.json_mode_only else "json_schema"
        if not asked:
            schema_text = templates.json_mode_instructions(reply_type.model_json_schema())
            messages = [{"role": "system", "content": schema_text}, *messages]
            content, problem = await ask(messages, role)
        reply: R | None = None
        if problem is None:
            reply, problem = _validate(reply_type, content or "")
        if reply is None:  # one repair request carrying the validation error, in the same mode
            assert problem is not None
            mode += "+repair"
            said = [{"role": "assistant", "content": content}] if content is not None else []
            messages = [*messages, *said, _repair(problem)]
            content, problem = await ask(messages, f"{role} repair")
            if problem is None:
                reply, problem = _validate(reply_type, content or "")
            if reply is None:
                assert problem is not None
                raise problem.failure(role, model, self.redact)
        meta = {
            "model": model,
            "usage": usage,
            "latency": time.perf_counter() - start,
            "request": {
                "role": role,
                "model": model,
                "response_format": reply_type.__name__,
                "mode": mode,
                "messages": len(messages),
                "prompt_chars": sum(len(str(m["content"])) for m in messages),
            },
        }
        return reply, meta


def _finish(meter: CallMeter | None, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None:
    if meter is not None:
        meter.finished(call_id, billed, error)


def may_have_run(exc: BaseException) -> bool:
    """Whether the server may have run (and billed) a request that ended in this error: a timeout, or a
    connection lost after the request went out. Only a connection never made is surely unbilled."""
    import httpx

    if isinstance(exc, openai.APITimeoutError):
        return True
    if isinstance(exc, openai.APIConnectionError):
        return not isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)
    return False


def _at_estimate(model: str, estimate: float | None, why: str, request: dict[str, Any] | None = None) -> BilledResponse:
    return BilledResponse(
        model, estimate, estimated=True, note=f"{why}; booked at the call's estimate", request=request or {}
    )


def normalize_plan(reply: templates.PlanReply, request: PlanRequest) -> VideoPlan:
    """Hold the planner to its brief: exactly the scenes asked for, entity ids e1..eN, and no scene or
    consistency group naming an entity that is not in the list."""
    renamed = {e.id: f"e{i + 1}" for i, e in enumerate(reply.entities)}
    entities = [Entity(id=renamed[e.id], description=e.description) for e in reply.entities]
    scenes_in = list(reply.scenes[: request.scenes]) or [
        templates.SceneReply(
            description=request.source,
            entity_ids=[],
            background=reply.background,
            camera_motion=reply.camera_motion,
            action="",
            mood="",
            duration_s=5.0,
        )
    ]
    while len(scenes_in) < request.scenes:  # too few: the last scene continues
        scenes_in.append(scenes_in[-1])
    scenes = [
        Scene(index=i + 1, **{**s.model_dump(), "entity_ids": [renamed[x] for x in s.entity_ids if x in renamed]})
        for i, s in enumerate(scenes_in)
    ]
    groups = [[renamed[x] for x in group if x in renamed] for group in reply.consistency_groups]
    return VideoPlan(
        scenes=scenes,
        entities=entities,
        background=reply.background,
        camera_motion=reply.camera_motion,
        consistency_groups=[g for g in groups if g],
    )


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form strict structured outputs accept: every object closed
    (`additionalProperties: false`) with every property required, and no defaults or titles."""

    def walk(node: Any, names: bool = False) -> Any:
        if isinstance(node, dict):
            if names:  # a `properties` or `$defs` mapping: its keys are field names, keep them all
                return {k: walk(v) for k, v in node.items()}
            out = {
                k: walk(v, names=k in ("properties", "$defs")) for k, v in node.items() if k not in ("default", "title")
            }
            if out.get("type") == "object" and "properties" in out:
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(model.model_json_schema())


def _validate(reply_type: type[R], content: str) -> tuple[R | None, _Problem | None]:
    try:
        return reply_type.model_validate_json(content), None
    except ValidationError as exc:
        errors = exc.errors()
        if errors[0]["type"] == "json_invalid":
            return None, _Problem("json", str(errors[0]["msg"]))
        return None, _Problem("schema", "; ".join(_field_problem(e) for e in errors))
    except ValueError as exc:
        return None, _Problem("json", str(exc))


def _field_problem(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "the reply"
    if error["type"] == "missing":
        return f"field '{where}' is missing"
    return f"field '{where}': {error['msg']}"


def _repair(problem: _Problem) -> dict[str, str]:
    what = "was not valid JSON" if problem.kind == "json" else "did not match the schema"
    return {
        "role": "user",
        "content": f"That reply {what} ({problem.detail}). Reply again with only the corrected JSON object.",
    }


def _describe(model: str, exc: openai.APIError, redact: Redactor, *, whole: bool = False) -> str:
    status = getattr(exc, "status_code", None)
    if status is None:
        return f"{model}: cannot reach the server ({type(exc).__name__})"
    hint = " (billing quota exhausted)" if getattr(exc, "code", None) == "insufficient_quota" else ""
    return f"{model}: HTTP {status}{hint}: {_message(exc, redact, whole=whole)}"  # type: ignore[arg-type]


def _provider_error(model: str, exc: openai.APIError, redact: Redactor) -> ProviderError:
    error = ProviderError(_describe(model, exc, redact))
    error.detail = _describe(model, exc, redact, whole=True)
    return error


def _retry_after(exc: openai.APIError, attempt: int) -> float:
    """The wait the server names (retry-after-ms, retry-after), else exponential backoff with jitter."""
    response = getattr(exc, "response", None)
    headers = response.headers if response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(float(headers[name]) * scale, 60.0)
        except (KeyError, TypeError, ValueError):
            continue
    base = min(0.5 * 2**attempt, 8.0)
    return base + random.uniform(0, 0.25 * base)


def _message(exc: openai.APIStatusError, redact: Redactor | None = None, *, whole: bool = False) -> str:
    """The server's own message, redacted; then shortened at a word boundary for a line, or whole for the
    trace."""
    text = str(exc)
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            text = str(inner["message"])
        elif isinstance(inner, str) and inner:
            text = inner
    if redact is not None:
        text = redact(text)
    return text if whole else shorten(text)


def _small_data_uri(path: Path, longest: int = 768) -> str:
    """Downscaled JPEG: vision tokens grow with pixels, and a description needs no more."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((longest, longest))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
