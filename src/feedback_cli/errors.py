"""One exception family. Commands turn these into one line on stderr and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class FbloopError(Exception):
    """Base of every expected failure. `hint` is a short next step for the user."""

    exit_code = EXIT_FAILED
    #: flags the printed resume command needs to get past this failure (e.g. "--retry-failed")
    resume_flags = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(FbloopError):
    exit_code = EXIT_USAGE


class InputError(FbloopError):
    """A file or value the user gave us is missing, unreadable or out of range."""

    exit_code = EXIT_USAGE


class CheckpointError(FbloopError):
    """A checkpoint or run folder that cannot be trusted."""

    exit_code = EXIT_USAGE


class ProviderError(FbloopError):
    """A provider call failed after its retries."""

    exit_code = EXIT_FAILED
    #: the provider's whole text where `message` has it shortened (kept in the trace)
    detail: str | None = None


class BudgetError(FbloopError):
    """A paid call would take the run past --max-cost."""

    exit_code = EXIT_FAILED


class ScorerUnavailable(FbloopError):
    """A scorer cannot run here (missing extra, missing weights, unsupported model)."""

    exit_code = EXIT_USAGE


class StageFailed(FbloopError):
    exit_code = EXIT_FAILED


class RunLocked(FbloopError):
    exit_code = EXIT_USAGE


class Interrupted(FbloopError):
    exit_code = EXIT_INTERRUPTED


class StorageError(FbloopError):
    """The disk refused a write (full, read-only, immutable, no permission); the last checkpoint stands."""

    exit_code = EXIT_FAILED
