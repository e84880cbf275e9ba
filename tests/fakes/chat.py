"""Build OpenAI chat-completion responses for the fake provider server (no HTTP in here).

:func:`complete` validates a request body the way the OpenAI API does for the features fbloop uses
and returns the response JSON, or raises :class:`ChatError` (rendered as an OpenAI error body).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.media import decode_data_uri, open_image
from tests.fakes.schema_gen import instance_for_schema
from tests.fakes.script import ChatReply

JsonDict = dict[str, Any]
YesProbability = float | Callable[[JsonDict], float]
ChatHandler = Callable[[JsonDict], "str | ChatReply | None"]

#: Model-name prefixes treated as reasoning models: they reject logprobs (403), a temperature other
#: than 1 and ``max_tokens`` (400), like the real API.
REASONING_MODEL_PREFIXES: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
IMAGE_TOKENS_LOW, IMAGE_TOKENS_HIGH = 85, 765
REASONING_TOKENS = 64
CACHE_MIN_TOKENS, CACHE_BLOCK = 1024, 128
MAX_TOP_LOGPROBS = 20
#: Share of the probability mass given to "Yes"/"No" spellings; the rest goes to filler tokens.
YES_NO_MASS = 0.98
_YES_SPELLINGS = (("Yes", 0.85), ("yes", 0.1), (" Yes", 0.05))
_NO_SPELLINGS = (("No", 0.85), ("no", 0.1), (" No", 0.05))
_FILLERS = ("Maybe", "The", "I", "Based", "It", "This", "There", "Sure", "Not", "Unclear")
_TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")
_YES_NO = {"yes", "no"}


class ChatError(Exception):
    """An API error: HTTP ``status`` with an OpenAI ``{"error": {...}}`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JsonDict = {"error": {"message": message, "type": error_type, "param": param, "code": code}}


@dataclass
class ChatSettings:
    """Knobs of the fake chat endpoint (all mutable while the server runs)."""

    yes_probability: YesProbability = 0.7
    json_mode_only: bool = False
    reasoning_model_prefixes: tuple[str, ...] = REASONING_MODEL_PREFIXES
    #: Called with the request body before the default generator; may return a content string, a
    #: :class:`ChatReply` or ``None`` (fall back to the generated reply).
    handler: ChatHandler | None = None


@dataclass
class PromptCache:
    """Remembers message prefixes so repeated long prompts report ``cached_tokens`` like OpenAI."""

    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached_tokens(self, model: str, message_tokens: list[tuple[str, int]]) -> int:
        """Tokens of the longest already-seen message prefix (≥ 1024, in 128-token blocks)."""
        digest, total, best = hashlib.sha256(model.encode()), 0, 0
        with self._lock:
            for text, tokens in message_tokens:
                digest.update(text.encode())
                total += tokens
                key = digest.hexdigest()
                if key in self._seen:
                    best = total
                self._seen.add(key)
        return (best // CACHE_BLOCK) * CACHE_BLOCK if best >= CACHE_MIN_TOKENS else 0


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _parts(message: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        yield {"type": "text", "text": content}
    elif isinstance(content, list):
        yield from (part for part in content if isinstance(part, Mapping))


def message_text(message: Mapping[str, Any]) -> str:
    return "\n".join(str(p.get("text", "")) for p in _parts(message) if p.get("type") == "text")


def last_user_text(messages: list[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return message_text(messages[-1]) if messages else ""


def _check_image(part: Mapping[str, Any], where: str) -> int:
    """Validate an ``image_url`` part; returns its prompt-token cost."""
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, Mapping) else None
    if not isinstance(url, str):
        raise ChatError(400, f"Missing required parameter: '{where}.image_url.url'.", param=where)
    if url.startswith("data:"):
        try:
            _, payload = decode_data_uri(url)
            open_image(payload)
        except ValueError as exc:
            raise ChatError(
                400,
                "You uploaded an unsupported image. Please make sure your image is valid.",
                param=where,
                code="invalid_image_format",
            ) from exc
    elif not url.startswith(("http://", "https://")):
        raise ChatError(400, f"Invalid image URL: '{where}.image_url.url'.", param=where, code="invalid_image_url")
    detail = image_url.get("detail", "auto")
    return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH


def _message_tokens(messages: list[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(canonical text, prompt tokens) per message; validates image parts on the way."""
    result = []
    for index, message in enumerate(messages):
        tokens = 4 + estimate_tokens(message_text(message))
        for part_index, part in enumerate(_parts(message)):
            if part.get("type") == "image_url":
                tokens += _check_image(part, f"messages[{index}].content[{part_index}]")
        result.append((json.dumps(message, sort_keys=True), tokens))
    return result


def _validate(body: JsonDict, settings: ChatSettings) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ChatError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.")
    if body.get("stream"):
        raise ChatError(400, "stream=true is not supported by the fake provider server", param="stream")
    top = body.get("top_logprobs")
    if top is not None and not body.get("logprobs"):
        raise ChatError(400, "Invalid value for 'top_logprobs': requires 'logprobs' to be true.", param="top_logprobs")
    if top is not None and not 0 <= int(top) <= MAX_TOP_LOGPROBS:
        raise ChatError(400, "Invalid 'top_logprobs': integer above maximum value (20).", param="top_logprobs")

    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        if settings.json_mode_only:
            message = "Invalid parameter: 'response_format' of type 'json_schema' is not supported"
            raise ChatError(400, f"{message} with this model.", param="response_format")
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not spec.get("name") or not isinstance(spec.get("schema"), Mapping):
            raise ChatError(400, "Missing required parameter: 'response_format.json_schema'.", param="response_format")

    if body["model"].startswith(settings.reasoning_model_prefixes):
        if body.get("logprobs"):
            raise ChatError(403, "You are not allowed to request logprobs from this model", code="model_not_supported")
        if body.get("temperature") not in (None, 1):
            raise ChatError(
                400,
                f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                "Only the default (1) value is supported.",
                param="temperature",
                code="unsupported_value",
            )
        if body.get("max_tokens") is not None:
            raise ChatError(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )


def schema_in_text(text: str) -> Mapping[str, Any] | None:
    """The first JSON schema embedded in prompt text (how callers describe JSON-mode output)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            candidate, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(candidate, dict) and ("properties" in candidate or "$defs" in candidate):
            return candidate
    return None


def generated_content(body: JsonDict, yes_probability: float) -> str:
    """What the fake model 'says' when nothing is scripted."""
    messages = body["messages"]
    source = last_user_text(messages)
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind == "json_schema":
        return json.dumps(instance_for_schema(response_format["json_schema"]["schema"], source))
    if kind == "json_object":
        schema = schema_in_text("\n".join(message_text(m) for m in messages))
        return json.dumps(instance_for_schema(schema, source) if schema else {})
    if body.get("logprobs"):  # a VQAScore-style "Answer Yes or No" judge call
        return "Yes" if yes_probability >= 0.5 else "No"
    words = source.split()[:40]
    return "Fake reply: " + (" ".join(words) if words else "nothing to reply to.")


def _logprob(probability: float) -> float:
    return math.log(max(probability, 1e-12))


def _top_entry(token: str, logprob: float) -> JsonDict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def yes_no_distribution(yes_probability: float) -> list[tuple[str, float]]:
    """Candidate first tokens and their probabilities, most likely first.

    Summing the "yes"-like spellings and normalising by all yes/no spellings gives back exactly
    ``yes_probability``.
    """
    p = min(max(yes_probability, 0.0), 1.0)
    candidates = [(tok, YES_NO_MASS * p * share) for tok, share in _YES_SPELLINGS]
    candidates += [(tok, YES_NO_MASS * (1 - p) * share) for tok, share in _NO_SPELLINGS]
    weights = [0.8**i for i in range(len(_FILLERS))]
    candidates += [(tok, (1 - YES_NO_MASS) * w / sum(weights)) for tok, w in zip(_FILLERS, weights, strict=True)]
    return sorted(candidates, key=lambda item: item[1], reverse=True)


def _yes_no_logprobs(content: str, yes_probability: float, top: int) -> list[JsonDict]:
    distribution = yes_no_distribution(yes_probability)
    chosen = dict(distribution).get(content, distribution[0][1])
    entry = _top_entry(content, _logprob(chosen))
    entry["top_logprobs"] = [_top_entry(tok, _logprob(p)) for tok, p in distribution[:top]]
    return [entry]


def _text_logprobs(content: str, top: int) -> list[JsonDict]:
    entries = []
    for index, token in enumerate(_TOKEN.findall(content)):
        entry = _top_entry(token, -0.01 - 0.001 * (index % 7))
        alternatives = [_top_entry(token, entry["logprob"])]
        alternatives += [_top_entry(f" {f}", -6.0 - i) for i, f in enumerate(_FILLERS)]
        entry["top_logprobs"] = alternatives[:top]
        entries.append(entry)
    return entries


def _resolve_yes_probability(value: YesProbability, body: JsonDict) -> float:
    return float(value(body)) if callable(value) else float(value)


def complete(
    body: JsonDict,
    *,
    reply: ChatReply | None,
    settings: ChatSettings,
    cache: PromptCache,
    completion_id: str,
) -> JsonDict:
    """The chat-completion JSON for a request ``body``; raises :class:`ChatError` for bad requests."""
    _validate(body, settings)
    message_tokens = _message_tokens(body["messages"])
    prompt_tokens = sum(tokens for _, tokens in message_tokens)
    reasoning = body["model"].startswith(settings.reasoning_model_prefixes)

    if reply is None and settings.handler is not None:
        handled = settings.handler(body)
        reply = ChatReply(content=handled) if isinstance(handled, str) else handled
    reply = reply or ChatReply()

    yes_probability = _resolve_yes_probability(
        reply.yes_probability if reply.yes_probability is not None else settings.yes_probability, body
    )
    finish_reason: str = reply.finish_reason
    content: str | None = None
    if reply.refusal is None and reply.first_token is not None and body.get("logprobs"):
        content = reply.first_token[0][0]
    elif reply.refusal is None:
        content = reply.content if reply.content is not None else generated_content(body, yes_probability)
        if reply.drop_fields:
            data = json.loads(content)
            content = json.dumps({k: v for k, v in data.items() if k not in reply.drop_fields})
        if reply.truncate:
            content = content[: len(content) // 2]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and estimate_tokens(content) > int(limit):
            content, finish_reason = content[: int(limit) * 4], "length"

    logprobs: JsonDict | None = None
    if body.get("logprobs"):
        top = int(body.get("top_logprobs") or 0)
        if reply.first_token is not None and content is not None:
            entry = _top_entry(content, _logprob(reply.first_token[0][1]))
            entry["top_logprobs"] = [_top_entry(tok, _logprob(p)) for tok, p in reply.first_token[:top]]
            logprobs = {"content": [entry], "refusal": None}
        elif content is not None and content.strip().lower() in _YES_NO:
            logprobs = {"content": _yes_no_logprobs(content, yes_probability, top), "refusal": None}
        else:
            logprobs = {"content": _text_logprobs(content or "", top), "refusal": None}

    completion_tokens = max(1, estimate_tokens(content or reply.refusal or ""))
    reasoning_tokens = REASONING_TOKENS if reasoning else 0
    completion_tokens += reasoning_tokens
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": reply.refusal, "annotations": []},
        "logprobs": logprobs,
        "finish_reason": finish_reason,
    }
    count = int(body.get("n") or 1)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
        "choices": [{**choice, "index": i} for i in range(count)],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens * count,
            "total_tokens": prompt_tokens + completion_tokens * count,
            "prompt_tokens_details": {
                "cached_tokens": cache.cached_tokens(body["model"], message_tokens),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens * count,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }
