"""A fake OpenAI + Replicate HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks enough of both APIs for the *real* ``openai`` and ``replicate`` client libraries, unpatched::

    server = FakeProviderServer().start()           # or the ``fake_server`` pytest fixture
    openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
    replicate.Client(api_token="r8_test", base_url=server.replicate_base_url)
    os.environ.update(server.env())                 # or hand env() to a subprocess

OpenAI — ``POST /v1/chat/completions``
    * ``response_format`` ``json_schema`` → content is a JSON instance of the schema, built from the
      schema itself with words of the last user message (see :mod:`tests.fakes.schema_gen`);
      ``json_object`` → an instance of a schema found in the prompt text, else ``{}``.
    * ``logprobs``/``top_logprobs`` without a response format → content ``"Yes"``/``"No"`` and
      ``top_logprobs`` over Yes/yes/ Yes/No/no/ No/fillers drawn from :attr:`yes_probability`
      (a float or ``callable(body) -> float``; default 0.7).
    * ``usage`` (≈ chars/4, images 85/765 tokens, ``cached_tokens`` for repeated long prefixes),
      ``max_tokens``/``max_completion_tokens`` cut the reply (``finish_reason="length"``), image
      parts (``data:`` URIs must decode as images), reasoning-model rules (logprobs → 403, ...).
    * :attr:`chat_handler` — ``callable(body) -> str | ChatReply | None`` for content that depends
      on the request; :attr:`json_mode_only` rejects ``json_schema`` with a 400.

Replicate — ``POST /v1/models/{o}/{n}/predictions``, ``POST /v1/deployments/{o}/{n}/predictions``,
``POST /v1/predictions`` (``version`` = ``owner/name[:hash]``, or a bare hash: map it to its model
with :meth:`register_version`, otherwise the model is ``unknown/version-<hash[:8]>``),
``GET /v1/predictions[/{id}]``, ``POST /v1/predictions/{id}/cancel``, ``GET /v1/models/{o}/{n}``,
``GET /v1/models/{o}/{n}/versions/{id}``, ``POST /v1/files``; ``Prefer: wait[=N]`` is honoured.
    * Predictions finish after :attr:`image_latency` / :attr:`video_latency` seconds (defaults 0.05 /
      0.1; chat calls take :attr:`llm_latency`, default 0), or :attr:`model_latency` ``[model]``
      (status ``starting`` for the first 20 %, then ``processing``, then ``succeeded``).
    * Video models (:meth:`is_video_model`) return one URL string, image models a list with
      ``num_outputs`` URLs — except models in :attr:`single_output_models` (flux-1.1-pro, kontext,
      imagen, ideogram ... as on Replicate), which return one string.
    * Outputs are real files (PNG/JPEG/WEBP by ``output_format``, default PNG; H.264 MP4), served at
      ``{url}/files/{prediction_id}/{name}``, or inlined as ``data:`` URIs with
      ``output_mode="data"``. Note: the replicate client wraps only ``https:``/``data:`` strings in
      ``FileOutput``; these ``http://`` URLs come back as plain ``str``.
    * Video inputs ``start_image``/``first_frame_image``/``image``/... given as a ``data:`` URI or
      a URL of this server become the first frame; an undecodable one fails the prediction.

Every request needs ``Authorization: Bearer <token>`` on ``/v1/*`` (401 otherwise, or when
:attr:`accepted_tokens` is set and the token is not in it); ``Basic <credentials>`` is accepted too, as an
authenticating proxy would (httpx sends it for a base URL with ``user:password@``).

Faults — :attr:`script` (:class:`tests.fakes.script.Script`) plus shortcuts::

    server.fail_next_creates(429, retry_after=1, count=2)     # 429 + Retry-After + JSON retry_after
    server.fail_next_creates(503)                               # 500/502/503 ...
    server.reset_next_creates(after_create=True)                # created, then the socket is reset
    server.hang_next_creates(seconds=30)                        # longer than the client timeout
    server.fail_next_polls(503, retry_after=0)                  # GETs: the client retries these
    server.fail_next_predictions("CUDA OOM")                    # ends "failed" with that error
    server.fail_next_chats(401, echo_auth=True)                 # the error body repeats the Authorization
    server.fail_next_creates(422, echo_auth=True)               # header; also fail_next_predictions(...)
    server.cancel_next_predictions() / server.stall_next_predictions()
    server.break_next_outputs("missing" | "corrupt")            # output 404s / is not an image
    server.set_model_latency("kwaivgi/kling-v2.1", 2.0)
    server.cut("poll", "cancel") / server.restore()            # a network outage: reset until restored
    server.queue_chat_replies('{"prompt": "x"}', ChatReply.not_json(), ChatReply.cut_off(),
                              ChatReply.refuse())
    server.fail_next_chats(429, retry_after=0.01, count=3)    # the SDK retries 2x by default
    server.reset_next_chats() / server.hang_next_chats(seconds)
    server.queue_chat_replies(ChatReply.missing("scores"))    # valid JSON without a required field
    server.schema_error_next_chats()                           # a gateway's 500: reply failed the schema

Billing: :attr:`billed_chats` lists every chat completion answered with ``usage`` (what a provider
bills), one dict per response: ``model``, ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``.
    server.script.add("create", Delay(0.5), HttpError(502), times=1, model="minimax/video-01")

Every scripted entry is consumed by the next request that matches its endpoint and filters
(``model=``, ``match=`` substring of the request body).

Observing — :attr:`requests` (:class:`RecordedRequest`: method, path, headers, body, endpoint),
:meth:`requests_for`, :attr:`predictions`, :attr:`predictions_created`,
:attr:`predictions_per_model`, :meth:`duplicate_predictions`, :attr:`max_in_flight_predictions`,
:attr:`in_flight_predictions`, :attr:`max_concurrent_requests`, :meth:`max_concurrent`,
:attr:`chat_completions`, :attr:`auth_tokens`, :attr:`file_downloads`, :attr:`internal_errors`,
:meth:`stats`, and the bill: :meth:`billed_predictions` / :attr:`billed_usd` (what Replicate charges:
every prediction that succeeded, at :data:`REPLICATE_PRICES`; failed and canceled ones cost nothing).

Standalone: ``python -m tests.fakes.provider_server --port 0 --image-latency 2 --video-latency 10``
prints the base URL on its first line, then ``KEY=value`` lines of :meth:`env`. Control endpoints
(no auth): ``GET /_fake/stats``, ``GET /_fake/requests``, ``POST /_fake/config`` (latencies,
``yes_probability``, ``json_mode_only``, ``output_mode``, ``model_latency``, ``public_url``: the address
put into prediction and file URLs, e.g. a forwarder's in front of this server), ``POST /_fake/script``
(``{"endpoint": "create", "times": 2, "actions": [{"action": "HttpError", "status": 429}]}``).
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import hashlib
import itertools
import json
import math
import re
import signal
import socket
import struct
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit

from PIL import Image

from tests.fakes import media
from tests.fakes.chat import ChatError, ChatHandler, ChatSettings, PromptCache, YesProbability, complete
from tests.fakes.predictions import (
    TERMINAL,
    FakePrediction,
    OutputFile,
    iso,
    max_overlap,
    new_prediction_id,
    placeholder_version,
)
from tests.fakes.script import (
    ENDPOINTS,
    Action,
    CancelPrediction,
    ChatReply,
    ConnectionReset,
    CorruptOutput,
    Delay,
    Endpoint,
    FailPrediction,
    Hang,
    HttpError,
    MissingOutput,
    Script,
    SlowPrediction,
    StallPrediction,
    action_from_dict,
)

FAKE_OPENAI_API_KEY = "sk-test-fake-openai-key-000"
FAKE_REPLICATE_API_TOKEN = "r8_test_fake_replicate_token_000"

DEFAULT_VIDEO_MODELS: frozenset[str] = frozenset(
    {
        "kwaivgi/kling-v2.1",
        "kwaivgi/kling-v1.6-pro",
        "minimax/video-01",
        "minimax/hailuo-02",
        "wan-video/wan-2.1-i2v-480p",
        "wan-video/wan-2.2-i2v-fast",
        "bytedance/seedance-1-pro",
        "bytedance/seedance-1-lite",
        "google/veo-3",
        "luma/ray-2-540p",
    }
)
#: A model id containing one of these (case-insensitive) is a video model too.
DEFAULT_VIDEO_KEYWORDS: tuple[str, ...] = (
    "video",
    "kling",
    "veo",
    "seedance",
    "hailuo",
    "wan",
    "luma/ray",
    "pixverse",
)
#: Image models whose Replicate output is a single URL string rather than a list (substring match).
DEFAULT_SINGLE_OUTPUT_MODELS: frozenset[str] = frozenset(
    {"flux-1.1-pro", "flux-pro", "flux-kontext", "imagen", "ideogram", "recraft", "nano-banana"}
)
#: Input fields that may carry a start frame for video models.
START_IMAGE_FIELDS = ("start_image", "first_frame_image", "image", "start_image_url", "input_image")
#: Replicate's published prices for the models the fake bills (USD): per output image, per second of video
#: (kling "pro" mode, used with an end frame, at its own rate), per video. Kept here, not read from fbloop's
#: price table, so a test can compare fbloop's ledger against a bill fbloop did not compute.
REPLICATE_PRICES: dict[str, dict[str, float]] = {
    "black-forest-labs/flux-schnell": {"per_image": 0.003},
    "black-forest-labs/flux-dev": {"per_image": 0.025},
    "black-forest-labs/flux-1.1-pro": {"per_image": 0.04},
    "kwaivgi/kling-v2.1": {"per_second": 0.05, "per_second_pro": 0.09},
    "kwaivgi/kling-v1.6-pro": {"per_second": 0.098},
    "minimax/video-01": {"per_video": 0.50},
    "minimax/hailuo-02": {"per_second": 0.08},
    "bytedance/seedance-1-pro": {"per_second": 0.15},
    "bytedance/seedance-1-lite": {"per_second": 0.036},
    "luma/ray-2-540p": {"per_second": 0.10},
}
MAX_WAIT_SECONDS = 60
_WAIT_STEP = 0.01
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")

OutputMode = Literal["url", "data"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None (empty / not JSON)
    raw: bytes
    endpoint: str | None  # "chat", "create", "poll", "cancel", "file", "upload", other route name
    at: float = field(default_factory=time.monotonic)

    @property
    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
        return cls(status, json.dumps(payload).encode(), headers=headers or {})


class _ResetConnection(Exception):
    """Raised inside a handler to drop the connection without a response."""


@dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    raw: bytes
    body: Any
    params: dict[str, str]
    action: Action | None = None  # the scripted action taken for this request, if any


_Route = tuple[str, re.Pattern[str], str, Callable[["FakeProviderServer", _Request], _Response]]


class FakeProviderServer:
    """The fake server; see the module docstring. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        llm_latency: float = 0.0,
        image_latency: float = 0.05,
        video_latency: float = 0.1,
        yes_probability: YesProbability = 0.7,
        json_mode_only: bool = False,
        output_mode: OutputMode = "url",
        require_auth: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host, self._requested_port = host, port
        self.llm_latency = llm_latency
        self.image_latency = image_latency
        self.video_latency = video_latency
        self.model_latency: dict[str, float] = {}
        self.output_mode: OutputMode = output_mode
        self.require_auth = require_auth
        self.accepted_tokens: set[str] | None = None
        self.video_models: set[str] = set(DEFAULT_VIDEO_MODELS)
        self.video_keywords: tuple[str, ...] = DEFAULT_VIDEO_KEYWORDS
        self.single_output_models: set[str] = set(DEFAULT_SINGLE_OUTPUT_MODELS)
        self.versions: dict[str, str] = {}  # version id -> "owner/name"
        self.chat_settings = ChatSettings(yes_probability=yes_probability, json_mode_only=json_mode_only)
        self.script = Script()
        self.verbose = verbose
        self.prices: dict[str, dict[str, float]] = dict(REPLICATE_PRICES)
        #: the address prediction and file URLs name (default: this server's own)
        self.public_url: str | None = None
        #: route names (``poll``, ``cancel``, ``create``, ``list``, ``file``, ``chat`` ...) whose requests are
        #: reset, as in a network outage, until :meth:`restore` (value: only requests about that model, or
        #: None for all); and how many were
        self.cut_routes: dict[str, str | None] = {}
        self.cut_requests: Counter[str] = Counter()

        self.requests: list[RecordedRequest] = []
        self.predictions: dict[str, FakePrediction] = {}
        self.uploads: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.chat_completions = 0
        self.billed_chats: list[dict[str, Any]] = []
        self.file_downloads: Counter[str] = Counter()
        self.internal_errors: list[str] = []
        self._tokens: set[str] = set()
        self._active: Counter[str] = Counter()
        self._max_active: Counter[str] = Counter()
        self._files: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._prompt_cache = PromptCache()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        httpd = _HTTPServer((self.host, self._requested_port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-provider-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes hung requests and Prefer: wait loops
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def advertised_url(self) -> str:
        """The address put into prediction and file URLs (:attr:`public_url`, else :attr:`url`)."""
        return self.public_url or self.url

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def replicate_base_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables pointing both client libraries at this server."""
        return {
            "OPENAI_BASE_URL": self.openai_base_url,
            "REPLICATE_BASE_URL": self.replicate_base_url,
            "OPENAI_API_KEY": FAKE_OPENAI_API_KEY,
            "REPLICATE_API_TOKEN": FAKE_REPLICATE_API_TOKEN,
        }

    # -- chat settings ------------------------------------------------------------------------------
    @property
    def yes_probability(self) -> YesProbability:
        return self.chat_settings.yes_probability

    @yes_probability.setter
    def yes_probability(self, value: YesProbability) -> None:
        self.chat_settings.yes_probability = value

    @property
    def json_mode_only(self) -> bool:
        return self.chat_settings.json_mode_only

    @json_mode_only.setter
    def json_mode_only(self, value: bool) -> None:
        self.chat_settings.json_mode_only = value

    @property
    def chat_handler(self) -> ChatHandler | None:
        return self.chat_settings.handler

    @chat_handler.setter
    def chat_handler(self, handler: ChatHandler | None) -> None:
        self.chat_settings.handler = handler

    # -- model classification / configuration -------------------------------------------------------
    def is_video_model(self, model: str) -> bool:
        lowered = model.lower()
        return model in self.video_models or any(word in lowered for word in self.video_keywords)

    def is_single_output_model(self, model: str) -> bool:
        return self.is_video_model(model) or any(name in model.lower() for name in self.single_output_models)

    def latency_for(self, model: str) -> float:
        if model in self.model_latency:
            return self.model_latency[model]
        return self.video_latency if self.is_video_model(model) else self.image_latency

    def set_model_latency(self, model: str, seconds: float) -> None:
        self.model_latency[model] = seconds

    def register_version(self, model: str, version: str) -> None:
        """Let ``POST /v1/predictions`` accept a bare version id for ``model``."""
        self.versions[version] = model

    # -- scripting shortcuts ----------------------------------------------------------------------
    def fail_next_creates(
        self,
        status: int = 429,
        *,
        count: int = 1,
        retry_after: float | None = None,
        detail: str | None = None,
        model: str | None = None,
        after_create: bool = False,
        echo_auth: bool = False,
    ) -> None:
        """The next ``count`` prediction creates answer ``status`` (429 defaults to retry_after=1)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        action = HttpError(
            status, detail=detail, retry_after=retry_after, after_create=after_create, echo_auth=echo_auth
        )
        self.script.add("create", action, times=count, model=model)

    def reset_next_creates(self, count: int = 1, *, model: str | None = None, after_create: bool = False) -> None:
        self.script.add("create", ConnectionReset(after_create=after_create), times=count, model=model)

    def hang_next_creates(
        self, seconds: float = 30.0, *, count: int = 1, model: str | None = None, after_create: bool = False
    ) -> None:
        self.script.add("create", Hang(seconds, after_create=after_create), times=count, model=model)

    def fail_next_polls(
        self,
        status: int = 503,
        *,
        count: int = 1,
        retry_after: float | None = 0,
        model: str | None = None,
        detail: str | None = None,
        echo_auth: bool = False,
    ) -> None:
        action = HttpError(status, detail=detail, retry_after=retry_after, echo_auth=echo_auth)
        self.script.add("poll", action, times=count, model=model)

    def fail_next_predictions(
        self,
        error: str = FailPrediction.error,
        *,
        count: int = 1,
        model: str | None = None,
        echo_auth: bool = False,
    ) -> None:
        self.script.add("create", FailPrediction(error, echo_auth=echo_auth), times=count, model=model)

    def cancel_next_predictions(self, *, count: int = 1, model: str | None = None) -> None:
        self.script.add("create", CancelPrediction(), times=count, model=model)

    def stall_next_predictions(self, *, count: int = 1, model: str | None = None) -> None:
        self.script.add("create", StallPrediction(), times=count, model=model)

    def break_next_outputs(
        self, kind: Literal["missing", "corrupt"] = "missing", *, count: int = 1, model: str | None = None
    ) -> None:
        action = MissingOutput() if kind == "missing" else CorruptOutput()
        self.script.add("create", action, times=count, model=model)

    def queue_chat_replies(self, *replies: str | ChatReply, model: str | None = None, match: str | None = None) -> None:
        """Scripted chat replies, used one per call in order (strings are exact contents)."""
        actions = [ChatReply(content=r) if isinstance(r, str) else r for r in replies]
        self.script.add("chat", *actions, model=model, match=match)

    def fail_next_chats(
        self,
        status: int = 429,
        *,
        count: int = 1,
        retry_after: float | None = 0.01,
        code: str | None = None,
        detail: str | None = None,
        match: str | None = None,
        echo_auth: bool = False,
    ) -> None:
        """The next ``count`` chat calls answer ``status``.

        The openai SDK retries 429/5xx twice by default, honouring ``retry-after-ms``: the small
        default ``retry_after`` keeps those retries fast (pass ``None`` to send no retry header).
        """
        action = HttpError(status, detail=detail, retry_after=retry_after, code=code, echo_auth=echo_auth)
        self.script.add("chat", action, times=count, match=match)

    def schema_error_next_chats(self, count: int = 1, *, match: str | None = None) -> None:
        """The next ``count`` chat calls answer 500 with the error a gateway that validates replies
        against the JSON schema (LiteLLM's ``JSONSchemaValidationError``) returns: no usage, nothing
        in :attr:`billed_chats`, though upstream the model did run."""
        self.script.add("chat", HttpError(500, detail=GATEWAY_SCHEMA_ERROR, retry_after=None), times=count, match=match)

    def reset_next_chats(self, count: int = 1, *, match: str | None = None) -> None:
        self.script.add("chat", ConnectionReset(), times=count, match=match)

    def hang_next_chats(self, seconds: float = 30.0, *, count: int = 1, match: str | None = None) -> None:
        self.script.add("chat", Hang(seconds), times=count, match=match)

    def cut(self, *routes: str, model: str | None = None) -> None:
        """A network outage for these routes: every request to them (about ``model``, if given: a create of
        it, or a poll / cancel of one of its predictions) is reset until :meth:`restore`."""
        with self._lock:
            self.cut_routes.update(dict.fromkeys(routes, model))

    def restore(self) -> None:
        with self._lock:
            self.cut_routes.clear()

    # -- the bill -----------------------------------------------------------------------------------------
    def price_of(self, prediction: FakePrediction) -> float:
        """What Replicate charges for one succeeded prediction (0 for a model without a price here)."""
        price = self.prices.get(prediction.model, {})
        if "per_image" in price:
            return price["per_image"] * len(prediction.outputs)
        if "per_second" in price:
            seconds = float(prediction.input.get("duration", 5))
            pro = prediction.input.get("mode") == "pro" and "per_second_pro" in price
            return (price["per_second_pro"] if pro else price["per_second"]) * seconds
        return price.get("per_video", 0.0)

    def billed_predictions(self) -> list[FakePrediction]:
        """The predictions Replicate bills: those that succeeded (failed and canceled ones are free)."""
        with self._lock:
            return [p for p in self.predictions.values() if p.status() == "succeeded"]

    @property
    def billed_usd(self) -> float:
        return round(sum(self.price_of(p) for p in self.billed_predictions()), 6)

    # -- observation ----------------------------------------------------------------------------------
    def requests_for(self, endpoint: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    @property
    def predictions_created(self) -> int:
        with self._lock:
            return len(self.predictions)

    @property
    def predictions_per_model(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(p.model for p in self.predictions.values()))

    def duplicate_predictions(self) -> list[tuple[str, dict[str, Any], int]]:
        """(model, input, times) for every model+input that was submitted more than once."""
        with self._lock:
            keys = Counter((p.model, json.dumps(p.input, sort_keys=True)) for p in self.predictions.values())
        return [(model, json.loads(inp), n) for (model, inp), n in keys.items() if n > 1]

    @property
    def max_in_flight_predictions(self) -> int:
        """Most predictions that were created but not yet finished at the same moment."""
        with self._lock:
            return max_overlap((p.created_mono, p.finished_mono()) for p in self.predictions.values())

    @property
    def in_flight_predictions(self) -> int:
        with self._lock:
            return sum(p.status() not in TERMINAL for p in self.predictions.values())

    @property
    def max_concurrent_requests(self) -> int:
        return self.max_concurrent()

    def max_concurrent(self, endpoint: str = "*") -> int:
        """Most HTTP requests handled at once (all, or one endpoint such as "chat" / "create")."""
        with self._lock:
            return self._max_active[endpoint]

    @property
    def auth_tokens(self) -> set[str]:
        with self._lock:
            return set(self._tokens)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "url": self.url,
                "requests": len(self.requests),
                "requests_per_endpoint": dict(Counter(r.endpoint for r in self.requests)),
                "predictions_created": self.predictions_created,
                "predictions_per_model": self.predictions_per_model,
                "predictions_per_status": dict(Counter(p.status() for p in self.predictions.values())),
                "in_flight_predictions": self.in_flight_predictions,
                "max_in_flight_predictions": self.max_in_flight_predictions,
                "max_concurrent_requests": dict(self._max_active),
                "chat_completions": self.chat_completions,
                "file_downloads": sum(self.file_downloads.values()),
                "duplicate_predictions": len(self.duplicate_predictions()),
                "billed_predictions": len(self.billed_predictions()),
                "billed_usd": self.billed_usd,
                "billed_by_prediction": {p.id: self.price_of(p) for p in self.billed_predictions()},
                "internal_errors": len(self.internal_errors),
                "pending_script": len(self.script.pending()),
            }

    # -- request plumbing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _track(self, endpoint: str) -> Iterator[None]:
        with self._lock:
            for key in ("*", endpoint):
                self._active[key] += 1
                self._max_active[key] = max(self._max_active[key], self._active[key])
        try:
            yield
        finally:
            with self._lock:
                for key in ("*", endpoint):
                    self._active[key] -= 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def handle(self, handler: _Handler) -> None:
        """Entry point from the HTTP handler thread: route, record, apply script, respond."""
        split = urlsplit(handler.path)
        raw = handler.read_body()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body = json.loads(raw) if raw and "json" in headers.get("content-type", "json") else None
        except ValueError:
            body = None
        route_name, route, params = self._route(handler.command, split.path)
        request = _Request(handler.command, split.path, split.query, headers, raw, body, params)
        record = RecordedRequest(handler.command, split.path, split.query, headers, body, raw, route_name)
        with self._lock:
            self.requests.append(record)
        if self.verbose:
            print(f"{handler.command} {handler.path} -> {route_name}", flush=True)
        with self._track(route_name or "unknown"):
            try:
                response = self._respond(request, route_name, route)
            except _ResetConnection:
                handler.reset()
                return
            except Exception:
                message = traceback.format_exc()
                with self._lock:
                    self.internal_errors.append(message)
                response = _Response.json(500, {"title": "Fake server bug", "detail": message, "status": 500})
        handler.send(response)

    def _route(
        self, method: str, path: str
    ) -> tuple[str | None, Callable[[FakeProviderServer, _Request], _Response] | None, dict[str, str]]:
        for route_method, pattern, name, func in _ROUTES:
            if route_method == method and (match := pattern.fullmatch(path)):
                return name, func, match.groupdict()
        return None, None, {}

    def _respond(
        self,
        request: _Request,
        name: str | None,
        route: Callable[[FakeProviderServer, _Request], _Response] | None,
    ) -> _Response:
        if route is None or name is None:
            return self._error(request, 404, f"No route for {request.method} {request.path}")
        if name in self.cut_routes and self.cut_routes[name] in (None, self._model_of(name, request)):
            with self._lock:
                self.cut_requests[name] += 1
            raise _ResetConnection
        if request.path.startswith("/v1/") and (denied := self._check_auth(request)):
            return denied
        if name not in ENDPOINTS:
            return route(self, request)

        endpoint = cast(Endpoint, name)
        action = self.script.take(
            endpoint, model=self._model_of(endpoint, request), body_text=request.raw.decode(errors="replace")
        )
        if isinstance(action, Delay):
            self._sleep(action.seconds)
            action = None
        if isinstance(action, HttpError | ConnectionReset | Hang) and not action.after_create:
            return self._apply_fault(request, action)
        request.action = action
        response = route(self, request)
        if isinstance(action, HttpError | ConnectionReset | Hang) and response.status < 400:
            return self._apply_fault(request, action)  # after_create: the prediction exists now
        return response

    def _apply_fault(self, request: _Request, action: HttpError | ConnectionReset | Hang) -> _Response:
        if isinstance(action, ConnectionReset):
            raise _ResetConnection
        if isinstance(action, Hang):
            self._sleep(action.seconds)
            raise _ResetConnection
        return self._error(
            request,
            action.status,
            action.detail,
            retry_after=action.retry_after,
            code=action.code,
            echo_auth=action.echo_auth,
        )

    def _model_of(self, endpoint: str, request: _Request) -> str | None:
        if endpoint == "chat":
            return request.body.get("model") if isinstance(request.body, dict) else None
        if endpoint == "create":
            return self._create_target(request)[0]
        prediction = self.predictions.get(request.params.get("id", ""))
        return prediction.model if prediction else None

    def _check_auth(self, request: _Request) -> _Response | None:
        value = request.headers.get("authorization", "")
        # Bearer from the API key; Basic when the base URL carries user:password (httpx sends those, as
        # to an authenticating proxy in front of the provider)
        scheme, _, token = value.partition(" ")
        token = token.strip() if scheme.lower() in ("bearer", "basic") else ""
        if token:
            with self._lock:
                self._tokens.add(token)
        if not self.require_auth:
            return None
        if not token:
            return self._error(request, 401, "You did not pass an authentication token")
        if self.accepted_tokens is not None and token not in self.accepted_tokens:
            return self._error(request, 401, "Invalid authentication token", code="invalid_api_key")
        return None

    def _error(
        self,
        request: _Request,
        status: int,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        echo_auth: bool = False,
    ) -> _Response:
        """An error in the style of the provider that owns ``request.path``; ``echo_auth`` appends the
        request's Authorization header to the message, as a careless provider or proxy does."""
        headers: dict[str, str] = {}
        echo = _echo_authorization(request.headers) if echo_auth else ""
        wait = retry_after if retry_after is not None else 1
        if retry_after is not None:
            headers["Retry-After"] = str(math.ceil(retry_after))
        if request.path.startswith("/v1/chat/"):
            if retry_after is not None:
                headers["retry-after-ms"] = str(round(retry_after * 1000))
            if status == 429 and code is None:
                code = "rate_limit_exceeded"
            message = (detail or _openai_message(status, request.body, wait)) + echo
            error = ChatError(status, message, code=code, error_type=_openai_error_type(status))
            return _Response.json(status, error.body, headers)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        payload: dict[str, Any] = {"title": phrase, "status": status}
        if status == 429:
            payload["title"] = "Request was throttled."
            payload["detail"] = detail or f"Request was throttled. Your rate limit resets in ~{math.ceil(wait)}s."
            payload["retry_after"] = wait
        else:
            payload["detail"] = detail or phrase
        payload["detail"] += echo
        return _Response.json(status, payload, headers)

    # -- output files -------------------------------------------------------------------------------
    def _file_url(self, prediction: FakePrediction, output: OutputFile) -> str:
        return f"{self.advertised_url}/files/{prediction.id}/{output.name}"

    def _render_output(self, prediction: FakePrediction, output: OutputFile) -> str:
        if self.output_mode == "data" and prediction.output_fault != "missing":
            payload, mime = self._output_bytes(prediction, output)
            return media.data_uri(payload, mime)
        return self._file_url(prediction, output)

    def _output_bytes(self, prediction: FakePrediction, output: OutputFile) -> tuple[bytes, str]:
        _, extension = output.name.rsplit(".", 1)
        if prediction.output_fault == "corrupt":
            return media.CORRUPT_BYTES, "video/mp4" if output.kind == "video" else f"image/{extension}"
        key = (prediction.id, output.name)
        with prediction.lock:
            if key not in self._files:
                self._files[key] = self._generate(prediction, output)
            return self._files[key]

    def _generate(self, prediction: FakePrediction, output: OutputFile) -> tuple[bytes, str]:
        seed_value = prediction.input.get("seed")
        seed = media.seed_for(
            prediction.model,
            prediction.input.get("prompt", ""),
            seed_value if isinstance(seed_value, int) else prediction.id,
            output.index,
        )
        if output.kind == "video":
            start = self._start_frame(prediction.input)
            return media.make_video(prediction.input, seed, start), "video/mp4"
        payload, _, mime = media.make_image(prediction.input, seed)
        return payload, mime

    def _start_frame(self, model_input: Mapping[str, Any]) -> Image.Image | None:
        """The first image-like input, decoded; raises ValueError when it cannot be read."""
        for name in START_IMAGE_FIELDS:
            value = model_input.get(name)
            if not isinstance(value, str):
                continue
            if value.startswith("data:"):
                return media.open_image(media.decode_data_uri(value)[1])
            base = next((b for b in (self.url, self.advertised_url) if value.startswith(f"{b}/files/")), None)
            if base is not None:
                return media.open_image(self._local_file(value, base))
        return None

    def _local_file(self, url: str, base: str) -> bytes:
        parts = url[len(base) :].split("/")  # "", "files", id|"uploads", name|upload id, ...
        if parts[2] == "uploads" and parts[3] in self.uploads:
            return self.uploads[parts[3]][1]
        prediction = self.predictions.get(parts[2])
        if prediction is None or prediction.status() != "succeeded" or prediction.output_fault == "missing":
            raise ValueError(f"404 for {url}")
        for output in prediction.outputs:
            if output.name == parts[3]:
                return self._output_bytes(prediction, output)[0]
        raise ValueError(f"404 for {url}")

    # -- routes: OpenAI ------------------------------------------------------------------------------
    def _chat(self, request: _Request) -> _Response:
        if not isinstance(request.body, dict):
            return self._error(request, 400, "We could not parse the JSON body of your request.")
        action = request.action
        completion_id = f"chatcmpl-fake{next(self._ids):06d}"
        try:
            payload = complete(
                request.body,
                reply=action if isinstance(action, ChatReply) else None,
                settings=self.chat_settings,
                cache=self._prompt_cache,
                completion_id=completion_id,
            )
        except ChatError as error:
            return _Response.json(error.status, error.body)
        self._sleep(self.llm_latency)
        with self._lock:
            self.chat_completions += 1
            usage = payload["usage"]
            self.billed_chats.append(
                {
                    "model": payload["model"],
                    "prompt_tokens": usage["prompt_tokens"],
                    "completion_tokens": usage["completion_tokens"],
                    "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
                }
            )
        headers = {
            "x-request-id": f"req_{completion_id}",
            "openai-processing-ms": str(round(self.llm_latency * 1000)),
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
        }
        return _Response.json(200, payload, headers)

    # -- routes: Replicate predictions ---------------------------------------------------------------
    def _create_target(self, request: _Request) -> tuple[str | None, str | None]:
        """(model, version) named by a create request, or (None, reason) when it names none."""
        if "owner" in request.params:
            model = f"{request.params['owner']}/{request.params['name']}"
            return model, placeholder_version(model)
        version = request.body.get("version") if isinstance(request.body, dict) else None
        if not isinstance(version, str) or not version:
            return None, "version is required"
        if _VERSION_ID.match(version):  # a bare version id: see register_version()
            return self.versions.get(version, f"unknown/version-{version[:8]}"), version
        model, _, version_id = version.partition(":")
        if model.count("/") != 1:
            return None, "Invalid version or not permitted"
        return model, version_id or placeholder_version(model)

    def _create(self, request: _Request) -> _Response:
        model, version = self._create_target(request)
        if model is None:
            return self._error(request, 422, version)
        body = request.body if isinstance(request.body, dict) else {}
        model_input = body.get("input")
        if not isinstance(model_input, dict):
            return self._error(request, 422, "input is required and must be an object")
        is_video = self.is_video_model(model)
        num_outputs = 1 if is_video else model_input.get("num_outputs", 1)
        if not isinstance(num_outputs, int) or not 1 <= num_outputs <= 10:
            return self._error(request, 422, "num_outputs: must be an integer between 1 and 10")

        prediction_id = new_prediction_id()
        if is_video:
            outputs = [OutputFile("output.mp4", "video", 0)]
        else:
            extension = media.image_format(model_input)[1]
            outputs = [OutputFile(f"out-{i}.{extension}", "image", i) for i in range(num_outputs)]
        prediction = FakePrediction(
            id=prediction_id,
            model=model,
            version=str(version),
            input=model_input,
            is_video=is_video,
            latency=self.latency_for(model),
            outputs=outputs,
            single_output=self.is_single_output_model(model),
            webhook=body.get("webhook"),
        )
        self._apply_outcome(prediction, request.action, request.headers)
        with self._lock:
            self.predictions[prediction_id] = prediction

        wait = _prefer_wait(request.headers.get("prefer", ""))
        if wait:
            deadline = time.monotonic() + wait
            while prediction.status() not in TERMINAL and time.monotonic() < deadline:
                if self._stopping.wait(_WAIT_STEP):
                    break
        return _Response.json(201, self._prediction_json(prediction))

    def _apply_outcome(
        self, prediction: FakePrediction, action: Action | None, headers: Mapping[str, str] | None = None
    ) -> None:
        if prediction.is_video:
            try:
                self._start_frame(prediction.input)
            except ValueError as exc:
                prediction.outcome, prediction.error = "fail", f"cannot identify image file: {exc}"
        match action:
            case FailPrediction(error=error, echo_auth=echo):
                # the logs end with the error, so an echoed header is in both, as on Replicate
                prediction.outcome = "fail"
                prediction.error = error + (_echo_authorization(headers or {}) if echo else "")
            case CancelPrediction():
                prediction.outcome = "cancel"
            case StallPrediction():
                prediction.outcome = "stall"
            case SlowPrediction(seconds=seconds):
                prediction.latency = seconds
            case MissingOutput():
                prediction.output_fault = "missing"
            case CorruptOutput():
                prediction.output_fault = "corrupt"

    def _prediction_json(self, prediction: FakePrediction) -> dict[str, Any]:
        return prediction.to_json(self.advertised_url, self._render_output)

    def _get_prediction(self, request: _Request) -> _Response:
        prediction = self.predictions.get(request.params["id"])
        if prediction is None:
            return self._error(request, 404, "Prediction not found")
        return _Response.json(200, self._prediction_json(prediction))

    def _cancel(self, request: _Request) -> _Response:
        prediction = self.predictions.get(request.params["id"])
        if prediction is None:
            return self._error(request, 404, "Prediction not found")
        prediction.cancel()
        return _Response.json(200, self._prediction_json(prediction))

    def _list_predictions(self, request: _Request) -> _Response:
        with self._lock:
            newest_first = sorted(self.predictions.values(), key=lambda p: p.created_mono, reverse=True)
        results = [self._prediction_json(p) for p in newest_first]
        return _Response.json(200, {"next": None, "previous": None, "results": results})

    # -- routes: Replicate models / files ------------------------------------------------------------
    def _version_json(self, model: str, version: str) -> dict[str, Any]:
        video = self.is_video_model(model)
        output: dict[str, Any] = {"type": "string", "format": "uri"}
        if not self.is_single_output_model(model):
            output = {"type": "array", "items": output}
        properties: dict[str, Any] = {
            "prompt": {"type": "string", "title": "Prompt"},
            "seed": {"type": "integer", "title": "Seed"},
            "aspect_ratio": {"type": "string", "default": "16:9" if video else "1:1"},
        }
        if video:
            properties |= {
                "start_image": {"type": "string", "format": "uri"},
                "duration": {"type": "integer"},
            }
        else:
            properties["num_outputs"] = {"type": "integer", "minimum": 1, "maximum": 4, "default": 1}
        schema = {
            "Input": {"type": "object", "properties": properties, "required": ["prompt"]},
            "Output": output,
        }
        return {
            "id": version,
            "created_at": iso(time.time()),
            "cog_version": "0.13.6",
            "openapi_schema": {"openapi": "3.0.2", "components": {"schemas": schema}},
        }

    def _get_model(self, request: _Request) -> _Response:
        owner, name = request.params["owner"], request.params["name"]
        model = f"{owner}/{name}"
        return _Response.json(
            200,
            {
                "url": f"https://replicate.com/{model}",
                "owner": owner,
                "name": name,
                "description": f"Fake {model}",
                "visibility": "public",
                "github_url": None,
                "paper_url": None,
                "license_url": None,
                "run_count": 0,
                "cover_image_url": None,
                "default_example": None,
                "latest_version": self._version_json(model, placeholder_version(model)),
            },
        )

    def _get_version(self, request: _Request) -> _Response:
        model = f"{request.params['owner']}/{request.params['name']}"
        return _Response.json(200, self._version_json(model, request.params["version"]))

    def _upload(self, request: _Request) -> _Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._error(request, 400, "expected multipart/form-data with a 'content' field")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.raw
        )
        fields: dict[str, tuple[str | None, str, bytes]] = {}
        for part in message.iter_parts():
            payload = part.get_payload(decode=True) or b""
            fields[part.get_param("name", header="content-disposition") or ""] = (
                part.get_filename(),
                part.get_content_type(),
                payload,
            )
        if "content" not in fields:
            return self._error(request, 400, "missing 'content' field")
        filename, mime, payload = fields["content"]
        file_id = new_prediction_id()
        name = filename or "file"
        metadata_raw = fields.get("metadata", (None, "", b"{}"))[2]
        created = time.time()
        info = {
            "id": file_id,
            "name": name,
            "content_type": mime,
            "size": len(payload),
            "etag": hashlib.md5(payload).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(payload).hexdigest(),
                "md5": hashlib.md5(payload).hexdigest(),
            },
            "metadata": json.loads(metadata_raw or b"{}"),
            "created_at": iso(created),
            "expires_at": iso(created + 24 * 3600),
            "urls": {"get": f"{self.url}/files/uploads/{file_id}/{name}"},
        }
        with self._lock:
            self.uploads[file_id] = (info, payload)
        return _Response.json(201, info)

    def _get_upload_info(self, request: _Request) -> _Response:
        upload = self.uploads.get(request.params["id"])
        if upload is None:
            return self._error(request, 404, "File not found")
        return _Response.json(200, upload[0])

    def _download(self, request: _Request) -> _Response:
        prediction_id, name = request.params["id"], request.params["filename"]
        with self._lock:
            self.file_downloads[request.path] += 1
        if prediction_id == "uploads":
            return self._download_upload(request)
        prediction = self.predictions.get(prediction_id)
        output = next((o for o in prediction.outputs if o.name == name), None) if prediction else None
        if (
            prediction is None
            or output is None
            or prediction.output_fault == "missing"
            or prediction.status() != "succeeded"
        ):
            return _Response(404, b"Not Found", content_type="text/plain")
        payload, mime = self._output_bytes(prediction, output)
        return _Response(200, payload, content_type=mime)

    def _download_upload(self, request: _Request) -> _Response:
        upload_id = request.params["filename"].split("/", 1)[0]
        upload = self.uploads.get(upload_id)
        if upload is None:
            return _Response(404, b"Not Found", content_type="text/plain")
        return _Response(200, upload[1], content_type=upload[0]["content_type"])

    # -- routes: control API for standalone use ------------------------------------------------------
    def _control_stats(self, request: _Request) -> _Response:
        return _Response.json(200, self.stats())

    def _control_requests(self, request: _Request) -> _Response:
        with self._lock:
            rows = [
                {
                    "method": r.method,
                    "path": r.path,
                    "endpoint": r.endpoint,
                    "headers": r.headers,
                    "body": r.body,
                }
                for r in self.requests
                if r.endpoint is None or not r.endpoint.startswith("control")
            ]
        return _Response.json(200, rows)

    def _control_config(self, request: _Request) -> _Response:
        body = request.body if isinstance(request.body, dict) else {}
        for key in ("llm_latency", "image_latency", "video_latency"):
            if key in body:
                setattr(self, key, float(body[key]))
        for key in ("yes_probability", "json_mode_only", "output_mode", "require_auth", "public_url"):
            if key in body:
                setattr(self, key, body[key])
        self.model_latency.update({k: float(v) for k, v in body.get("model_latency", {}).items()})
        return _Response.json(200, {"ok": True})

    def _control_script(self, request: _Request) -> _Response:
        body = request.body if isinstance(request.body, dict) else {}
        try:
            actions = [action_from_dict(a) for a in body.get("actions", [])]
            self.script.add(
                body["endpoint"],
                *actions,
                times=int(body.get("times", 1)),
                model=body.get("model"),
                match=body.get("match"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return _Response.json(400, {"detail": str(exc)})
        return _Response.json(200, {"ok": True, "pending": len(self.script.pending())})


#: what LiteLLM's proxy answers (HTTP 500) when a reply fails `response_format` schema validation
GATEWAY_SCHEMA_ERROR = (
    "litellm.APIError: JSONSchemaValidationError: model=gpt-4.1-mini, returned an invalid response="
    '{"overall": 80, "feedback": ["more light"], "faithful": true}, for schema={"type": "object", '
    '"properties": {"scores": {"type": "object"}, "overall": {"type": "number"}}, "required": ["scores", '
    '"overall", "feedback", "faithful"]}. Access raw response with `e.raw_response`. Received Model Group='
    "gpt-4.1-mini. Available Model Group Fallbacks=None. Schema validation failed: 'scores' is a required "
    "property"
)


def _echo_authorization(headers: Mapping[str, str]) -> str:
    return f" (request had Authorization: {headers.get('authorization', '')})"


def _openai_error_type(status: int) -> str:
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _openai_message(status: int, body: Any, wait: float) -> str:
    model = body.get("model", "gpt-4o-mini") if isinstance(body, dict) else "gpt-4o-mini"
    if status == 429:
        return (
            f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
            f"Limit 500, Used 500, Requested 1. Please try again in {wait:g}s."
        )
    if status >= 500:
        return "The server had an error while processing your request. Sorry about that!"
    return f"Fake error {status}"


def _prefer_wait(prefer: str) -> float:
    """Seconds to block for a ``Prefer: wait`` / ``Prefer: wait=N`` header (0 = async)."""
    for item in prefer.split(","):
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "wait":
            try:
                return float(min(max(int(value), 1), MAX_WAIT_SECONDS)) if value else float(MAX_WAIT_SECONDS)
            except ValueError:
                return float(MAX_WAIT_SECONDS)
    return 0.0


def _route(method: str, pattern: str, name: str, func: Callable[[FakeProviderServer, _Request], _Response]) -> _Route:
    return method, re.compile(pattern), name, func


_SEGMENT = r"[^/]+"
_ROUTES: list[_Route] = [
    _route("POST", r"/v1/chat/completions", "chat", FakeProviderServer._chat),
    _route(
        "POST",
        rf"/v1/models/(?P<owner>{_SEGMENT})/(?P<name>{_SEGMENT})/predictions",
        "create",
        FakeProviderServer._create,
    ),
    _route(
        "POST",
        rf"/v1/deployments/(?P<owner>{_SEGMENT})/(?P<name>{_SEGMENT})/predictions",
        "create",
        FakeProviderServer._create,
    ),
    _route("POST", r"/v1/predictions", "create", FakeProviderServer._create),
    _route("GET", r"/v1/predictions", "list", FakeProviderServer._list_predictions),
    _route("GET", rf"/v1/predictions/(?P<id>{_SEGMENT})", "poll", FakeProviderServer._get_prediction),
    _route("POST", rf"/v1/predictions/(?P<id>{_SEGMENT})/cancel", "cancel", FakeProviderServer._cancel),
    _route(
        "GET",
        rf"/v1/models/(?P<owner>{_SEGMENT})/(?P<name>{_SEGMENT})",
        "model",
        FakeProviderServer._get_model,
    ),
    _route(
        "GET",
        rf"/v1/models/(?P<owner>{_SEGMENT})/(?P<name>{_SEGMENT})/versions/(?P<version>{_SEGMENT})",
        "version",
        FakeProviderServer._get_version,
    ),
    _route("POST", r"/v1/files", "upload", FakeProviderServer._upload),
    _route("GET", rf"/v1/files/(?P<id>{_SEGMENT})", "upload_info", FakeProviderServer._get_upload_info),
    _route("GET", rf"/files/(?P<id>{_SEGMENT})/(?P<filename>.+)", "file", FakeProviderServer._download),
    _route("GET", r"/_fake/stats", "control_stats", FakeProviderServer._control_stats),
    _route("GET", r"/_fake/requests", "control_requests", FakeProviderServer._control_requests),
    _route("POST", r"/_fake/config", "control_config", FakeProviderServer._control_config),
    _route("POST", r"/_fake/script", "control_script", FakeProviderServer._control_script),
]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # hung handlers must not block stop()
    allow_reuse_address = True
    request_queue_size = 256
    fake: FakeProviderServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "FakeProviderServer/1.0"

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self.server.fake.handle(self)

    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def reset(self) -> None:
        """Abort the connection with a TCP RST and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; FakeProviderServer(verbose=True) prints one line per request instead


# -- standalone entry point ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI + Replicate provider server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = any free port)")
    parser.add_argument("--llm-latency", type=float, default=0.0, help="seconds per chat completion")
    parser.add_argument("--image-latency", type=float, default=0.05, help="seconds per image prediction")
    parser.add_argument("--video-latency", type=float, default=0.1, help="seconds per video prediction")
    parser.add_argument("--yes-probability", type=float, default=0.7, help="P(Yes) for logprob replies")
    parser.add_argument("--output-mode", choices=("url", "data"), default="url")
    parser.add_argument("--json-mode-only", action="store_true", help="reject json_schema response formats")
    parser.add_argument("--no-auth", action="store_true", help="do not require an Authorization header")
    parser.add_argument("--verbose", action="store_true", help="print one line per request")
    args = parser.parse_args(argv)

    server = FakeProviderServer(
        port=args.port,
        llm_latency=args.llm_latency,
        image_latency=args.image_latency,
        video_latency=args.video_latency,
        yes_probability=args.yes_probability,
        json_mode_only=args.json_mode_only,
        output_mode=args.output_mode,
        require_auth=not args.no_auth,
        verbose=args.verbose,
    ).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(server.url, flush=True)
    for key, value in server.env().items():
        print(f"{key}={value}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
