"""The rows of a batch: read a prompts file (.txt, .csv, .jsonl) into validated rows.

Every bad row is collected with its line number and reported at once, before anything runs or is written,
so a 200-row evaluation set is fixed in one pass instead of one error at a time.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from feedback_cli.choices import Backend, Workflow
from feedback_cli.errors import InputError
from feedback_cli.workflow.inputs import MAX_PROMPT_BYTES, validate_image

#: a row id names its run folder (`runs/{id}/`): keep it a plain file name
ROW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
MAX_ROWS = 10_000
MAX_FILE_BYTES = 32 * 1024 * 1024
#: how many bad rows the error lists before it summarises the rest
MAX_LISTED_PROBLEMS = 20

#: per-row run options, by their long flag name (without dashes, `_` or `-`), and the value ranges of `fbloop run`
INT_OPTIONS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**31 - 1),
    "max_iterations_image": (1, 50),
    "max_iterations_video": (1, 50),
    "num_image_variations": (1, 64),
    "num_video_attempts": (1, 16),
    "clips": (1, 12),
}
FLOAT_OPTIONS: dict[str, tuple[float, float]] = {
    "threshold_image": (0.0, 100.0),
    "threshold_video": (0.0, 100.0),
    "max_cost": (0.0, float("inf")),
}
BOOL_OPTIONS = ("storyboard",)
TEXT_OPTIONS = ("scorers",)
CHOICE_OPTIONS: dict[str, tuple[str, ...]] = {
    "workflow": tuple(w.value for w in Workflow),
    "backend": tuple(b.value for b in Backend),
}
ROW_FIELDS = ("prompt", "id", "input_image")
#: run flags that make no sense per row, with the reason given when a file tries
REFUSED_OPTIONS = {
    "interactive": "a batch runs unattended",
    "output_dir": "a batch has one output dir (the batch option)",
    "resume": "resume a batch with `fbloop resume BATCH_DIR`",
    "dry_run": "--dry-run applies to the whole batch",
    "verbose": "--verbose applies to the whole batch",
    "concurrency": "--concurrency applies to the whole batch",
    "executor": "--executor applies to the whole batch",
}
OPTION_NAMES = (*INT_OPTIONS, *FLOAT_OPTIONS, *BOOL_OPTIONS, *TEXT_OPTIONS, *CHOICE_OPTIONS)
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


class BatchRow(BaseModel):
    """One prompt of a batch and the run options it sets itself (the rest come from the command line)."""

    id: str
    line: int  # 1-based line in the prompts file, for messages
    prompt: str
    input_image: str | None = None  # absolute path, resolved against the prompts file's folder
    options: dict[str, Any] = Field(default_factory=dict)  # RunOptions field name -> value


class RowProblem(BaseModel):
    line: int
    message: str


def option_key(name: str) -> str:
    """`--num-image-variations`, `num-image-variations` and `num_image_variations` are one option."""
    return name.strip().lstrip("-").replace("-", "_").lower()


def read_rows(
    path: Path, *, default_workflow: Workflow = Workflow.full, default_input_image: Path | None = None
) -> list[BatchRow]:
    """All rows of PROMPTS_FILE, validated; an InputError listing every bad row (with its line) otherwise."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        raw, problems = _txt_rows(text)
    elif suffix == ".csv":
        raw, problems = _csv_rows(text)
    elif suffix == ".jsonl":
        raw, problems = _jsonl_rows(text)
    else:
        raise InputError(f"prompts file {path} must end in .txt, .csv or .jsonl, not {suffix or 'nothing'}")
    rows: list[BatchRow] = []
    width = max(3, len(str(len(raw))))
    seen: dict[str, int] = {}
    for number, (line, fields) in enumerate(raw, start=1):
        row, row_problems = _validate(
            line, fields, number, width, path.parent, default_workflow, default_input_image is not None
        )
        # a repeated id is reported even on a row with other problems: fixing those must not reveal new ones
        row_id = str(fields["id"]).strip() if fields.get("id") is not None else f"row_{number:0{width}d}"
        if row_id in seen:
            row_problems.append(RowProblem(line=line, message=f"id {row_id!r} is already used on line {seen[row_id]}"))
        else:
            seen[row_id] = line
        problems.extend(row_problems)
        if row is not None and not row_problems:
            rows.append(row)
    if not raw and not problems:
        problems.append(RowProblem(line=0, message="no prompts in the file"))
    if len(raw) > MAX_ROWS:
        problems.append(RowProblem(line=0, message=f"{len(raw)} rows; a batch takes at most {MAX_ROWS}"))
    if problems:
        raise InputError(format_problems(path, problems))
    return rows


def format_problems(path: Path, problems: list[RowProblem]) -> str:
    problems = sorted(problems, key=lambda p: p.line)
    listed = "; ".join((f"line {p.line}: {p.message}" if p.line else p.message) for p in problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    noun = "problem" if len(problems) == 1 else "problems"
    return f"prompts file {path} has {len(problems)} {noun}, nothing was run: {listed}{tail}"


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"prompts file {path} does not exist")
    if path.is_dir():
        raise InputError(f"prompts file {path} is a directory, not a file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"prompts file {path} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"prompts file {path} cannot be read: {exc.strerror}") from None
    if b"\x00" in data:
        raise InputError(f"prompts file {path} is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"prompts file {path} is not UTF-8 text") from None


def _txt_rows(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[RowProblem]]:
    rows = []
    for line, content in enumerate(text.splitlines(), start=1):
        stripped = content.strip()
        if stripped and not stripped.startswith("#"):
            rows.append((line, {"prompt": stripped}))
    return rows, []


def _csv_rows(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[RowProblem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    except csv.Error as exc:
        return [], [RowProblem(line=1, message=f"not valid CSV: {exc}")]
    columns = [option_key(h) for h in header]
    problems: list[RowProblem] = []
    if "prompt" not in columns:
        return [], [RowProblem(line=1, message="the header has no 'prompt' column")]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        return [], [RowProblem(line=1, message=f"the header repeats column(s): {', '.join(duplicated)}")]
    rows = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(columns):
                problems.append(RowProblem(line=line, message=f"{len(cells)} cells, the header has {len(columns)}"))
                continue
            # an empty cell leaves the option at the batch's value
            rows.append((line, {k: v for k, v in zip(columns, cells, strict=True) if v.strip() != ""}))
    except csv.Error as exc:
        problems.append(RowProblem(line=reader.line_num, message=f"not valid CSV: {exc}"))
    return rows, problems


def _jsonl_rows(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[RowProblem]]:
    rows, problems = [], []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except ValueError as exc:
            problems.append(RowProblem(line=line, message=f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(value, dict):
            problems.append(RowProblem(line=line, message="a row must be a JSON object with a 'prompt' field"))
            continue
        rows.append((line, {option_key(k): v for k, v in value.items() if v is not None}))
    return rows, problems


def _validate(
    line: int,
    fields: dict[str, Any],
    number: int,
    width: int,
    base: Path,
    default_workflow: Workflow,
    has_default_image: bool,
) -> tuple[BatchRow | None, list[RowProblem]]:
    problems: list[str] = []
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not " ".join(prompt.split()):
        problems.append("no prompt" if prompt in (None, "") else "the prompt must be non-empty text")
        prompt = ""
    else:
        prompt = " ".join(prompt.split())
        if len(prompt.encode()) > MAX_PROMPT_BYTES:
            problems.append(f"the prompt is over {MAX_PROMPT_BYTES} bytes")
    row_id = fields.get("id")
    if row_id is None:
        row_id = f"row_{number:0{width}d}"
    elif isinstance(row_id, int) and not isinstance(row_id, bool):
        row_id = str(row_id)
    if not isinstance(row_id, str) or not ROW_ID.match(row_id.strip()):
        problems.append(f"id {row_id!r} must be 1-80 letters, digits, '_', '-' or '.' (it names the run folder)")
        row_id = ""
    row_id = row_id.strip()
    options: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ROW_FIELDS:
            continue
        if key in REFUSED_OPTIONS:
            problems.append(f"{key.replace('_', '-')} cannot be set per row ({REFUSED_OPTIONS[key]})")
            continue
        if key not in OPTION_NAMES:
            problems.append(f"unknown field {key!r}")
            continue
        parsed, problem = _option_value(key, value)
        if problem:
            problems.append(problem)
        else:
            options[key] = parsed
    input_image = fields.get("input_image")
    image_path: str | None = None
    if input_image is not None:
        if not isinstance(input_image, str) or not input_image.strip():
            problems.append("input_image must be a path")
        else:
            candidate = Path(input_image.strip()).expanduser()
            candidate = candidate if candidate.is_absolute() else base / candidate
            try:
                validate_image(candidate, "input_image")
                image_path = str(candidate.resolve())
            except InputError as exc:
                problems.append(exc.message)
    workflow = options.get("workflow", default_workflow.value)
    if workflow == Workflow.video_only.value and input_image is None and not has_default_image:
        problems.append("workflow video-only needs an input_image")
    if image_path is not None and workflow != Workflow.video_only.value:
        problems.append("input_image is only used by workflow video-only")
    if problems:
        return None, [RowProblem(line=line, message=m) for m in problems]
    return BatchRow(id=row_id, line=line, prompt=prompt, input_image=image_path, options=options), []


def _option_value(key: str, value: Any) -> tuple[Any, str | None]:
    flag = key.replace("_", "-")
    if key in INT_OPTIONS:
        low, high = INT_OPTIONS[key]
        number: Any = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                return None, f"{flag} must be a whole number, got {value!r}"
        if isinstance(number, bool) or not isinstance(number, int):
            return None, f"{flag} must be a whole number, got {value!r}"
        if not low <= number <= high:
            return None, f"{flag} must be between {low} and {high}, got {number}"
        return number, None
    if key in FLOAT_OPTIONS:
        low_f, high_f = FLOAT_OPTIONS[key]
        try:
            real = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            return None, f"{flag} must be a number, got {value!r}"
        if isinstance(value, bool) or not low_f <= real <= high_f:  # NaN fails this too
            return None, f"{flag} must be between {low_f:g} and {high_f:g}, got {value!r}"
        return real, None
    if key in BOOL_OPTIONS:
        if isinstance(value, bool):
            return value, None
        word = str(value).strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS, None
        return None, f"{flag} must be true or false, got {value!r}"
    if key in CHOICE_OPTIONS:
        choices = CHOICE_OPTIONS[key]
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower(), None
        return None, f"{flag} must be one of {' | '.join(choices)}, got {value!r}"
    if not isinstance(value, str) or not value.strip():
        return None, f"{flag} must be text"
    return value.strip(), None
