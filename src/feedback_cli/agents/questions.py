"""DSG-style questions: the user's own prompt decomposed once per stage into atomic yes/no questions.

Each question checks one element (an entity, one of its attributes, a count, a relation, rendered text, the
style; for video also the motion and the camera) and names the questions it depends on (DSG's parent ids:
an attribute depends on its entity, a relation on both entities). The set is frozen for every round of the
stage and written as `questions.json`; the element check answers each question in a fresh context that sees
the question and the candidate, never a rewritten prompt, so a round cannot pass its exam by rewording it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

QUESTIONS_SCHEMA_VERSION = 1

Category = Literal["entity", "attribute", "count", "relation", "text", "style", "motion", "camera"]
CATEGORIES: tuple[str, ...] = ("entity", "attribute", "count", "relation", "text", "style", "motion", "camera")


class Question(BaseModel):
    id: int = Field(ge=1)
    #: ids of the questions this one depends on (DSG); empty: depends on nothing
    parent_ids: list[int] = Field(default_factory=list)
    category: Category
    #: DSG's tuple arguments, e.g. ["ball"], ["ball", "red"], ["tree", "2"], ["ball", "left of", "box"]
    args: list[str] = Field(default_factory=list)
    #: the words of the prompt this question checks, e.g. "two trees"
    phrase: str = ""
    question: str = Field(min_length=1)


class QuestionSet(BaseModel):
    """What `questions.json` holds."""

    schema_version: int = QUESTIONS_SCHEMA_VERSION
    kind: Literal["image", "video"]
    #: the prompt the questions were made from: the user's own, never a rewrite
    source: str
    questions: list[Question]
    #: who decomposed it ("offline-decomposition" or the model)
    model: str = ""
    #: words of the prompt the decomposition found no question for (offline: outside its vocabulary)
    unparsed: list[str] = Field(default_factory=list)

    def by_id(self) -> dict[int, Question]:
        return {q.id: q for q in self.questions}


class QuestionsRequest(BaseModel):
    kind: Literal["image", "video"]
    source: str


# --- the reply the cloud model fills through structured outputs (flat, every field required) ---
class QuestionReply(BaseModel):
    id: int
    parent_ids: list[int]
    category: Category
    args: list[str]
    phrase: str
    question: str


class QuestionsReply(BaseModel):
    questions: list[QuestionReply]


def normalize_questions(
    replies: list[QuestionReply] | list[Question], *, kind: str, source: str, model: str, unparsed: list[str] = ()
) -> QuestionSet:
    """Hold a decomposition to DSG's rules whoever made it: ids 1..N in order, no duplicate questions, and
    parents that exist and come earlier (so the graph has no cycles and can be answered in id order);
    video-only categories are dropped from an image stage."""
    kept: list[QuestionReply | Question] = []
    seen: set[str] = set()
    for reply in replies:
        text = reply.question.strip()
        if not text or text.lower() in seen:
            continue
        if kind == "image" and reply.category in ("motion", "camera"):
            continue
        seen.add(text.lower())
        kept.append(reply)
    renumber = {r.id: i + 1 for i, r in enumerate(kept)}
    questions: list[Question] = []
    for i, r in enumerate(kept):
        new_id = i + 1
        parents = sorted({renumber[p] for p in r.parent_ids if p in renumber and renumber[p] < new_id})
        questions.append(
            Question(
                id=new_id,
                parent_ids=parents,
                category=r.category,
                args=[a.strip() for a in r.args if a.strip()],
                phrase=r.phrase.strip(),
                question=r.question.strip(),
            )
        )
    return QuestionSet(kind=kind, source=source, questions=questions, model=model, unparsed=list(unparsed))


def questions_messages(request: QuestionsRequest) -> list[dict[str, str]]:
    """DSG's three steps (tuples, dependencies, questions) asked for in one structured reply."""
    video = request.kind == "video"
    kinds = (
        "entity (a whole object, person, animal or place), attribute (colour, material, size, shape, state, "
        "texture of one entity), count (how many of an entity), relation (spatial or action between two "
        "entities), text (words that must be rendered), style (medium, look, lighting)"
    )
    if video:
        kinds += ", motion (what moves and how), camera (the camera's movement)"
    system = (
        "You decompose a text-to-"
        + ("video" if video else "image")
        + " prompt into atomic yes/no questions, as Davidsonian Scene Graph (DSG) does. "
        f"One question per element of the prompt; element kinds: {kinds}. "
        "Rules: only elements the prompt states (invent nothing, repeat nothing); each question is answerable "
        "yes or no by looking at the result alone; an entity question has no parents; an attribute or count "
        "question lists its entity's question id as parent; a relation lists both entities' ids. "
        "ids start at 1 and parents come before children. `args` is DSG's tuple: [entity], [entity, attribute], "
        "[entity, number], [subject, relation, object], [the exact text], [style]. `phrase` is the part of the "
        "prompt the question checks. Example for 'two red apples on a wooden table': 1 entity [apple] 'Is there "
        "an apple?'; 2 count [apple, 2] parent 1 'Are there two apples?'; 3 attribute [apple, red] parent 1 "
        "'Are the apples red?'; 4 entity [table] 'Is there a table?'; 5 attribute [table, wooden] parent 4 "
        "'Is the table wooden?'; 6 relation [apple, on, table] parents 1,4 'Are the apples on the table?'."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Prompt: {request.source}"}]
