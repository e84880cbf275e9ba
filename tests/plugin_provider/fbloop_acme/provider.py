"""Acme: images from an HTTP render service, as a third party would add a media provider to fbloop.

Its facts are its declaration: the role it plays, its own settings (the key as a `SecretStr`, so fbloop redacts
it without being told), the setting that configures it, its model and price. The service answers each render
with what it received (`received`, the request's headers), as some services' debug fields do: fbloop must keep
the key out of the run folder all the same.
"""

from __future__ import annotations

import base64
from typing import ClassVar

import httpx
from pydantic import Field, SecretStr

from feedback_cli.config import ProviderOptions, Settings
from feedback_cli.errors import ProviderError
from feedback_cli.providers.base import ImageRequest, JobHook, MediaOutput, VideoRequest
from feedback_cli.providers.provider import Provider, Role

PRICE_PER_IMAGE_USD = 0.004


class AcmeOptions(ProviderOptions):
    acme_api_key: SecretStr | None = Field(default=None, validation_alias="ACME_API_KEY")
    acme_base_url: str = Field(default="https://render.acme.invalid", validation_alias="ACME_BASE_URL")
    acme_model: str = Field(default="acme-render-1", validation_alias="ACME_MODEL")


class AcmeProvider(Provider):
    name: ClassVar[str] = "acme"
    roles: ClassVar[tuple[Role, ...]] = ("media",)
    Options = AcmeOptions
    configured_by: ClassVar[tuple[str, ...]] = ("acme_api_key",)

    def media(self) -> AcmeMedia:
        assert isinstance(self.options, AcmeOptions)
        return AcmeMedia(self.settings, self.options)


class AcmeMedia:
    name = "acme"

    def __init__(self, settings: Settings, options: AcmeOptions) -> None:
        if options.acme_api_key is None:
            raise ProviderError("acme needs ACME_API_KEY")
        self.options = options
        self.http = httpx.AsyncClient(
            base_url=options.acme_base_url,
            headers={"Authorization": f"Bearer {options.acme_api_key.get_secret_value()}"},
            timeout=settings.request_timeout_s,
        )

    def image_model(self) -> str:
        return self.options.acme_model

    def video_model(self, with_end_frame: bool) -> str:
        return "acme-no-video"

    def estimate_image_cost(self) -> float | None:
        return PRICE_PER_IMAGE_USD

    def estimate_video_cost(self, with_end_frame: bool, duration_s: float) -> float | None:
        return None

    async def generate_image(self, request: ImageRequest, job: JobHook) -> MediaOutput:
        body = {"model": self.image_model(), "prompt": request.prompt, "seed": request.seed}
        try:
            answer = await self.http.post("/v1/renders", json=body)
        except httpx.HTTPError as exc:
            raise ProviderError(f"acme: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise ProviderError(f"acme: HTTP {answer.status_code}: {answer.text}")
        render = answer.json()
        await job.submitted(render["id"])
        if job.settled is not None:
            job.settled("succeeded")
        if job.paid is not None:
            job.paid(PRICE_PER_IMAGE_USD)
        return MediaOutput(
            data=base64.b64decode(render["png_base64"]),
            extension=".png",
            model=self.image_model(),
            cost_usd=PRICE_PER_IMAGE_USD,
            job_id=render["id"],
            request={**body, "received": render.get("received", {})},
        )

    async def generate_video(self, request: VideoRequest, job: JobHook) -> MediaOutput:
        raise ProviderError("acme makes no videos")

    async def aclose(self) -> None:
        await self.http.aclose()
