"""The one rule for what a run may ask for: the Field bounds on `RunOptions`.

`fbloop run`, `fbloop stage`, `fbloop resume --max-cost` and a loaded checkpoint all build or validate a
`RunOptions`, so none of them can ask for more than another; this module only turns a broken bound into
one line that names the flag (or the checkpoint option) the person has to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from feedback_cli.errors import InputError
from feedback_cli.runstate.models import RunOptions

#: pydantic error types that mean "a number outside its bounds"
_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than", "finite_number"})

#: what `fbloop run` calls each option
RUN_FLAGS: dict[str, str] = {
    "max_iterations_image": "--max-iterations-image",
    "max_iterations_video": "--max-iterations-video",
    "num_image_variations": "--num-image-variations",
    "num_video_attempts": "--num-video-attempts",
    "threshold_image": "--threshold-image",
    "threshold_video": "--threshold-video",
    "clips": "--clips",
    "max_cost": "--max-cost",
    "max_rounds_image": "--max-rounds-image",
    "max_rounds_video": "--max-rounds-video",
    "target_image": "--target-image",
    "target_video": "--target-video",
    "patience": "--patience",
}
#: the rounds options (issue 13): the same flags on `fbloop run` and `fbloop stage`
ROUNDS_OPTIONS = ("max_rounds_image", "max_rounds_video", "target_image", "target_video", "patience")


def limits(field: str) -> tuple[float | None, float | None]:
    """(lowest, highest) value `RunOptions.<field>` accepts; None where it has no bound."""
    low: float | None = None
    high: float | None = None
    for rule in RunOptions.model_fields[field].metadata:
        low = getattr(rule, "ge", None) if getattr(rule, "ge", None) is not None else low
        high = getattr(rule, "le", None) if getattr(rule, "le", None) is not None else high
    return low, high


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def out_of_bounds(field: str, value: Any, name: str) -> str:
    """`NAME must be between LOW and HIGH, got VALUE` for `RunOptions.<field>`."""
    low, high = limits(field)
    if low is not None and high is not None:
        return f"{name} must be between {_number(low)} and {_number(high)}, got {value}"
    if low is not None:
        return f"{name} must be {_number(low)} or more, got {value}"
    if high is not None:
        return f"{name} must be at most {_number(high)}, got {value}"
    return f"{name} is not valid, got {value}"


def problem(exc: ValidationError, names: Mapping[str, str], *, under: tuple[str, ...] = ()) -> str | None:
    """The first error of a RunOptions validation as one line naming the flag or option, or None when it
    is not an option's bound (`under` is where RunOptions sits in the validated data, e.g. ("options",))."""
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        if loc[: len(under)] != under or len(loc) != len(under) + 1:
            continue
        field = loc[-1]
        if field in RunOptions.model_fields and error["type"] in _BOUND_ERRORS:
            return out_of_bounds(field, error.get("input"), names.get(field, field))
    return None


def build_options(names: Mapping[str, str], **values: Any) -> RunOptions:
    """RunOptions from a command's flags; a value out of bounds is an InputError naming its flag."""
    try:
        return RunOptions(**values)
    except ValidationError as exc:
        line = problem(exc, names)
        if line is None:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            line = f"{names.get(field, field)}: {first['msg']}"
        raise InputError(line) from None


def with_max_cost(options: RunOptions, max_cost: float | None, flag: str = "--max-cost") -> RunOptions:
    """The same options with a new cap, held to the same bound as when a run starts."""
    return build_options({"max_cost": flag}, **{**options.model_dump(), "max_cost": max_cost})


def clip_count_problem(count: int, name: str) -> str | None:
    """A clip list longer (or shorter) than `--clips` may be is refused by the same rule."""
    low, high = limits("clips")
    if (low is not None and count < low) or (high is not None and count > high):
        return out_of_bounds("clips", count, name)
    return None
