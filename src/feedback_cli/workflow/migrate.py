"""Older checkpoints brought to the current schema on load: one pure function per step, from the JSON of one
schema to the JSON of the next, so a run folder made by an older fbloop resumes (and `fbloop inspect` reads it)
instead of being refused. The file itself is not rewritten here: the next save of a resumed run writes the
current schema with a new checksum, and a folder that is only inspected stays as it was.

Schema 1 -> 2 (typed state): control values that lived in the untyped dicts `StageRecord.outputs` and
`ItemRecord.extra` become typed fields of the records (runstate/models.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from feedback_cli.runstate.models import SCHEMA_VERSION

#: an item's job-control flags, schema 1 kept them in `extra`; schema 2 on the item itself
ITEM_CONTROL_FIELDS = ("scored", "unanswered_since", "recreate_if_ended", "canceled_by_fbloop")
#: what schema 1 stored in `extra` beyond the control flags, kept there (typed as ItemExtra)
ITEM_EXTRA_FIELDS = ("group", "round", "prompt", "elements", "metrics")


class MigrationError(ValueError):
    """A checkpoint of an older schema that does not have that schema's shape."""


def schema1_to_2(state: dict[str, Any]) -> dict[str, Any]:
    """The `state` of a schema-1 checkpoint as schema 2 (a new dict; the argument is left as it was)."""
    out = copy.deepcopy(state)
    out["schema_version"] = 2
    if isinstance(out.get("options"), dict):
        out["options"]["schema_version"] = 2
    stages = out.get("stages") or []
    if not isinstance(stages, list):
        raise MigrationError("stages is not a list")
    for stage in stages:
        if not isinstance(stage, dict):
            raise MigrationError("a stage is not an object")
        outputs = stage.get("outputs")
        if outputs is None:
            outputs = stage["outputs"] = {}
        if not isinstance(outputs, dict):
            raise MigrationError(f"outputs of stage {stage.get('name')} is not an object")
        # set when a stage finished under `--interactive` and removed once its review was answered
        stage["awaiting_review"] = bool(outputs.pop("awaiting_review", False))
        if stage.get("name") == "storyboard":
            # schema 1's storyboard kept its keyframe round and the person's words among its outputs (the only
            # stage regenerated at the review without a round log of its own)
            if "round" in outputs:
                stage["review_round"] = int(outputs.pop("round"))
            if "feedback" in outputs:
                stage["review_feedback"] = outputs.pop("feedback")
        for item in stage.get("items") or []:
            if not isinstance(item, dict):
                raise MigrationError(f"an item of stage {stage.get('name')} is not an object")
            extra = item.get("extra") or {}
            if not isinstance(extra, dict):
                raise MigrationError(f"extra of item {item.get('key')} is not an object")
            for name in ITEM_CONTROL_FIELDS:
                if name in extra:
                    item[name] = extra[name]
            item["scored"] = bool(item.get("scored", False))
            item["recreate_if_ended"] = bool(item.get("recreate_if_ended", False))
            item["extra"] = {k: extra[k] for k in ITEM_EXTRA_FIELDS if k in extra}
    return out


#: schema N -> the step that makes it N + 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: schema1_to_2}


def migrate(state: dict[str, Any], version: int) -> dict[str, Any]:
    """`state` of schema `version` brought to SCHEMA_VERSION, step by step."""
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise MigrationError(f"schema {version} is older than any this fbloop can read")
        state = step(state)
        version += 1
    return state
