"""Rounds, the parts that do not need a stage: DSG questions (offline and through the OpenAI-compatible
agents on the fake server), the element check with DSG's parent rule, the offline renderer and its pixel
reading, and the revision that turns failed questions into a revised prompt."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from feedback_cli.agents.questions import Question, QuestionReply, QuestionsRequest, normalize_questions
from feedback_cli.agents.revision import (
    CandidateSummary,
    FailedQuestion,
    RevisionRequest,
    RoundMemory,
    failed_questions,
    offline_revision,
)
from feedback_cli.config import Settings
from feedback_cli.providers.offline import scene
from feedback_cli.providers.offline.agents import OfflineAgents
from feedback_cli.providers.offline.media import draw_image, png_bytes
from feedback_cli.providers.openai_agents import OpenAIAgents
from feedback_cli.scoring import registry
from feedback_cli.scoring.elements import ElementsScorer, VideoElementsScorer, check

SIZE = (256, 144)
PROMPTS = Path(__file__).resolve().parents[1] / "examples" / "prompts.txt"


def q(id: int, category: str = "entity", parents: tuple[int, ...] = (), text: str = "") -> Question:
    return Question(id=id, parent_ids=list(parents), category=category, question=text or f"question {id}?")  # type: ignore[arg-type]


# --- DSG's parent rule --------------------------------------------------------------------------------------


def test_parent_answered_no_zeroes_and_skips_its_children() -> None:
    questions = [
        q(1),
        q(2, "attribute", (1,)),
        q(3, "count", (1,)),
        q(4),
        q(5, "relation", (1, 4)),
        q(6, "attribute", (2,)),
    ]
    answers = {1: 0.2, 2: 0.9, 3: 0.9, 4: 0.8, 5: 0.9, 6: 0.9}
    asked: list[int] = []

    def ask(question: Question) -> tuple[float | None, str]:
        asked.append(question.id)
        return answers[question.id], ""

    result = check(questions, ask)
    # 1 is answered no: its children (2, 3), the relation on it (5) and the grandchild (6) are not asked
    assert asked == [1, 4]
    by_id = {a.question_id: a for a in result.answers}
    for child in (2, 3, 5, 6):
        assert by_id[child].zeroed_by_parent and not by_id[child].asked and by_id[child].score == 0.0
    # zeroed questions stay in the denominator (DSG's mean over all questions)
    assert result.score == pytest.approx(100 * (0.2 + 0.8) / 6, abs=1e-3)


def test_parent_rule_threshold_and_unanswerable() -> None:
    questions = [q(1), q(2, "attribute", (1,)), q(3), q(4, "attribute", (3,))]
    answers: dict[int, float | None] = {1: 0.5, 2: 0.7, 3: None, 4: 1.0}
    result = check(questions, lambda question: (answers[question.id], "n/a" if answers[question.id] is None else ""))
    by_id = {a.question_id: a for a in result.answers}
    assert by_id[2].asked and by_id[2].score == pytest.approx(0.7)  # 0.5 is not "no"
    assert by_id[3].score == 0.0 and by_id[3].note == "n/a"  # an unanswerable question counts 0
    assert by_id[4].zeroed_by_parent  # ... and fails its children
    assert result.score == pytest.approx(100 * 1.2 / 4, abs=1e-3)
    assert [a.question_id for a in result.failed()] == [3, 4]


def test_no_parent_rule_when_everything_passes() -> None:
    questions = [q(1), q(2, "attribute", (1,)), q(3, "relation", (1, 2))]
    result = check(questions, lambda question: (1.0, ""))
    assert result.score == 100.0 and not result.failed()


# --- offline decomposition ---------------------------------------------------------------------------------


def test_offline_decomposition_entities_attributes_counts_relations() -> None:
    qs = scene.decompose("two black cats sitting above a yellow car", "image")
    by_cat = [(x.category, x.args, x.parent_ids) for x in qs.questions]
    assert by_cat == [
        ("entity", ["cat"], []),
        ("count", ["cat", "2"], [1]),
        ("attribute", ["cat", "black"], [1]),
        ("entity", ["car"], []),
        ("attribute", ["car", "yellow"], [4]),
        ("relation", ["cat", "above", "car"], [1, 4]),
    ]
    assert qs.questions[1].question == "Are there exactly two cats?"
    assert qs.model == scene.OFFLINE_DECOMPOSER and qs.unparsed == ["sitting"] and qs.source.startswith("two black")
    assert scene.decompose("two black cats sitting above a yellow car", "image") == qs  # deterministic


@pytest.mark.parametrize(
    ("prompt", "kind", "expected"),
    [
        ('a shop sign that says "OPEN" above a purple kite', "image", {"entity", "attribute", "text"}),
        (
            "a moon above two green trees, black and white film still",
            "image",
            {"entity", "count", "attribute", "relation", "style"},
        ),
        (
            "a red kite flying over three trees while the camera zooms in",
            "video",
            {"entity", "attribute", "count", "relation", "motion", "camera"},
        ),
        (
            "a red kite flying over three trees while the camera zooms in",
            "image",
            {"entity", "attribute", "count", "relation"},
        ),
    ],
)
def test_offline_decomposition_kinds(prompt: str, kind: str, expected: set[str]) -> None:
    qs = scene.decompose(prompt, kind)
    assert {x.category for x in qs.questions} == expected
    ids = [x.id for x in qs.questions]
    assert ids == list(range(1, len(ids) + 1))
    assert all(p < x.id for x in qs.questions for p in x.parent_ids)


def test_example_prompts_are_twenty_and_varied() -> None:
    prompts = [p for p in PROMPTS.read_text().splitlines() if p.strip()]
    assert len(prompts) == 20 and len(set(prompts)) == 20
    categories = {x.category for p in prompts for x in scene.decompose(p, "video").questions}
    assert categories == {"entity", "attribute", "count", "relation", "text", "style", "motion", "camera"}


def test_normalize_questions_holds_any_decomposer_to_dsg_rules() -> None:
    replies = [
        QuestionReply(id=7, parent_ids=[], category="entity", args=["fox"], phrase="a fox", question="Is there a fox?"),
        QuestionReply(
            id=3,
            parent_ids=[7, 99],
            category="attribute",
            args=["fox", "red"],
            phrase="red fox",
            question="Is the fox red?",
        ),
        QuestionReply(id=4, parent_ids=[], category="entity", args=["fox"], phrase="", question="is there a fox?"),
        QuestionReply(id=5, parent_ids=[6], category="motion", args=["runs"], phrase="runs", question="Does it run?"),
        QuestionReply(
            id=6,
            parent_ids=[5],
            category="relation",
            args=["fox", "in", "snow"],
            phrase="",
            question="Is the fox in the snow?",
        ),
    ]
    qs = normalize_questions(replies, kind="image", source="a red fox runs in snow", model="m")
    # duplicate dropped, video-only dropped, ids renumbered, unknown and later parents dropped
    assert [(x.id, x.category, x.parent_ids) for x in qs.questions] == [
        (1, "entity", []),
        (2, "attribute", [1]),
        (3, "relation", []),
    ]


# --- the offline renderer and the check that reads its pixels -----------------------------------------------


def _check_render(prompt: str, seed: int, tmp_path: Path, questions_prompt: str | None = None) -> Any:
    image = draw_image(prompt, seed, SIZE)
    path = tmp_path / f"render_{seed}.png"
    image.save(path)  # no fbloop-prompt text chunk
    scorer = ElementsScorer(Settings(backend="offline"))
    scorer.bind(scene.decompose(questions_prompt or prompt, "image"), answerer="offline")
    return scorer.check_file(path, "ignored: the bound questions are used")


def test_offline_check_reads_the_render(tmp_path: Path) -> None:
    prompt = "two black cats sitting above a yellow car"
    plan = scene.parse(prompt)
    outcomes = []
    for seed in range(12):
        drawn = scene.draw_scene(plan, prompt, seed, SIZE).drawn
        result = _check_render(prompt, seed, tmp_path)
        by_q = {a.question_id: a for a in result.answers}
        cats = [o for o in drawn["objects"] if o["name"] == "cat"]
        cars = [o for o in drawn["objects"] if o["name"] == "car"]
        assert by_q[1].score == float(bool(cats))
        assert by_q[4].score == float(bool(cars))
        if cats:
            assert by_q[2].score == float(len(cats) == 2)
            assert by_q[3].score == float(all(o["colour"] == "black" for o in cats))
        if cars:
            assert by_q[5].score == float(all(o["colour"] == "yellow" for o in cars))
        outcomes.append(result.score)
    assert 100.0 in outcomes and min(outcomes) < 100.0  # some seeds miss an element, some draw everything


def test_offline_check_answers_from_pixels_not_the_prompt(tmp_path: Path) -> None:
    # a render of "a red ball" asked about "a blue box": the pixels say no, whatever the file is called
    result = _check_render("a red ball", 1, tmp_path, questions_prompt="a blue box")
    assert result.score == 0.0
    # the same pixels with the renderer's PNG metadata, or without: the same answers
    image = draw_image("a red ball to the left of a blue box", 3, SIZE)
    with_meta = tmp_path / "meta.png"
    with_meta.write_bytes(png_bytes(image, "a red ball to the left of a blue box", 3))
    scorer = ElementsScorer(Settings(backend="offline"))
    scorer.bind(scene.decompose("a red ball to the left of a blue box", "image"), answerer="offline")
    bare = tmp_path / "bare.png"
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    bare.write_bytes(buf.getvalue())
    assert scorer.check_file(with_meta, "").answers == scorer.check_file(bare, "").answers


def test_offline_text_and_style_are_read(tmp_path: Path) -> None:
    prompt = 'a chalkboard that says "HELLO" next to a white cat'
    plan = scene.parse(prompt)
    seen = set()
    for seed in range(10):
        drawn = scene.draw_scene(plan, prompt, seed, SIZE).drawn
        result = _check_render(prompt, seed, tmp_path)
        text_answer = next(a for a in result.answers if a.category == "text")
        assert text_answer.score == float(drawn["text"] == "HELLO")
        seen.add(text_answer.score)
    assert seen == {0.0, 1.0}  # the renderer misspells now and then, and the check sees it
    for prompt in ("a monochrome photo of a donut beside a coffee cup", "a watercolor painting of a pink balloon"):
        plan = scene.parse(prompt)
        for seed in range(6):
            drawn = scene.draw_scene(plan, prompt, seed, SIZE).drawn
            style = next(a for a in _check_render(prompt, seed, tmp_path).answers if a.category == "style")
            assert style.score == float(drawn["style"] is not None)


def test_classification_holds_at_the_test_suite_size() -> None:
    for prompt in PROMPTS.read_text().splitlines()[:10]:
        plan = scene.parse(prompt)
        for seed in range(3):
            rendered = scene.draw_scene(plan, prompt, seed, (128, 72))
            seen = sorted(o.name for o in scene.read(rendered.image).objects)
            assert seen == sorted(o["name"] for o in rendered.drawn["objects"]), (prompt, seed)


def test_elements_is_a_registered_scorer_for_both_kinds() -> None:
    images, videos = registry.split_names("sharpness,elements,video_elements")
    assert images == ["sharpness", "elements"] and videos == ["video_elements"]
    settings = Settings(backend="offline")
    assert isinstance(registry.image_scorer("elements", settings), ElementsScorer)
    video = registry.video_scorer("video_elements", settings)
    assert isinstance(video, VideoElementsScorer) and video.dimensions == ("elements",)


def test_unbound_scorer_decomposes_the_given_prompt(tmp_path: Path) -> None:
    image = draw_image("a red ball", 0, SIZE)
    path = tmp_path / "ball.png"
    image.save(path)
    scorer = ElementsScorer(Settings(backend="offline"))
    raw = scorer.score([path], "a red ball")
    check_ = scorer.check_for(path)
    assert check_ is not None and check_.decomposer == scene.OFFLINE_DECOMPOSER
    assert raw == [check_.score / 100.0] and scorer.normalize(raw[0]) == check_.score


def test_video_check_on_start_middle_end_frames(tmp_path: Path) -> None:
    from feedback_cli.providers.offline.media import render_video

    prompt = "a red kite flying over three trees while the camera zooms in"
    plan = scene.parse(prompt)
    seed = next(s for s in range(40) if len(scene.draw_scene(plan, prompt, s, SIZE).drawn["objects"]) == 4)
    start = tmp_path / "start.png"
    draw_image(prompt, seed, SIZE).save(start)
    video = tmp_path / "clip.mp4"
    video.write_bytes(render_video(start, None, prompt, seed, 1.0, SIZE))
    scorer = VideoElementsScorer(Settings(backend="offline"))
    scorer.bind(scene.decompose(prompt, "video"), answerer="offline")
    result = scorer.check_file(video, "")
    by_cat = {a.category: a for a in result.answers}
    assert by_cat["motion"].score == 1.0
    assert by_cat["camera"].score == 1.0  # the offline video zooms in (camera_move) and the frames show it
    pan = scene.decompose("a red kite flying over three trees as the camera pans", "video")
    scorer.bind(pan, answerer="offline")
    assert next(a for a in scorer.check_file(video, "").answers if a.category == "camera").score == 0.0


# --- revision -----------------------------------------------------------------------------------------------


def test_revision_uses_the_failed_questions() -> None:
    questions = scene.decompose("three green trees next to a small wooden house at dusk", "image").questions
    answers = [
        {"question_id": 1, "score": 1.0, "p_yes": 1.0},
        {"question_id": 2, "score": 0.0, "p_yes": 0.0},  # count failed
        {"question_id": 3, "score": 1.0, "p_yes": 1.0},
        {"question_id": 4, "score": 0.0, "p_yes": 0.0},  # house missing
        {"question_id": 5, "score": 0.0, "p_yes": None, "zeroed_by_parent": True},
    ]
    failed = failed_questions(questions, answers)
    assert [f.id for f in failed] == [2, 4, 5]
    request = RevisionRequest(
        kind="image",
        source="three green trees next to a small wooden house at dusk",
        prompt="three green trees next to a small wooden house at dusk, soft light",
        round=1,
        candidates=[
            CandidateSummary(key="r1_image_01", overall=60.0, elements=40.0, failed=failed, passed=["Are there trees?"])
        ],
    )
    revision = offline_revision(request)
    assert revision.prompt.startswith(request.prompt)  # keeps what worked
    assert "exactly three trees" in revision.prompt and "a small wooden house" in revision.prompt
    assert "next to" not in revision.prompt[len(request.prompt) :]  # the zeroed relation waits for its parents
    assert len(revision.changes) == 2 and revision.keep == ["Are there trees?"]
    # nothing failed: the prompt is kept as it is
    assert offline_revision(request.model_copy(update={"candidates": []})).prompt == request.prompt


def test_human_feedback_takes_the_same_revision_path() -> None:
    failed = [FailedQuestion(id=1, category="entity", question="Is there a cat?", phrase="a white cat")]
    request = RevisionRequest(
        kind="image",
        source="a white cat",
        prompt="a white cat",
        round=2,
        candidates=[CandidateSummary(key="r2_image_01", failed=failed)],
        history=[
            RoundMemory(round=1, prompt="a white cat", changes=["Is there a cat? was answered no: add 'a white cat'"])
        ],
        human_feedback="make the background darker.",
    )
    revision = offline_revision(request)
    assert revision.prompt == "a white cat, a white cat, make the background darker"
    assert revision.human_feedback == "make the background darker."
    assert "again" in revision.changes[0]  # the memory says this was asked for before


def test_offline_revision_fixes_a_missing_element_in_a_later_round(tmp_path: Path) -> None:
    source = "three green trees next to a small wooden house at dusk"
    questions = scene.decompose(source, "image")
    plan = scene.parse(source)
    # round 1: a seed whose render misses the house
    seed = next(s for s in range(50) if "house" in scene.draw_scene(plan, source, s, SIZE).drawn["missed"])
    first = _check_render(source, seed, tmp_path)
    house = next(x for x in questions.questions if x.args == ["house"])
    assert next(a for a in first.answers if a.question_id == house.id).score == 0.0
    failed = failed_questions(questions.questions, [a.model_dump() for a in first.answers])
    revised = asyncio.run(
        OfflineAgents(Settings()).revise(
            RevisionRequest(
                kind="image",
                source=source,
                prompt=source,
                round=1,
                candidates=[CandidateSummary(key="r1", elements=first.score, failed=failed)],
            )
        )
    ).value.prompt

    # round 2 (new seeds): the house, asked for again, is missed less often and the element score rises
    def outcome(prompt: str) -> tuple[float, float]:
        checks = [_check_render(prompt, s, tmp_path, questions_prompt=source) for s in range(100, 130)]
        house_rate = sum(next(a.score for a in c.answers if a.question_id == house.id) for c in checks) / len(checks)
        return house_rate, sum(c.score for c in checks) / len(checks)

    house_before, score_before = outcome(source)
    house_after, score_after = outcome(revised)
    assert house_after > house_before and score_after > score_before


# --- cloud: questions and answers through the OpenAI-compatible API (fake server) ---------------------------


def test_cloud_questions_through_structured_output(fake_provider_env) -> None:  # type: ignore[no-untyped-def]
    scripted = {
        "questions": [
            {
                "id": 1,
                "parent_ids": [],
                "category": "entity",
                "args": ["fox"],
                "phrase": "a red fox",
                "question": "Is there a fox?",
            },
            {
                "id": 2,
                "parent_ids": [1],
                "category": "attribute",
                "args": ["fox", "red"],
                "phrase": "red fox",
                "question": "Is the fox red?",
            },
            {
                "id": 3,
                "parent_ids": [],
                "category": "camera",
                "args": ["pan"],
                "phrase": "pans",
                "question": "Does the camera pan?",
            },
        ]
    }

    def handler(body: dict[str, Any]) -> str | None:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema" and fmt["json_schema"]["name"] == "QuestionsReply":
            return json.dumps(scripted)
        return None

    fake_provider_env.chat_handler = handler

    async def scenario() -> Any:
        agents = OpenAIAgents(Settings(llm_retries=0))
        try:
            return await agents.decompose(QuestionsRequest(kind="image", source="a red fox as the camera pans"))
        finally:
            await agents.aclose()

    reply = asyncio.run(scenario())
    assert [(x.id, x.category, x.parent_ids) for x in reply.value.questions] == [
        (1, "entity", []),
        (2, "attribute", [1]),
    ]
    assert reply.value.source == "a red fox as the camera pans" and reply.value.model == Settings().writer_model
    assert reply.usage.prompt_tokens > 0
    (request,) = fake_provider_env.requests_for("chat")
    assert request.body["response_format"]["json_schema"]["strict"] is True
    assert "a red fox as the camera pans" in json.dumps(request.body["messages"])


def test_cloud_questions_on_a_json_mode_server(fake_provider_env) -> None:  # type: ignore[no-untyped-def]
    fake_provider_env.json_mode_only = True  # the schema comes back generated from the JSON-mode instructions

    async def scenario() -> Any:
        agents = OpenAIAgents(Settings(llm_retries=0))
        try:
            return await agents.decompose(QuestionsRequest(kind="video", source="two red balls rolling"))
        finally:
            await agents.aclose()

    reply = asyncio.run(scenario())
    qs = reply.value.questions
    assert qs and [x.id for x in qs] == list(range(1, len(qs) + 1))
    assert all(p < x.id for x in qs for p in x.parent_ids)


def test_cloud_element_check_asks_each_question_alone(fake_provider_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "candidate.png"
    draw_image("a red ball", 0, SIZE).save(image)
    # the fake VLM says no to "Is there a box?" and yes to everything else
    fake_provider_env.yes_probability = lambda body: 0.1 if "box?" in json.dumps(body["messages"]) else 0.9
    questions = scene.decompose("a red ball to the left of a blue box", "image")
    scorer = ElementsScorer(Settings(backend="cloud"))
    assert scorer.answerer == "vqa"
    scorer.bind(questions)
    result = scorer.check_file(image, "a rewritten prompt that must never be shown")
    chats = fake_provider_env.requests_for("chat")
    texts = [json.dumps(r.body["messages"]) for r in chats]
    # box (3) answered no: its colour (4) and the relation (5) are not asked; 1, 2, 3 are, one request each
    assert len(chats) == 3
    assert all("rewritten" not in t and "a red ball to the left" not in t for t in texts)
    assert all(r.body["logprobs"] is True and len(r.body["messages"]) == 1 for r in chats)
    by_id = {a.question_id: a for a in result.answers}
    assert by_id[4].zeroed_by_parent and by_id[5].zeroed_by_parent
    assert by_id[1].p_yes == pytest.approx(0.9, abs=0.02) and by_id[3].p_yes == pytest.approx(0.1, abs=0.02)
    assert result.score == pytest.approx((by_id[1].score + by_id[2].score + by_id[3].score) / 5 * 100, abs=1e-6)
    assert result.answerer.startswith("elements:vqascore:")


def test_cloud_revision_critic_sees_images_and_failures_writer_gets_memory(fake_provider_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "best.png"
    draw_image("three green trees", 4, SIZE).save(image)
    seen: dict[str, Any] = {}

    def handler(body: dict[str, Any]) -> str | None:
        name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
        if name == "RevisionNotes":
            seen["critic"] = body
            return json.dumps({"changes": ["show the house left of the trees"], "keep": ["the three trees"]})
        if name == "WriterReply":
            seen["writer"] = body
            return json.dumps({"prompt": "three green trees beside a wooden house", "rationale": "added the house"})
        return None

    fake_provider_env.chat_handler = handler
    failed = [FailedQuestion(id=4, category="entity", question="Is there a house?", phrase="a small wooden house")]
    request = RevisionRequest(
        kind="image",
        source="three green trees next to a small wooden house",
        prompt="three green trees, golden hour",
        round=2,
        candidates=[CandidateSummary(key="r2_image_02", overall=61.0, elements=50.0, failed=failed, image=str(image))],
        history=[RoundMemory(round=1, prompt="three green trees", best_overall=48.0, failed=["Is there a house?"])],
    )

    async def scenario() -> Any:
        agents = OpenAIAgents(Settings(llm_retries=0))
        try:
            return await agents.revise(request)
        finally:
            await agents.aclose()

    reply = asyncio.run(scenario())
    assert reply.value.prompt == "three green trees beside a wooden house"
    assert reply.value.changes == ["show the house left of the trees"] and reply.value.keep == ["the three trees"]
    critic_parts = seen["critic"]["messages"][1]["content"]
    assert any(p["type"] == "image_url" for p in critic_parts)
    critic_text = " ".join(p.get("text", "") for p in critic_parts)
    assert "Is there a house?" in critic_text and "overall 61" in critic_text
    writer_text = seen["writer"]["messages"][1]["content"]
    assert "show the house left of the trees" in writer_text and "Round 1 (best score 48)" in writer_text
    assert "Round 2 (best score 61)" in writer_text  # this round joins the memory
    assert reply.usage.prompt_tokens > 0 and reply.request["critic"]["role"] == "round critic"
    assert "best.png" not in json.dumps(request.model_dump())  # the image path is not stored


def test_no_questions_is_no_score_not_zero(tmp_path: Path) -> None:
    from feedback_cli.errors import ScorerUnavailable

    path = tmp_path / "fox.png"
    draw_image("a red fox in the snow", 0, SIZE).save(path)
    scorer = ElementsScorer(Settings(backend="offline"))
    with pytest.raises(ScorerUnavailable, match="no element questions"):
        scorer.score([path], "a red fox in the snow")
