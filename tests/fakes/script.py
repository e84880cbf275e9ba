"""Scripted faults and replies for the fake provider server.

A :class:`Script` holds one FIFO queue of *entries*. Each entry pairs an endpoint with an action, a
repeat count and optional filters; when a request reaches an endpoint the server takes the first
matching entry (and decrements its count). Endpoints:

========== ==========================================================================================
``chat``   ``POST /v1/chat/completions``
``create`` ``POST /v1/predictions`` and ``POST /v1/models/{owner}/{name}/predictions``
``poll``   ``GET /v1/predictions/{id}``
``cancel`` ``POST /v1/predictions/{id}/cancel``
``file``   ``GET /files/{prediction_id}/{name}`` (output downloads)
``upload`` ``POST /v1/files``
========== ==========================================================================================

Actions usable on every endpoint: :class:`HttpError`, :class:`ConnectionReset`, :class:`Hang`,
:class:`Delay`. Only on ``create`` (they shape the prediction that gets created, the create request
itself succeeds): :class:`FailPrediction`, :class:`CancelPrediction`, :class:`StallPrediction`,
:class:`SlowPrediction`, :class:`MissingOutput`, :class:`CorruptOutput`. Only on ``chat``:
:class:`ChatReply`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeAlias

Endpoint = Literal["chat", "create", "poll", "cancel", "file", "upload"]
ENDPOINTS: tuple[Endpoint, ...] = ("chat", "create", "poll", "cancel", "file", "upload")


# -- transport-level actions (any endpoint) ----------------------------------------------------
@dataclass(frozen=True)
class HttpError:
    """Answer with an error status instead of handling the request.

    The body follows the provider: OpenAI ``{"error": {"message", "type", "param", "code"}}`` on
    ``chat``; RFC 7807 ``{"title", "detail", "status"}`` elsewhere. ``retry_after`` (seconds) adds
    a ``Retry-After`` header (whole seconds, rounded up, as the replicate client only reads digits),
    ``retry-after-ms`` on ``chat``, and a ``retry_after`` JSON field on Replicate errors.
    ``after_create`` (``create`` only): the prediction *is* created before the error is returned.
    ``echo_auth``: the error message repeats the request's ``Authorization`` header, as some providers,
    gateways and proxies do (the key the client sent comes back in the error body).
    """

    status: int = 500
    detail: str | None = None
    retry_after: float | None = None
    code: str | None = None
    after_create: bool = False
    echo_auth: bool = False


@dataclass(frozen=True)
class ConnectionReset:
    """Close the socket (TCP RST) without sending a response. ``after_create`` as in HttpError."""

    after_create: bool = False


@dataclass(frozen=True)
class Hang:
    """Keep the request open for ``seconds`` (longer than the client timeout), then drop it."""

    seconds: float = 30.0
    after_create: bool = False


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds``, then handle the request normally (extra latency for one call)."""

    seconds: float


# -- prediction outcomes (``create`` only) ------------------------------------------------------
@dataclass(frozen=True)
class FailPrediction:
    """The prediction ends ``failed`` with ``error`` once its latency has elapsed. ``echo_auth``: the
    error (and so the prediction's logs, which end with it) repeats the create request's ``Authorization``
    header, as a model that dumps its environment or request on a crash does."""

    error: str = "CUDA out of memory. Tried to allocate 2.00 GiB (fake failure)"
    echo_auth: bool = False


@dataclass(frozen=True)
class CancelPrediction:
    """The prediction ends ``canceled`` (as if canceled on the website) once its latency elapsed."""


@dataclass(frozen=True)
class StallPrediction:
    """The prediction stays ``processing`` forever (until the client cancels it)."""


@dataclass(frozen=True)
class SlowPrediction:
    """Override the model latency for this one prediction."""

    seconds: float


@dataclass(frozen=True)
class MissingOutput:
    """The prediction succeeds but its output URLs answer 404 (a ``data:`` mode server still
    returns http URLs for it)."""


@dataclass(frozen=True)
class CorruptOutput:
    """The prediction succeeds but its output files hold bytes that are not an image / video."""


# -- chat replies (``chat`` only) ------------------------------------------------------------------
@dataclass(frozen=True)
class ChatReply:
    """A scripted chat completion.

    ``content=None`` keeps the content the server would have generated (schema instance, Yes/No,
    ...). ``truncate`` cuts that content in half and reports ``finish_reason="length"`` (``parse()``
    raises ``LengthFinishReasonError``). ``refusal`` sets ``message.refusal`` with ``content=null``.
    ``yes_probability`` overrides the server setting for a logprobs (Yes/No) reply.
    ``first_token`` scripts a logprobs reply exactly: (token, probability) pairs, most likely first; the
    first pair is the generated token and the first ``top_logprobs`` pairs are its alternatives.
    ``drop_fields`` removes those keys from the generated JSON (:meth:`missing`): valid JSON, not the schema.
    """

    content: str | None = None
    finish_reason: Literal["stop", "length", "content_filter"] = "stop"
    refusal: str | None = None
    truncate: bool = False
    yes_probability: float | None = None
    #: top-level keys left out of the generated JSON reply (valid JSON that misses required fields)
    drop_fields: tuple[str, ...] = ()
    first_token: tuple[tuple[str, float], ...] | None = None

    NOT_JSON_TEXT: ClassVar[str] = "Sure! Here is a vivid description of the scene you asked for."

    @classmethod
    def not_json(cls) -> ChatReply:
        return cls(content=cls.NOT_JSON_TEXT)

    @classmethod
    def missing(cls, *fields: str) -> ChatReply:
        """The reply the server would generate, without these top-level fields."""
        return cls(drop_fields=fields)

    @classmethod
    def cut_off(cls, content: str | None = None) -> ChatReply:
        return cls(content=content, truncate=True, finish_reason="length")

    @classmethod
    def refuse(cls, message: str = "I'm sorry, but I can't help with that request.") -> ChatReply:
        return cls(refusal=message)


TransportAction: TypeAlias = HttpError | ConnectionReset | Hang | Delay
PredictionAction: TypeAlias = (
    FailPrediction | CancelPrediction | StallPrediction | SlowPrediction | MissingOutput | CorruptOutput
)
Action: TypeAlias = TransportAction | PredictionAction | ChatReply

_TRANSPORT = (HttpError, ConnectionReset, Hang, Delay)
_PREDICTION = (
    FailPrediction,
    CancelPrediction,
    StallPrediction,
    SlowPrediction,
    MissingOutput,
    CorruptOutput,
)
ACTION_TYPES: dict[str, type] = {cls.__name__: cls for cls in (*_TRANSPORT, *_PREDICTION, ChatReply)}


def action_from_dict(data: dict[str, Any]) -> Action:
    """Build an action from ``{"action": "HttpError", "status": 429, ...}`` (standalone server API)."""
    data = dict(data)
    name = data.pop("action")
    cls = ACTION_TYPES.get(name)
    if cls is None:
        raise ValueError(f"unknown action {name!r}; known: {sorted(ACTION_TYPES)}")
    allowed = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in allowed})


def _check(endpoint: str, action: Action) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; use one of {ENDPOINTS}")
    if isinstance(action, _PREDICTION) and endpoint != "create":
        raise ValueError(f"{type(action).__name__} only applies to the 'create' endpoint")
    if isinstance(action, ChatReply) and endpoint != "chat":
        raise ValueError("ChatReply only applies to the 'chat' endpoint")
    if getattr(action, "after_create", False) and endpoint != "create":
        raise ValueError("after_create only applies to the 'create' endpoint")
    if not isinstance(action, (*_TRANSPORT, *_PREDICTION, ChatReply)):
        raise TypeError(f"not a script action: {action!r}")


@dataclass
class ScriptEntry:
    endpoint: Endpoint
    action: Action
    remaining: int
    model: str | None = None
    match: str | None = None
    used: int = field(default=0)

    def matches(self, endpoint: str, model: str | None, body_text: str) -> bool:
        return (
            self.endpoint == endpoint
            and (self.model is None or self.model == model)
            and (self.match is None or self.match in body_text)
        )


class Script:
    """Thread-safe FIFO of scripted actions, consumed by the server's request handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[ScriptEntry] = []

    def add(
        self,
        endpoint: Endpoint,
        *actions: Action,
        times: int = 1,
        model: str | None = None,
        match: str | None = None,
    ) -> None:
        """Queue ``actions`` (in order, each ``times`` times) for the next matching requests.

        ``model`` restricts an entry to one model id (Replicate ``owner/name``, or the chat request's
        ``model``); ``match`` to requests whose raw body text contains that substring.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        for action in actions:
            _check(endpoint, action)
        with self._lock:
            self._entries.extend(ScriptEntry(endpoint, a, times, model, match) for a in actions)

    def take(self, endpoint: Endpoint, *, model: str | None = None, body_text: str = "") -> Action | None:
        """Pop the next action for a request (``None`` = handle it normally)."""
        with self._lock:
            for entry in self._entries:
                if entry.matches(endpoint, model, body_text):
                    entry.remaining -= 1
                    entry.used += 1
                    if entry.remaining == 0:
                        self._entries.remove(entry)
                    return entry.action
        return None

    def pending(self, endpoint: Endpoint | None = None) -> list[ScriptEntry]:
        """Entries not used up yet (a test can assert its script was fully consumed)."""
        with self._lock:
            return [e for e in self._entries if endpoint is None or e.endpoint == endpoint]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
