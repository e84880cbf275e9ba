"""Images and videos on Replicate through the `replicate` client, with the money-safety of paid calls.

- A prediction's id is handed to the engine (`JobHook.submitted`, which checkpoints it) before fbloop waits
  on it; a resumed run re-attaches to a recorded id instead of creating a new prediction.
- The client retries GETs but never POSTs, so creating a prediction has its own bounded retry: on 429
  (honouring the wait it names) and 5xx, with exponential backoff and jitter. An answer that never came
  (timeout, reset connection) is not retried: the prediction may exist, and a retry could pay twice.
- Polling backs off (short for images, longer for videos). When fbloop gives up on a prediction (its
  deadline passed, or polling failed six times in a row) it cancels it, unless FBLOOP_KEEP_PREDICTIONS is
  set. A prediction whose end fbloop has not seen (the cancel failed too, or it was kept) is never reported
  as failed: `JobInFlight` keeps the item in flight, and a resume re-attaches, downloads and books it.
- Every output is downloaded at once (Replicate deletes them after an hour): `https://` and `data:`
  come back from the client as FileOutput, `http://` as plain strings; both are handled.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import replicate
from replicate.exceptions import ReplicateError

from feedback_cli.config import Settings
from feedback_cli.errors import ProviderError, UsageError
from feedback_cli.providers.base import ImageRequest, JobHook, JobInFlight, MediaOutput, VideoRequest
from feedback_cli.providers.prices import load_prices
from feedback_cli.providers.replicate_models import describe_input, image_input, model, video_input

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "image/gif": ".gif",
    "video/webm": ".webm",
}
MAX_RETRY_WAIT_S = 60.0
ORPHAN_CLOCK_SLACK = timedelta(minutes=5)
#: polls in a row that may fail (each already retried by the client on 429/503/504) before fbloop gives up
POLL_FAILURES_BEFORE_GIVING_UP = 6
CANCEL_ATTEMPTS = 3
TERMINAL = ("succeeded", "failed", "canceled")
MAX_ERROR_CHARS = 300


class _LookupFailed(Exception):
    """The prediction list could not be read: whether a prediction exists is unknown."""


def describe_error(exc: BaseException, redact: Callable[[str], str] | None = None) -> str:
    """One line for a client error. A ReplicateError's own text is five lines ("ReplicateError Details:",
    title, status, detail, ...); an error body may be long or hold line breaks, and may echo the token."""
    if isinstance(exc, ReplicateError):
        text = exc.detail or exc.title or "no detail"
        text = f"HTTP {exc.status}: {text}" if exc.status else text
    else:
        text = str(exc).strip()
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return one_line(text, redact)


def one_line(text: str, redact: Callable[[str], str] | None = None) -> str:
    """Provider text as one bounded line, redacted first: cutting first could leave part of a secret, which
    the redactor would no longer recognise."""
    if redact is not None:
        text = redact(text)
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def retry_wait(error: ReplicateError, attempt: int) -> float:
    """The wait a 429 names ("... available in ~3s"), else exponential backoff; jittered, bounded."""
    named = re.search(r"(\d+(?:\.\d+)?)\s*s(?:ec(?:ond)?s?)?\b", error.detail or "")
    base = float(named.group(1)) if named and error.status == 429 else min(0.5 * 2**attempt, 8.0)
    return min(base + random.uniform(0, 0.25 * max(base, 0.1)), MAX_RETRY_WAIT_S)


def _extension(url: str, content_type: str | None) -> str:
    if content_type:
        ext = EXTENSIONS.get(content_type.split(";")[0].strip().lower())
        if ext:
            return ext
    suffix = Path(urlparse(url).path).suffix.lower()
    return suffix if suffix in set(EXTENSIONS.values()) else ".bin"


class ReplicateMedia:
    name = "replicate"

    def __init__(self, settings: Settings) -> None:
        if settings.replicate_api_token is None:
            raise UsageError("the Replicate backend needs REPLICATE_API_TOKEN")
        self.settings = settings
        self.prices = load_prices(settings.price_file)
        timeout = httpx.Timeout(settings.request_timeout_s, connect=10.0)
        # one client per run: its connection pool is reused by every create and poll
        self.client = replicate.Client(
            api_token=settings.replicate_api_token.get_secret_value(),
            base_url=settings.replicate_base_url,
            timeout=timeout,
        )
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        #: provider text (error details, a failed prediction's error) is redacted before it is a message
        self.redact = settings.redactor()
        #: predictions adopted as orphans in this process, so two resumed items never share one
        self.adopted: set[str] = set()

    # --- models and prices ---
    def image_model(self) -> str:
        return model(self.settings.image_model, "image").id

    def video_model(self, with_end_frame: bool) -> str:
        chosen = self.settings.storyboard_video_model if with_end_frame else self.settings.video_model
        return model(chosen, "video", end_frame=with_end_frame).id

    def estimate_image_cost(self) -> float | None:
        return self.prices.media_cost(self.image_model(), outputs=1)

    def estimate_video_cost(self, with_end_frame: bool, duration_s: float) -> float | None:
        spec = model(self.video_model(with_end_frame), "video", end_frame=with_end_frame)
        return self.prices.media_cost(spec.id, seconds=spec.nearest_duration(duration_s), end_frame=with_end_frame)

    # --- generation ---
    async def generate_image(self, request: ImageRequest, job: JobHook) -> MediaOutput:
        spec = model(self.settings.image_model, "image")
        data = image_input(spec, request.prompt, request.seed, request.aspect_ratio, request.reference_image)
        prediction = await self._run(spec.id, data, job, long_job=False)
        outputs = prediction.output if isinstance(prediction.output, list) else [prediction.output]
        cost = self.prices.media_cost(spec.id, outputs=max(len([o for o in outputs if o]), 1))
        if job.paid is not None:  # billed now, even if the download below fails
            job.paid(cost or 0.0)
        files = await self._download(prediction)
        return self._output(spec.id, data, prediction, files[0], cost)

    async def generate_video(self, request: VideoRequest, job: JobHook) -> MediaOutput:
        end = request.end_image is not None
        spec = model(self.video_model(end), "video", end_frame=end)
        data = video_input(
            spec, request.prompt, request.seed, request.start_image, request.end_image, request.duration_s
        )
        prediction = await self._run(spec.id, data, job, long_job=True)
        seconds = spec.nearest_duration(request.duration_s)
        cost = self.prices.media_cost(spec.id, seconds=seconds, end_frame=end)
        if job.paid is not None:  # billed now, even if the download below fails
            job.paid(cost or 0.0)
        files = await self._download(prediction)
        return self._output(spec.id, data, prediction, files[0], cost)

    def _output(
        self, model_id: str, data: dict[str, Any], prediction: Any, file: tuple[bytes, str], cost: float | None
    ) -> MediaOutput:
        payload, extension = file
        request = {"model": model_id, "input": describe_input(data), "prediction_id": prediction.id}
        if cost is None:
            request["cost_note"] = f"no price known for {model_id}; add it to FBLOOP_PRICE_FILE"
        return MediaOutput(
            data=payload,
            extension=extension,
            model=model_id,
            cost_usd=cost or 0.0,
            job_id=prediction.id,
            metrics=dict(prediction.metrics or {}),
            request=request,
        )

    async def _run(self, model_id: str, data: dict[str, Any], job: JobHook, long_job: bool) -> Any:
        if job.existing_job_id is not None:
            prediction = await self._reattach(job.existing_job_id, job)
        else:
            since = _parse_time(job.orphan_since) if job.orphan_since else None
            prediction = None
            if since:
                try:
                    prediction = await self._orphan(model_id, data, job, since)
                except _LookupFailed as exc:
                    # an earlier attempt may have created it: creating another without looking could pay twice
                    raise JobInFlight(
                        f"{model_id}: cannot look up whether the earlier attempt created a prediction ({exc}); "
                        "nothing new is created until that lookup works"
                    ) from None
            if prediction is None:
                prediction = await self._create(model_id, data, job)
            await job.submitted(prediction.id)  # in the checkpoint before any wait: a crash never pays twice
        return await self._wait(prediction, job, long_job)

    async def _reattach(self, job_id: str, job: JobHook) -> Any:
        try:
            return await self.client.predictions.async_get(job_id)
        except ReplicateError as exc:
            if exc.status == 404:
                self._settle(job, "gone")
                raise ProviderError(f"prediction {job_id} is not known to Replicate ({self._describe(exc)})") from None
            raise JobInFlight(f"cannot re-attach to prediction {job_id}: {self._describe(exc)}") from None
        except httpx.HTTPError as exc:
            raise JobInFlight(f"cannot re-attach to prediction {job_id}: {self._describe(exc)}") from None

    async def _orphan(self, model_id: str, data: dict[str, Any], job: JobHook, started: datetime) -> Any | None:
        """A prediction this item created before a crash took the process before its id was saved:
        same model and the very same input, created after the item started, owned by no other item."""
        # the provider's clock is not ours: a few minutes of slack; the full input and ownership keep it exact
        since = started - ORPHAN_CLOCK_SLACK
        try:
            page = await self.client.predictions.async_list()
        except (ReplicateError, httpx.HTTPError) as exc:
            raise _LookupFailed(self._describe(exc)) from None
        for candidate in page.results:
            created = _parse_time(getattr(candidate, "created_at", None))
            if candidate.id in job.claimed or candidate.id in self.adopted:
                continue
            if candidate.model != model_id or created is None or created < since:
                continue
            if candidate.status in ("failed", "canceled"):
                continue
            seen = candidate.input or {}
            # the whole input must match (prompt, seed, frames): another run with the same prompt is not ours
            if seen and all(seen.get(k) == v for k, v in data.items()):
                self.adopted.add(candidate.id)  # no await since the check: no other item can take it
                return candidate
        return None

    async def _create(self, model_id: str, data: dict[str, Any], job: JobHook) -> Any:
        """POST a prediction. The client never retries POSTs; this does, but only where paying twice is
        impossible: a 429 (nothing was created), a refused connection, and a 5xx or an unanswered request
        only after looking up whether the prediction exists after all (then it is adopted, not created again)."""
        attempt = 0
        while True:
            sent_at = datetime.now(UTC)
            try:
                return await asyncio.wait_for(
                    self.client.predictions.async_create(model=model_id, input=data),
                    timeout=self.settings.request_timeout_s,
                )
            except ReplicateError as exc:
                status = exc.status or 0
                detail = self._one_line(exc.detail or exc.title or "no detail")  # an error body may be long, multi-line
                if status >= 500:
                    try:
                        found = await self._orphan(model_id, data, job, sent_at)
                    except _LookupFailed as lookup:
                        self._unanswered(job, sent_at)
                        raise JobInFlight(
                            f"{model_id}: Replicate answered HTTP {status} and looking up whether the prediction "
                            f"was created failed too ({lookup}); not retried, since a retry could pay twice"
                        ) from None
                    if found is not None:
                        self._tell(
                            job,
                            f"Replicate answered HTTP {status}, but prediction {found.id} had been "
                            "created: using it instead of creating it again",
                        )
                        return found
                if not (status == 429 or status >= 500) or attempt >= self.settings.create_retries:
                    raise ProviderError(
                        f"{model_id}: creating the prediction failed (HTTP {status}): {detail}"
                    ) from None
                wait = retry_wait(exc, attempt)
                self._tell(
                    job,
                    f"Replicate answered HTTP {status} ({detail}); retry {attempt + 1} of "
                    f"{self.settings.create_retries} in {wait:.1f}s",
                )
                await asyncio.sleep(wait)
            except httpx.ConnectError as exc:  # nothing reached the server: safe to try again
                if attempt >= self.settings.create_retries:
                    raise ProviderError(f"{model_id}: cannot connect to Replicate: {self._describe(exc)}") from None
                wait = min(0.5 * 2**attempt, 8.0)
                self._tell(job, f"cannot connect to Replicate; retry {attempt + 1} in {wait:.1f}s")
                await asyncio.sleep(wait)
            except (TimeoutError, httpx.TimeoutException, httpx.TransportError) as exc:
                try:
                    found = await self._orphan(model_id, data, job, sent_at)
                except _LookupFailed as lookup:
                    self._unanswered(job, sent_at)
                    raise JobInFlight(
                        f"{model_id}: no answer to the create request ({type(exc).__name__}), and looking up "
                        f"whether it was created failed too ({lookup}); not retried, since a retry could pay twice"
                    ) from None
                if found is not None:
                    self._tell(
                        job,
                        f"no answer to the create request ({type(exc).__name__}), but prediction "
                        f"{found.id} had been created: using it instead of creating it again",
                    )
                    return found
                self._unanswered(job, sent_at)  # so a later --retry-failed looks for it before paying
                raise ProviderError(
                    f"{model_id}: no answer to the create request ({type(exc).__name__}); not retried, since the"
                    " prediction may exist and a retry could pay twice"
                ) from None
            attempt += 1

    def _describe(self, exc: BaseException) -> str:
        return describe_error(exc, self.redact)

    def _one_line(self, text: str) -> str:
        return one_line(text, self.redact)

    @staticmethod
    def _tell(job: JobHook, message: str) -> None:
        if job.retrying is not None:
            job.retrying(message)

    @staticmethod
    def _settle(job: JobHook, state: str) -> None:
        if job.settled is not None:
            job.settled(state)

    @staticmethod
    def _unanswered(job: JobHook, sent_at: datetime) -> None:
        if job.unanswered is not None:
            job.unanswered(sent_at.isoformat())

    async def _wait(self, prediction: Any, job: JobHook, long_job: bool) -> Any:
        deadline = time.monotonic() + self.settings.prediction_deadline_s
        interval = self.settings.poll_interval_s
        ceiling = 15.0 if long_job else 5.0
        failures = 0
        gave_up: str | None = None
        while prediction.status not in TERMINAL:
            if time.monotonic() >= deadline:
                gave_up = f"did not finish within {self.settings.prediction_deadline_s:g}s"
                prediction = await self._give_up(prediction, job, gave_up)
                break
            await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
            interval = min(interval * 1.5, ceiling)
            try:
                await prediction.async_reload()
                failures = 0
            except ReplicateError as exc:
                if exc.status == 404:
                    self._settle(job, "gone")
                    raise ProviderError(
                        f"prediction {prediction.id} is not known to Replicate ({self._describe(exc)})"
                    ) from None
                failures += 1
                if failures >= POLL_FAILURES_BEFORE_GIVING_UP:
                    gave_up = f"could not be polled: {failures} failures in a row ({self._describe(exc)})"
                    prediction = await self._give_up(prediction, job, gave_up)
                    break
            except httpx.HTTPError as exc:  # polls are safe to repeat
                failures += 1
                if failures >= POLL_FAILURES_BEFORE_GIVING_UP:
                    gave_up = f"could not be polled: {failures} failures in a row ({self._describe(exc)})"
                    prediction = await self._give_up(prediction, job, gave_up)
                    break
        if prediction.status == "succeeded":
            self._settle(job, "succeeded")
            if gave_up is not None:
                self._tell(job, f"prediction {prediction.id} {gave_up}, but it had succeeded: using it")
            return prediction
        if prediction.status == "failed":
            self._settle(job, "failed")
            error = self._one_line(str(prediction.error or "no error given"))
            raise ProviderError(f"prediction {prediction.id} failed: {error}")
        if prediction.status == "canceled":
            self._settle(job, "canceled")
            if gave_up is not None:
                raise ProviderError(f"prediction {prediction.id} {gave_up}; canceled")
            raise ProviderError(f"prediction {prediction.id} was canceled")
        # the cancel was accepted but has not taken effect yet: its end is still to be seen
        raise JobInFlight(f"prediction {prediction.id} {gave_up}; cancel requested, its end not seen yet")

    async def _give_up(self, prediction: Any, job: JobHook, why: str) -> Any:
        """Stop paying for a prediction fbloop will not wait for: cancel it (unless the user keeps
        predictions). Returns it as the cancel left it; raises JobInFlight when its fate stays unknown."""
        if self.settings.keep_predictions:
            raise JobInFlight(
                f"prediction {prediction.id} {why}; kept running (FBLOOP_KEEP_PREDICTIONS): a resume collects it"
            )
        error: BaseException | None = None
        for attempt in range(CANCEL_ATTEMPTS):
            try:
                await prediction.async_cancel()  # a cancel is safe to repeat
                error = None
                break
            except (ReplicateError, httpx.HTTPError) as exc:
                error = exc
                if isinstance(exc, ReplicateError) and (exc.status or 0) < 500 and exc.status != 429:
                    break
                if attempt + 1 < CANCEL_ATTEMPTS:
                    await asyncio.sleep(0.5 * 2**attempt)
        if error is not None:
            raise JobInFlight(
                f"prediction {prediction.id} {why}; canceling it failed too ({self._describe(error)}), so it may "
                "still finish: it stays in flight and a resume collects it"
            )
        if job.canceled is not None and prediction.status not in ("succeeded", "failed"):
            job.canceled(f"gave up on prediction {prediction.id} ({why}): canceled it at Replicate")
        return prediction

    async def _download(self, prediction: Any) -> list[tuple[bytes, str]]:
        outputs = prediction.output if isinstance(prediction.output, list) else [prediction.output]
        urls = [str(getattr(o, "url", o)) for o in outputs if o]
        if not urls:
            raise ProviderError(f"prediction {prediction.id} succeeded without an output")
        return list(await asyncio.gather(*(self._fetch(url) for url in urls)))

    async def _fetch(self, url: str) -> tuple[bytes, str]:
        if url.startswith("data:"):
            header, _, body = url.partition(",")
            mime = header[5:].split(";")[0]
            payload = base64.b64decode(body) if ";base64" in header else body.encode()
            return payload, _extension(url, mime)
        for attempt in range(self.settings.download_retries + 1):
            try:
                response = await self.http.get(url)
            except httpx.HTTPError as exc:
                if attempt >= self.settings.download_retries:
                    raise ProviderError(f"downloading {url} failed: {exc}") from None
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            if response.status_code == 200:
                return response.content, _extension(url, response.headers.get("content-type"))
            if response.status_code < 500 or attempt >= self.settings.download_retries:
                raise ProviderError(f"downloading {url} failed: HTTP {response.status_code}")
            await asyncio.sleep(0.5 * 2**attempt)
        raise ProviderError(f"downloading {url} failed")

    async def aclose(self) -> None:
        await self.http.aclose()
        # the replicate client has no public close; its async pool would otherwise leak a socket per run
        pool = getattr(self.client, "_Client__async_client", None)
        if pool is not None:
            await pool.aclose()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
