"""The one terminal object every command uses: its consoles, its error line and its exit codes.

- `Terminal`: a command's two consoles, `out` (stdout: results) and `err` (stderr: progress, notes,
  diagnostics), both `SafeConsole`s from `ui/console.py` (no escape sequence from a prompt, a reply or a file name
  reaches the terminal, and nothing is wrapped when the stream is not a terminal), plus the one-line error and the
  `--json` document. Made per command call: the streams are looked up when the command runs (a test runner swaps
  them between calls).
- `error_line`: the one `fbloop: error: ...` line, secrets redacted, nothing a terminal obeys.
- `exit_code`: the one table from a failure to the process's exit code (2 usage/bad input, 1 failed run,
  130 interrupted, 128 + N for signal N), used by the app's last line of defence and by the run driver alike.

Light on purpose: rich is imported only when a console is first used, so the app can use this module on its
start-up and error paths (`fbloop --help` and a usage error stay fast).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from feedback_cli.errors import EXIT_FAILED, EXIT_INTERRUPTED
from feedback_cli.redaction import redact_known
from feedback_cli.workflow.safe_text import printable

if TYPE_CHECKING:
    from rich.console import Console


def error_line(message: str) -> None:
    """One line on stderr, no markup interpretation (messages may contain brackets); known secrets redacted,
    nothing a terminal obeys: any exception text may carry a secret (or a URL with credentials), or escape
    sequences from a file name or a model reply."""
    sys.stderr.write(f"fbloop: error: {printable(redact_known(message), single_line=True)}\n")
    sys.stderr.flush()


def exit_code(failure: BaseException, signal_number: int | None = None) -> int:
    """The exit code of `failure`: stopped by a signal, 128 + its number (143 SIGTERM, 129 SIGHUP, as a shell
    reports them); Ctrl-C or an aborted prompt, 130; an fbloop error or a Click usage error, its own code (2 for
    usage and bad input, 1 for a failed run); anything else, 1."""
    if signal_number:
        return 128 + signal_number
    if isinstance(failure, KeyboardInterrupt) or type(failure).__name__ == "Abort":  # Click's, vendored or not
        return EXIT_INTERRUPTED
    code = getattr(failure, "exit_code", None)  # FbloopError and ClickException both carry theirs
    return code if isinstance(code, int) else EXIT_FAILED


class Terminal:
    """What a command prints through: `out` for results, `err` for everything else, `error` for the one line of
    a failure, `fail` for that line and the exit code together, `json` for the one `--json` document."""

    def __init__(self) -> None:
        self._out: Console | None = None
        self._err: Console | None = None

    @property
    def out(self) -> Console:
        if self._out is None:
            from feedback_cli.ui.console import out_console

            self._out = out_console()
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            from feedback_cli.ui.console import err_console

            self._err = err_console()
        return self._err

    def note(self, text: str) -> None:
        """One line on stderr holding a path, a command or a prompt: never cut, never hard-wrapped."""
        from feedback_cli.ui.console import print_line

        print_line(self.err, text)

    def line(self, text: str) -> None:
        """One such line on stdout."""
        from feedback_cli.ui.console import print_line

        print_line(self.out, text)

    def error(self, message: str) -> None:
        error_line(message)

    def fail(self, failure: BaseException, message: str | None = None, signal_number: int | None = None) -> int:
        """Print the one line of `failure` (its own, or `message`) and return its exit code."""
        if message is None:
            line = getattr(failure, "line", None)
            message = line() if callable(line) else str(failure)
        error_line(message)
        return exit_code(failure, signal_number)

    def json(self, data: Any) -> None:
        from feedback_cli.ui.console import write_json

        write_json(data)
