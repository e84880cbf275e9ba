"""The Typer app. Commands live one per module in `commands/`; each registers itself here.

Errors: every expected failure is one line on stderr with an exit code (2 usage/bad input, 1 failed
run, 130 interrupted); unexpected ones too, with the traceback only under --verbose.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from feedback_cli import __version__
from feedback_cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, FbloopError
from feedback_cli.redaction import redact_known

COMMAND_MODULES = ("run", "resume", "stage", "inspect", "score", "models", "batch")


def _click_class(name: str) -> type[Exception]:
    """Typer may vendor Click; find its exception classes from a public one, whichever Click it is."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


ClickUsageError = _click_class("UsageError")
ClickException = _click_class("ClickException")


def _error(message: str) -> None:
    # the last line of defence: any exception text may carry a secret (or a URL with credentials), or escape
    # sequences from a file name or a model reply
    from feedback_cli.workflow.safe_text import printable

    sys.stderr.write(f"fbloop: error: {printable(redact_known(message), single_line=True)}\n")
    sys.stderr.flush()


class OneLineErrors(TyperGroup):
    """Click prints usage errors as a help box; fbloop prints one line that names the problem."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                args=argv, prog_name=prog_name or "fbloop", complete_var=complete_var, standalone_mode=False, **extra
            )
        except ClickUsageError as exc:
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                sys.stdout.write(ctx.get_help() + "\n")
                code = 0
            else:
                # the prefix already says "fbloop": name only the subcommand ("run: No such option: -x")
                sub = ctx.command_path.partition(" ")[2] if ctx is not None else ""
                command = f"{sub}: " if sub else ""
                _error(f"{command}{exc.format_message()}")  # type: ignore[attr-defined]
                code = EXIT_USAGE
        except typer.Abort:
            _error("aborted")
            code = EXIT_INTERRUPTED
        except ClickException as exc:
            _error(exc.format_message())  # type: ignore[attr-defined]
            code = exc.exit_code  # type: ignore[attr-defined]
        except FbloopError as exc:
            _error(exc.line())
            code = exc.exit_code
        except KeyboardInterrupt:
            _error("interrupted")
            code = EXIT_INTERRUPTED
        except Exception as exc:
            if "--verbose" in argv or "-v" in argv or os.environ.get("FBLOOP_DEBUG"):
                raise
            _error(f"internal error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)")
            code = 1
        else:
            code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


#: `-h` is `--help` for the app and every command (Click passes it down to subcommands; set on each anyway)
HELP_CONTEXT = {"help_option_names": ["-h", "--help"]}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fbloop {__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=OneLineErrors,
    name="fbloop",
    help="Turn a one-line idea into a scored, selected image and video through five feedback loops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion
    rich_markup_mode=None,
    context_settings=HELP_CONTEXT,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """fbloop: image prompt -> images -> storyboard -> video prompt -> videos, each a scored feedback loop."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"feedback_cli.commands.{_name}").register(app)
for _info in [*app.registered_commands, *app.registered_groups]:
    _info.context_settings = {**HELP_CONTEXT, **(_info.context_settings or {})}


def main() -> None:
    app()
