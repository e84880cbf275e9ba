"""VQAScore (docs/scorers.md §I.4): P("Yes" | image, 'Does this figure show "{prompt}"? Please answer yes or no.').

Two backends, `settings.vqa_backend`:

- `openai` (default): a vision-language model behind an OpenAI-compatible Chat Completions API
  (`settings.openai_base_url`, `settings.vqa_model`), called with the real `openai` client. One user message
  holds the question and the image (base64 data URL); `max_tokens=1`, `logprobs=True`,
  `top_logprobs=settings.vqa_top_logprobs` (<= 20). The value is t2v_metrics' own (`gpt4v_model.py`, v3.1):
  from the first generated token's top logprobs, P(yes) = exp(logprob) of "yes" if it is among them; otherwise
  1 - exp(logprob) of "no" if that is; otherwise 0. Never renormalised over {yes, no}. Tokens are compared
  stripped and lower-cased as there; one documented difference: when several variants of the word appear
  ("Yes", " yes", "YES") their probabilities are summed (t2v_metrics keeps whichever it meets last). The two
  fallbacks are noted in scores.json. Reasoning models (o1/o3/o4/gpt-5 families) return no logprobs (§I.4)
  and are refused.
- `t2v_metrics`: linzhiqiu/t2v_metrics' `VQAScore(model=settings.vqa_model)` if the user installed it (pin 2.x
  for clip-flant5-xxl, §I.4 "Version trap").

Raw value: a probability in 0..1. 0-100: 100 x P (§I.4 "Range and normalisation").
"""

from __future__ import annotations

import base64
import contextvars
import math
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from feedback_cli.errors import InputError, ScorerUnavailable
from feedback_cli.providers.base import SCORER_CALL_METER, BilledResponse, SyncCallMeter
from feedback_cli.scoring.base import DefaultSet, ImageScorer, NotedValue
from feedback_cli.scoring.requirements import Requirement

if TYPE_CHECKING:
    from feedback_cli.config import Settings

#: prompt tokens of one VQA question with an image, for the budget estimate of a call
VQA_PROMPT_TOKENS = 800
QUESTION = 'Does this figure show "{prompt}"? Please answer yes or no.'
_REASONING = re.compile(r"^(o1|o3|o4)(-|$)|^gpt-5", re.IGNORECASE)
_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


def question(prompt: str) -> str:
    return QUESTION.format(prompt=prompt)


def is_reasoning_model(model: str) -> bool:
    """o1/o3/o4 and gpt-5 families (with or without a provider prefix such as `openai/`)."""
    return bool(_REASONING.match(model.rsplit("/", 1)[-1].strip()))


def yes_probability(top_logprobs: Sequence[tuple[str, float]]) -> NotedValue:
    """P("yes") from the first answer token's (token, logprob) pairs, as t2v_metrics' GPT backend computes it.

    "yes" present: the sum of exp(logprob) over its variants (stripped, lower-cased). Else "no" present:
    1 - that sum for "no". Else 0. Never p_yes / (p_yes + p_no). The fallbacks carry a note.
    """
    p_yes = p_no = 0.0
    seen_yes = seen_no = False
    for token, logprob in top_logprobs:
        word = token.strip().lower()
        if word == "yes":
            p_yes += math.exp(logprob)
            seen_yes = True
        elif word == "no":
            p_no += math.exp(logprob)
            seen_no = True
    shown = len(top_logprobs)
    if seen_yes:
        return NotedValue(min(1.0, p_yes))
    if seen_no:
        return NotedValue(
            max(0.0, 1.0 - p_no),
            (f"'yes' not among the top {shown} first-token logprobs; P(yes) = 1 - P(no) as in t2v_metrics",),
        )
    return NotedValue(
        0.0, (f"neither 'yes' nor 'no' among the top {shown} first-token logprobs; P(yes) = 0 as in t2v_metrics",)
    )


def image_data_url(path: Path) -> str:
    """The file as a data URL; formats the API may not take are re-encoded as PNG."""
    mime = _MIME.get(path.suffix.lower())
    try:
        if mime is not None:
            data = path.read_bytes()
        else:
            import io

            from PIL import Image

            with Image.open(path) as img:
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
            data, mime = buf.getvalue(), "image/png"
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def check(settings: Settings) -> None:
    """Raise ScorerUnavailable if VQAScore cannot run with these settings (no network call)."""
    if settings.vqa_backend == "t2v_metrics":
        import importlib.util

        if importlib.util.find_spec("t2v_metrics") is None:
            raise ScorerUnavailable(
                "vqascore: FBLOOP_VQA_BACKEND=t2v_metrics but t2v_metrics is not installed",
                hint="pip install 't2v-metrics<3' (clip-flant5) or FBLOOP_VQA_BACKEND=openai",
            )
        return
    if is_reasoning_model(settings.vqa_model):
        raise ScorerUnavailable(
            f"vqascore: {settings.vqa_model} is a reasoning model and returns no logprobs, "
            "which VQAScore needs (docs/scorers.md §I.4)",
            hint="FBLOOP_VQA_MODEL=gpt-4.1 or gpt-4o",
        )
    if settings.openai_api_key is None and not settings.openai_base_url:
        raise ScorerUnavailable(
            "vqascore: no OPENAI_API_KEY (or OPENAI_BASE_URL of a local OpenAI-compatible server)",
            hint="set OPENAI_API_KEY, or choose other scorers with --scorer",
        )


class VQAScoreScorer(ImageScorer):
    """P(yes) from a VLM's first-token logprobs, or from t2v_metrics (docs/scorers.md §I.4)."""

    name: ClassVar[str] = "vqascore"
    raw_range: ClassVar[str] = "0..1 (P(yes))"
    default_weight: ClassVar[float] = 1.0
    default_set: ClassVar[DefaultSet] = "standard"
    pays_per_call: ClassVar[bool] = True

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        if settings.vqa_backend == "t2v_metrics":
            return [Requirement(cls.name, "python", "t2v_metrics package", "vqa_backend", "t2v_metrics")]
        label = f"OpenAI-compatible API ({settings.vqa_model})"
        return [Requirement(cls.name, "api", label, "vqa_model", settings.vqa_model)]

    @classmethod
    def unavailable(cls, settings: Settings) -> ScorerUnavailable | None:
        try:
            check(settings)
        except ScorerUnavailable as exc:
            return exc
        return None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        check(settings)
        self._client: Any = None

    @property
    def model_id(self) -> str:
        return f"{self.settings.vqa_backend}:{self.settings.vqa_model}"

    def call_estimate(self) -> float | None:
        """USD one question with an image may cost (the cap check before each request); None if unknown."""
        from feedback_cli.providers.prices import load_prices

        return load_prices(self.settings.price_file).llm_cost(self.settings.vqa_model, VQA_PROMPT_TOKENS, 1)

    def normalize(self, raw: float) -> float:
        if math.isnan(raw):
            return raw
        return 100.0 * min(1.0, max(0.0, raw))

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [v.raw for v in self.score_with_notes(images, prompt)]

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        if not images:
            return []
        if self.settings.vqa_backend == "t2v_metrics":
            return [NotedValue(v) for v in self._score_t2v(images, prompt)]
        workers = max(1, min(self.settings.llm_concurrency, len(images)))
        if workers == 1:
            return [self._score_one(Path(p), prompt) for p in images]
        outer = contextvars.copy_context()  # the engine's meter reaches the pool's threads too
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda p: outer.copy().run(self._score_one, Path(p), prompt), images))

    # ------------------------------------------------------------------ openai

    def client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            s = self.settings
            key = s.openai_api_key.get_secret_value() if s.openai_api_key is not None else "no-key"
            self._client = OpenAI(
                base_url=s.openai_base_url,
                api_key=key,
                timeout=s.request_timeout_s,
                max_retries=0,  # retried in `_ask`, so that every request sent is metered
            )
        return self._client

    def _score_one(self, path: Path, prompt: str, text: str | None = None) -> NotedValue:
        s = self.settings
        content = [
            {"type": "text", "text": text or question(prompt)},  # `text`: a DSG question as asked (elements)
            {"type": "image_url", "image_url": {"url": image_data_url(path)}},
        ]
        resp = self._ask(content)
        choice = resp.choices[0] if resp.choices else None
        content_lp = getattr(getattr(choice, "logprobs", None), "content", None) if choice else None
        if not content_lp:
            raise ScorerUnavailable(
                f"vqascore: {s.vqa_model} returned no logprobs, which VQAScore needs (docs/scorers.md §I.4)",
                hint="use a model that supports logprobs with images (gpt-4o, gpt-4.1)",
            )
        first = content_lp[0]
        pairs = [(t.token, t.logprob) for t in (first.top_logprobs or [])]
        if not pairs:
            pairs = [(first.token, first.logprob)]
        return yes_probability(pairs)

    def _ask(self, content: list[dict[str, Any]]) -> Any:
        """One chat completion, retried on 429/5xx/connection faults. Under a run, every request is held to the
        cap and recorded in the checkpoint before it is sent, and booked as its response arrives, whatever
        the reply then is (the engine's meter, `SCORER_CALL_METER`); under `fbloop score` each request is counted and
        priced for its report (`scoring.runner.PaidCallTally`), with no ledger and no cap."""
        import openai

        from feedback_cli.providers.openai_agents import may_have_run

        s = self.settings
        meter = SCORER_CALL_METER.get()
        estimate = self.call_estimate() if meter is not None else None
        redact = s.redactor()
        attempt = 0
        while True:
            call_id = meter.started(s.vqa_model, estimate) if meter is not None else ""
            try:
                resp = self.client().chat.completions.create(
                    model=s.vqa_model,
                    messages=[{"role": "user", "content": content}],
                    max_tokens=1,
                    temperature=0,
                    logprobs=True,
                    top_logprobs=s.vqa_top_logprobs,
                )
                break
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                detail = redact(_first_line(exc))  # the server's error text may echo the key it was sent
                if isinstance(exc, openai.APITimeoutError):  # it may have run to the end: priced at the estimate
                    _finish(meter, call_id, self._at_estimate(estimate, "no answer in time"), detail)
                elif may_have_run(exc):  # the connection was lost after the request went out
                    _finish(meter, call_id, self._at_estimate(estimate, "connection lost after sending"), detail)
                else:
                    _finish(meter, call_id, None, detail)  # an error answer: not billed
                if getattr(exc, "code", None) == "insufficient_quota" or attempt >= s.llm_retries:
                    raise ScorerUnavailable(f"vqascore: the {s.vqa_model} call failed: {detail}") from None
                time.sleep(min(8.0, 0.5 * 2**attempt))
                attempt += 1
            except openai.OpenAIError as exc:
                detail = redact(_first_line(exc))
                _finish(meter, call_id, None, detail)
                raise ScorerUnavailable(f"vqascore: the {s.vqa_model} call failed: {detail}") from None
            except BaseException:  # stopped while the request was out: the provider may bill it
                _finish(meter, call_id, self._at_estimate(estimate, "stopped before the answer came"))
                raise
        # billed: booked now, before anything below can reject the reply
        _finish(meter, call_id, self._priced(resp, estimate))
        return resp

    def _at_estimate(self, estimate: float | None, why: str) -> BilledResponse:
        note = f"{why}; booked at the call's estimate"
        return BilledResponse(self.settings.vqa_model, estimate, estimated=True, note=note)

    def _priced(self, resp: Any, estimate: float | None) -> BilledResponse:
        from feedback_cli.providers.prices import load_prices

        model = self.settings.vqa_model
        usage = getattr(resp, "usage", None)
        if usage is None:  # local servers may omit it
            if estimate is None:
                return BilledResponse(model, None, note="the server reported no token usage")
            return self._at_estimate(estimate, "the server reported no token usage")
        details = getattr(usage, "prompt_tokens_details", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cached_tokens = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
        return BilledResponse(
            model,
            load_prices(self.settings.price_file).llm_cost(model, prompt_tokens, completion_tokens, cached_tokens),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            request={"purpose": "vqa"},
        )

    # ------------------------------------------------------------------ t2v_metrics

    def _score_t2v(self, images: Sequence[Path], prompt: str) -> list[float]:
        from feedback_cli.scoring import loaders

        s = self.settings
        device = loaders.resolve_device(s.device)

        def load() -> Any:
            import t2v_metrics

            return t2v_metrics.VQAScore(model=s.vqa_model, device=str(device))

        try:
            model = loaders.cached("t2v_metrics", s.vqa_model, device, load)
        except ImportError as exc:
            raise ScorerUnavailable(f"vqascore: t2v_metrics cannot be imported: {exc}") from exc
        out = model(images=[str(p) for p in images], texts=[prompt])
        return [float(v) for v in out.reshape(len(images), -1)[:, 0].tolist()]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else repr(exc)


def _finish(meter: SyncCallMeter | None, call_id: str, billed: BilledResponse | None, error: str | None = None) -> None:
    if meter is not None:
        meter.finished(call_id, billed, error)
