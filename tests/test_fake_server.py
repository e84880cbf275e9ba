"""The fake provider server, driven by the real (unpatched) openai and replicate client libraries."""

from __future__ import annotations

import base64
import io
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Literal

import av
import httpx
import openai
import pytest
import replicate
from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from replicate.exceptions import ModelError, ReplicateError

from tests.fakes import fixtures
from tests.fakes.chat import yes_no_distribution
from tests.fakes.provider_server import FAKE_OPENAI_API_KEY, FAKE_REPLICATE_API_TOKEN, FakeProviderServer
from tests.fakes.schema_gen import instance_for_schema
from tests.fakes.script import ChatReply, Delay, HttpError

ROOT = Path(__file__).resolve().parents[1]
fake_server = fixtures.fake_server
fake_provider_env = fixtures.fake_provider_env

IMAGE_MODEL = "black-forest-labs/flux-schnell"
VIDEO_MODEL = "kwaivgi/kling-v2.1"


class Shot(BaseModel):
    prompt: str
    camera: Literal["static", "pan", "zoom"]
    weight: float = Field(ge=0, le=1)


class Plan(BaseModel):
    prompt: str
    score: int = Field(ge=0, le=100)
    shots: list[Shot]
    note: str | None


@pytest.fixture
def llm(fake_server: FakeProviderServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake_server.openai_base_url, api_key=FAKE_OPENAI_API_KEY, max_retries=2)


@pytest.fixture
def rep(fake_server: FakeProviderServer) -> replicate.Client:
    client = replicate.Client(api_token=FAKE_REPLICATE_API_TOKEN, base_url=fake_server.replicate_base_url)
    client.poll_interval = 0.02
    return client


def _user(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


def _png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 40, 40)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- OpenAI ----------------------------------------------------------------------------------------
def test_parse_returns_schema_instance_built_from_the_prompt(
    fake_server: FakeProviderServer, llm: openai.OpenAI
) -> None:
    idea = "A red fox crossing a frozen river at dusk"
    completion = llm.chat.completions.parse(model="gpt-4o-mini", messages=_user(idea), response_format=Plan)
    plan = completion.choices[0].message.parsed
    assert isinstance(plan, Plan)
    assert plan.prompt and set(plan.prompt.split()) <= set(idea.split())
    assert 70 <= plan.score <= 90
    assert len(plan.shots) == 3 and len({shot.prompt for shot in plan.shots}) == 3
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0

    (request,) = fake_server.requests_for("chat")
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["response_format"]["json_schema"]["name"] == "Plan"
    assert request.bearer_token == FAKE_OPENAI_API_KEY
    assert FAKE_OPENAI_API_KEY in fake_server.auth_tokens


def test_logprobs_follow_the_configured_yes_probability(fake_server: FakeProviderServer, llm: openai.OpenAI) -> None:
    def ask() -> openai.types.chat.ChatCompletion:
        return llm.chat.completions.create(
            model="gpt-4o-mini",
            messages=_user("Is there a fox?"),
            logprobs=True,
            top_logprobs=8,
            max_tokens=1,
        )

    completion = ask()
    choice = completion.choices[0]
    assert choice.message.content == "Yes"
    assert choice.logprobs is not None and choice.logprobs.content is not None
    top = choice.logprobs.content[0].top_logprobs
    probs = {entry.token: math.exp(entry.logprob) for entry in top}
    yes = sum(p for token, p in probs.items() if token.strip().lower() == "yes")
    no = sum(p for token, p in probs.items() if token.strip().lower() == "no")
    assert yes / (yes + no) == pytest.approx(0.7, abs=1e-6)
    assert len(top) == 8

    fake_server.yes_probability = 0.2
    assert ask().choices[0].message.content == "No"
    fake_server.yes_probability = lambda body: 0.9 if "fox" in str(body["messages"]) else 0.1
    assert ask().choices[0].message.content == "Yes"


def test_image_inputs_are_accepted_and_invalid_ones_rejected(llm: openai.OpenAI) -> None:
    def ask(url: str) -> openai.types.chat.ChatCompletion:
        content = [
            {"type": "text", "text": "Describe this"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        ]
        return llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])

    completion = ask(_png_data_uri())
    assert completion.usage is not None and completion.usage.prompt_tokens > 85
    with pytest.raises(openai.BadRequestError):
        ask("data:image/png;base64,bm90IGFuIGltYWdl")


def test_scripted_chat_replies_are_used_in_order(fake_server: FakeProviderServer, llm: openai.OpenAI) -> None:
    fake_server.queue_chat_replies(
        '{"prompt": "exact", "score": 3, "shots": [], "note": null}',
        ChatReply.not_json(),
        ChatReply.cut_off(),
        ChatReply.refuse("No."),
    )

    def parse() -> openai.types.chat.ParsedChatCompletion[Plan]:
        return llm.chat.completions.parse(model="gpt-4o-mini", messages=_user("a fox"), response_format=Plan)

    assert parse().choices[0].message.parsed == Plan(prompt="exact", score=3, shots=[], note=None)
    with pytest.raises(ValidationError):
        parse()
    with pytest.raises(openai.LengthFinishReasonError):
        parse()
    message = parse().choices[0].message
    assert message.parsed is None and message.content is None and message.refusal == "No."
    assert fake_server.script.pending() == []


def test_chat_rate_limit_is_retried_by_the_sdk(fake_server: FakeProviderServer, llm: openai.OpenAI) -> None:
    fake_server.fail_next_chats(429, count=2, retry_after=0.01)
    completion = llm.chat.completions.create(model="gpt-4o-mini", messages=_user("hello"))
    assert completion.choices[0].message.content.startswith("Fake reply: hello")
    requests = fake_server.requests_for("chat")
    assert [r.headers.get("x-stainless-retry-count") for r in requests] == ["0", "1", "2"]

    fake_server.fail_next_chats(500, count=3)
    with pytest.raises(openai.InternalServerError):
        llm.chat.completions.create(model="gpt-4o-mini", messages=_user("hello"))


def test_json_mode_only_server_rejects_json_schema(fake_server: FakeProviderServer, llm: openai.OpenAI) -> None:
    fake_server.json_mode_only = True
    with pytest.raises(openai.BadRequestError, match="json_schema"):
        llm.chat.completions.parse(model="local", messages=_user("a fox"), response_format=Plan)

    schema = Plan.model_json_schema()
    prompt = f"Answer with JSON matching this schema: {schema}".replace("'", '"')
    completion = llm.chat.completions.create(
        model="local", messages=_user(prompt), response_format={"type": "json_object"}
    )
    assert Plan.model_validate_json(completion.choices[0].message.content or "")


def test_reasoning_models_reject_logprobs(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        llm.chat.completions.create(model="gpt-5-mini", messages=_user("x"), logprobs=True, top_logprobs=2)


def test_schema_generator_handles_refs_unions_and_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1, "maximum": 5}]},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "labels": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "kind": {"enum": ["a", "b"]},
            "pair": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
        "required": ["item", "maybe", "ratio", "labels", "kind", "pair"],
        "additionalProperties": False,
        "$defs": {"Item": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}}},
    }
    value = instance_for_schema(schema, "golden light")
    assert value == instance_for_schema(schema, "golden light")
    assert 1 <= value["maybe"] <= 5 and 0 < value["ratio"] < 1 and value["kind"] == "a"
    assert len(value["item"]["name"]) <= 5 and len(value["pair"]) == 2 and value["pair"][0] != value["pair"][1]
    assert value["labels"] and all(v is True for v in value["labels"].values())


def test_yes_no_distribution_normalises_to_the_yes_probability() -> None:
    distribution = dict(yes_no_distribution(0.35))
    yes = sum(p for t, p in distribution.items() if t.strip().lower() == "yes")
    no = sum(p for t, p in distribution.items() if t.strip().lower() == "no")
    assert yes / (yes + no) == pytest.approx(0.35)
    assert sum(distribution.values()) == pytest.approx(1.0)


# -- Replicate -------------------------------------------------------------------------------------
def test_image_prediction_lifecycle_and_png_outputs(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.set_model_latency(IMAGE_MODEL, 0.5)
    prediction = rep.predictions.create(
        model=IMAGE_MODEL, input={"prompt": "a fox", "aspect_ratio": "16:9", "num_outputs": 2, "seed": 7}
    )
    assert prediction.status == "starting" and prediction.output is None
    time.sleep(0.15)
    prediction.reload()
    assert prediction.status == "processing" and prediction.progress is not None
    prediction.wait()

    assert prediction.status == "succeeded"
    assert isinstance(prediction.output, list) and len(prediction.output) == 2
    assert prediction.metrics is not None and prediction.metrics["predict_time"] > 0
    assert prediction.started_at and prediction.completed_at and prediction.urls["get"].endswith(prediction.id)
    first = Image.open(io.BytesIO(httpx.get(prediction.output[0]).content))
    assert first.format == "PNG" and first.size == (256, 144)
    assert httpx.get(prediction.output[0]).content != httpx.get(prediction.output[1]).content
    assert fake_server.predictions_created == 1
    assert fake_server.requests_for("create")[0].bearer_token == FAKE_REPLICATE_API_TOKEN


def test_video_model_returns_a_decodable_mp4_built_from_the_start_image(
    fake_server: FakeProviderServer, rep: replicate.Client
) -> None:
    output = rep.run(VIDEO_MODEL, input={"prompt": "the fox runs", "start_image": _png_data_uri()})
    assert isinstance(output, str) and output.endswith(".mp4")  # http:// URLs are not FileOutput
    with av.open(io.BytesIO(httpx.get(output).content)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) > 0 and (frames[0].width, frames[0].height) == (160, 90)

    prediction = rep.predictions.create(
        model=VIDEO_MODEL, input={"prompt": "x", "start_image": "data:image/png;base64,AAAA"}
    )
    prediction.wait()
    assert prediction.status == "failed" and "cannot identify image file" in (prediction.error or "")


def test_prefer_wait_and_data_uri_outputs(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.output_mode = "data"
    (output,) = rep.run(IMAGE_MODEL, input={"prompt": "a fox", "output_format": "webp"})
    assert isinstance(output, replicate.helpers.FileOutput)
    assert Image.open(io.BytesIO(output.read())).format == "WEBP"
    (create,) = fake_server.requests_for("create")
    assert create.headers["prefer"] == "wait"
    assert fake_server.requests_for("poll") == []  # finished within the Prefer: wait window


def test_create_rate_limit_then_success(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.fail_next_creates(429, retry_after=1, count=2)
    for _ in range(2):
        with pytest.raises(ReplicateError) as caught:
            rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "a fox"})
        assert caught.value.status == 429 and "~1s" in (caught.value.detail or "")
    prediction = rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "a fox"})
    assert prediction.status == "starting"
    assert fake_server.predictions_created == 1 and fake_server.duplicate_predictions() == []

    fake_server.fail_next_creates(429, retry_after=3)
    response = httpx.post(
        f"{fake_server.url}/v1/models/{IMAGE_MODEL}/predictions",
        json={"input": {}},
        headers={"Authorization": f"Bearer {FAKE_REPLICATE_API_TOKEN}"},
    )
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json()["retry_after"] == 3


def test_transport_faults_on_create(fake_server: FakeProviderServer) -> None:
    client = replicate.Client(api_token=FAKE_REPLICATE_API_TOKEN, base_url=fake_server.url, timeout=httpx.Timeout(0.3))
    fake_server.fail_next_creates(502)
    with pytest.raises(ReplicateError) as caught:
        client.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    assert caught.value.status == 502

    fake_server.reset_next_creates()
    with pytest.raises(httpx.TransportError):
        client.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    assert fake_server.predictions_created == 0

    fake_server.reset_next_creates(after_create=True)
    with pytest.raises(httpx.TransportError):
        client.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    assert fake_server.predictions_created == 1  # created although the client never heard back

    fake_server.hang_next_creates(seconds=2)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{fake_server.url}/v1/models/{IMAGE_MODEL}/predictions",
            json={"input": {"prompt": "x"}},
            headers={"Authorization": f"Bearer {FAKE_REPLICATE_API_TOKEN}"},
            timeout=0.3,
        )
    assert time.monotonic() - started < 1.5


def test_replicate_create_ignores_the_client_timeout(fake_server: FakeProviderServer) -> None:
    """Pins a replicate 1.0.7 quirk: create() without ``wait`` sends ``timeout=None`` (no limit at
    all) and with ``wait=N`` uses read=N+0.5 s, whatever ``Client(timeout=...)`` says."""
    client = replicate.Client(api_token=FAKE_REPLICATE_API_TOKEN, base_url=fake_server.url, timeout=httpx.Timeout(0.1))
    fake_server.hang_next_creates(seconds=0.5)
    started = time.monotonic()
    with pytest.raises(httpx.TransportError) as caught:
        client.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    assert not isinstance(caught.value, httpx.TimeoutException)  # the server gave up first
    assert time.monotonic() - started >= 0.5


def test_failed_canceled_and_stalled_predictions(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.fail_next_predictions("NSFW content detected")
    with pytest.raises(ModelError, match="NSFW content detected"):
        rep.run(IMAGE_MODEL, input={"prompt": "x"})

    fake_server.cancel_next_predictions()
    canceled = rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    canceled.wait()
    assert canceled.status == "canceled" and canceled.output is None

    fake_server.stall_next_predictions(model=VIDEO_MODEL)
    stalled = rep.predictions.create(model=VIDEO_MODEL, input={"prompt": "x"})
    time.sleep(0.2)
    stalled.reload()
    assert stalled.status == "processing" and fake_server.in_flight_predictions == 1
    stalled.cancel()
    stalled.reload()
    assert stalled.status == "canceled" and fake_server.in_flight_predictions == 0


def test_broken_outputs(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.break_next_outputs("missing")
    fake_server.break_next_outputs("corrupt")
    (missing,) = rep.run(IMAGE_MODEL, input={"prompt": "x"})
    assert httpx.get(missing).status_code == 404
    (corrupt,) = rep.run(IMAGE_MODEL, input={"prompt": "x"})
    with pytest.raises(OSError):
        Image.open(io.BytesIO(httpx.get(corrupt).content))


def test_polls_answered_503_are_retried_by_the_client(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    prediction = rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    fake_server.fail_next_polls(503, count=2)
    prediction.wait()
    assert prediction.status == "succeeded"
    assert len(fake_server.requests_for("poll")) >= 3


def test_a_cut_resets_requests_until_restored(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.set_model_latency(VIDEO_MODEL, 30)
    video = rep.predictions.create(model=VIDEO_MODEL, input={"prompt": "x"})
    image = rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    fake_server.cut("poll", "cancel", model=VIDEO_MODEL)
    for call in (video.reload, video.cancel):
        with pytest.raises(httpx.TransportError):
            call()
    image.wait()  # polls of other models still get through
    assert image.status == "succeeded"
    assert fake_server.cut_requests == {"poll": 1, "cancel": 1}
    fake_server.restore()
    video.cancel()
    assert video.status == "canceled"


def test_the_bill_counts_succeeded_predictions_at_replicate_prices(
    fake_server: FakeProviderServer, rep: replicate.Client
) -> None:
    rep.run(IMAGE_MODEL, input={"prompt": "x", "num_outputs": 2})
    rep.run(VIDEO_MODEL, input={"prompt": "x", "duration": 10, "mode": "pro"})
    rep.run(VIDEO_MODEL, input={"prompt": "x", "duration": 5})
    fake_server.fail_next_predictions()
    with pytest.raises(ModelError):
        rep.run(IMAGE_MODEL, input={"prompt": "x"})
    fake_server.cancel_next_predictions()
    rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"}).wait()
    assert len(fake_server.billed_predictions()) == 3, "failed and canceled predictions are free"
    assert fake_server.billed_usd == pytest.approx(2 * 0.003 + 10 * 0.09 + 5 * 0.05)
    assert fake_server.stats()["billed_usd"] == fake_server.billed_usd


def test_public_url_names_the_address_in_front_of_the_server(
    fake_server: FakeProviderServer, rep: replicate.Client
) -> None:
    fake_server.public_url = "http://127.0.0.1:9"
    prediction = rep.predictions.create(model=IMAGE_MODEL, input={"prompt": "x"})
    prediction.wait()
    assert prediction.urls["get"].startswith("http://127.0.0.1:9/v1/predictions/")
    assert prediction.output[0].startswith("http://127.0.0.1:9/files/")


def test_counters_show_parallel_predictions(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.image_latency = 0.4
    barrier = threading.Barrier(5)

    def run(index: int) -> None:
        barrier.wait()
        rep.run(IMAGE_MODEL, input={"prompt": f"fox {index}"})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake_server.predictions_created == 5
    assert fake_server.predictions_per_model == {IMAGE_MODEL: 5}
    assert fake_server.max_in_flight_predictions == 5
    assert fake_server.max_concurrent("create") == 5 and fake_server.max_concurrent_requests >= 5
    assert fake_server.duplicate_predictions() == []


def test_missing_token_is_a_401(fake_server: FakeProviderServer) -> None:
    response = httpx.post(f"{fake_server.url}/v1/predictions", json={"version": "a/b", "input": {}})
    assert response.status_code == 401 and response.json()["status"] == 401
    response = httpx.post(f"{fake_server.openai_base_url}/chat/completions", json={})
    assert response.status_code == 401 and "error" in response.json()


def test_file_upload_and_versioned_run(fake_server: FakeProviderServer, rep: replicate.Client, tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    Image.new("RGB", (90, 160), (10, 200, 10)).save(start)
    output = rep.run("minimax/video-01", input={"prompt": "x", "first_frame_image": start})
    assert len(fake_server.uploads) == 1
    with av.open(io.BytesIO(httpx.get(output).content)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (90, 160)

    version = "a" * 64
    fake_server.register_version("stability-ai/sdxl", version)
    assert rep.run(f"stability-ai/sdxl:{version}", input={"prompt": "x"})
    assert fake_server.predictions_per_model["stability-ai/sdxl"] == 1


def test_generic_script_entries_filter_by_model(fake_server: FakeProviderServer, rep: replicate.Client) -> None:
    fake_server.script.add("create", Delay(0.2), HttpError(503), model=VIDEO_MODEL)
    assert rep.run(IMAGE_MODEL, input={"prompt": "x"})  # not affected
    started = time.monotonic()
    assert rep.run(VIDEO_MODEL, input={"prompt": "x"})  # delayed
    assert time.monotonic() - started >= 0.2
    with pytest.raises(ReplicateError):
        rep.run(VIDEO_MODEL, input={"prompt": "x"})


def test_fake_provider_env_points_module_level_clients_at_the_server(
    fake_provider_env: FakeProviderServer,
) -> None:
    (output,) = replicate.run(IMAGE_MODEL, input={"prompt": "x"})
    assert output.startswith(fake_provider_env.url)
    assert openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=_user("hi")).choices


def test_standalone_server_prints_its_url_and_serves_stats() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.provider_server", "--port", "0", "--image-latency", "0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        script = {"endpoint": "create", "actions": [{"action": "HttpError", "status": 503}]}
        assert httpx.post(f"{url}/_fake/script", json=script).status_code == 200
        client = replicate.Client(api_token="r8_x", base_url=url)
        with pytest.raises(ReplicateError):
            client.run(IMAGE_MODEL, input={"prompt": "x"})
        assert client.run(IMAGE_MODEL, input={"prompt": "x"})
        stats = httpx.get(f"{url}/_fake/stats").json()
        assert stats["predictions_created"] == 1 and stats["requests_per_endpoint"]["create"] == 2
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
