"""The writer, critic, planner and describer on any OpenAI-compatible server (OpenAI, Ollama, vLLM, LM Studio).

Replies come back as pydantic models through structured outputs (JSON schema). A server without strict
schemas (a 400 on `json_schema`) is asked in JSON mode instead, the reply validated, and a reply that does
not validate gets one repair request with the error; one that still does not parse, a refusal, or a reply
cut off by the token limit is a ProviderError with one clear line (the stage records it). Token usage of
every response goes into the cost ledger at the model's price.
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

from feedback_cli.agents import templates
from feedback_cli.agents.schemas import (
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
from feedback_cli.providers.base import AgentReply
from feedback_cli.providers.prices import load_prices
from feedback_cli.workflow.models import Critique

R = TypeVar("R", bound=BaseModel)
MAX_TOKENS = 1500
#: reasoning models spend hidden tokens before answering and take `max_completion_tokens` only
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
REASONING_MAX_TOKENS = 8000
UNFAITHFUL_CAP = 50.0


def _schema_rejected(exc: openai.BadRequestError) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text or "schema" in text


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
        #: provider text (error bodies may echo the Authorization header) is redacted before it is a message
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
            "planner", self.settings.writer_model, templates.planner_messages(request), templates.PlanReply
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
        completion = await self._call(model, [{"role": "user", "content": content}], usage)
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

    async def _call(self, model: str, messages: list[dict[str, Any]], usage: Usage, **kwargs: Any) -> Any:
        limit = (
            {"max_completion_tokens": REASONING_MAX_TOKENS}
            if model.startswith(REASONING_PREFIXES)
            else {"max_tokens": MAX_TOKENS}
        )
        attempt = 0
        while True:
            try:
                completion = await self.client.chat.completions.create(
                    model=model,
                    messages=messages,
                    **limit,
                    **kwargs,  # type: ignore[arg-type]
                )
                break
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                status = getattr(exc, "status_code", None)
                if getattr(exc, "code", None) == "insufficient_quota" or attempt >= self.settings.llm_retries:
                    raise ProviderError(self.redact(_describe(model, exc))) from None
                wait = _retry_after(exc, attempt)
                what = f"HTTP {status}" if status else type(exc).__name__
                if self.notify is not None:
                    self.notify(
                        f"{model} answered {what}; retry {attempt + 1} of {self.settings.llm_retries} in {wait:.1f}s"
                    )
                await asyncio.sleep(wait)
                attempt += 1
            except openai.APIStatusError as exc:
                asked_schema = kwargs.get("response_format", {}).get("type") == "json_schema"
                if exc.status_code == 400 and asked_schema and _schema_rejected(exc):  # type: ignore[arg-type]
                    raise
                raise ProviderError(self.redact(_describe(model, exc))) from None
        _add_usage(usage, completion)
        choice = completion.choices[0]
        if getattr(choice.message, "refusal", None):
            raise ProviderError(self.redact(f"{model} refused: {choice.message.refusal}"))
        if choice.finish_reason == "length":
            raise ProviderError(f"{model}: the reply was cut off at the token limit")
        return completion

    async def _structured(
        self, role: str, model: str, messages: list[dict[str, Any]], reply_type: type[R]
    ) -> tuple[R, dict[str, Any]]:
        start = time.perf_counter()
        usage = Usage()
        reply: R | None = None
        response_format: dict[str, Any] = {"type": "json_object"}
        completion = None
        if not self.json_mode_only:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": reply_type.__name__, "schema": strict_schema(reply_type), "strict": True},
            }
            try:
                completion = await self._call(model, messages, usage, response_format=response_format)
            except openai.BadRequestError:
                self.json_mode_only = True  # this server has no strict schemas: JSON mode from now on
                response_format = {"type": "json_object"}
        mode = "json_object" if self.json_mode_only else "json_schema"
        if completion is None:
            schema_text = templates.json_mode_instructions(reply_type.model_json_schema())
            messages = [{"role": "system", "content": schema_text}, *messages]
            completion = await self._call(model, messages, usage, response_format=response_format)
        content = completion.choices[0].message.content or ""
        reply, error = _validate(reply_type, content)
        if reply is None:  # one repair request carrying the validation error, in the same mode
            mode += "+repair"
            messages = [*messages, {"role": "assistant", "content": content}, _repair(error)]
            completion = await self._call(model, messages, usage, response_format=response_format)
            reply, error = _validate(reply_type, completion.choices[0].message.content or "")
            if reply is None:
                raise ProviderError(f"{role} {model} did not return valid JSON after one repair: {error}")
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


def _validate(reply_type: type[R], content: str) -> tuple[R | None, str]:
    try:
        return reply_type.model_validate_json(content), ""
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the reply"
        return None, f"{where}: {first['msg']}"[:300]
    except ValueError as exc:
        return None, f"not JSON: {exc}"[:300]


def _repair(error: str) -> dict[str, str]:
    return {
        "role": "user",
        "content": f"That reply was not valid ({error}). Reply again with only the corrected JSON object.",
    }


def _describe(model: str, exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    if status is None:
        return f"{model}: cannot reach the server ({type(exc).__name__})"
    hint = " (billing quota exhausted)" if getattr(exc, "code", None) == "insufficient_quota" else ""
    return f"{model}: HTTP {status}{hint}: {_message(exc)}"  # type: ignore[arg-type]


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


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return str(exc)[:200]


def _small_data_uri(path: Path, longest: int = 768) -> str:
    """Downscaled JPEG: vision tokens grow with pixels, and a description needs no more."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((longest, longest))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
