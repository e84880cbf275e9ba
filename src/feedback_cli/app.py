"""The Typer app. Commands live one per module in `commands/`; each registers itself here.

Errors: every expected failure is one line on stderr with an exit code (ui/terminal.py: 2 usage/bad input, 1 failed
run, 130 interrupted); unexpected ones too, with the traceback only under --verbose.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from feedback_cli import __version__
from feedback_cli.errors import EXIT_USAGE, FbloopError
from feedback_cli.ui.terminal import error_line, exit_code

COMMAND_MODULES = ("run", "resume", "stage", "inspect", "score", "models", "batch")


def _click_class(name: str) -> type[Exception]:
    """Typer may vendor Click; find its exception classes from a public one, whichever Click it is."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


ClickUsageError = _click_class("UsageError")
ClickException = _click_class("ClickException")


def _from_environment(exc: Exception) -> str | None:
    """The line for a bad value Click read from an option's environment variable (`[env var: ...]` in --help):
    the variable is a setting, so Settings names it and says what is wrong, exactly as when the command reads
    it; None when the value came from the command line."""
    ctx, param = getattr(exc, "ctx", None), getattr(exc, "param", None)
    if ctx is None or param is None or not getattr(param, "envvar", None) or not param.name:
        return None
    source = ctx.get_parameter_source(param.name)
    if source is None or source.name != "ENVIRONMENT":
        return None
    from feedback_cli.config import load_settings

    try:
        load_settings()
    except FbloopError as problem:
        return problem.line()
    return f"{param.envvar}: {getattr(exc, 'message', exc)}; set in the environment"


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
            elif (line := _from_environment(exc)) is not None:
                error_line(line)
                code = EXIT_USAGE
            else:
                # the prefix already says "fbloop": name only the subcommand ("run: No such option: -x")
                sub = ctx.command_path.partition(" ")[2] if ctx is not None else ""
                command = f"{sub}: " if sub else ""
                error_line(f"{command}{exc.format_message()}")  # type: ignore[attr-defined]
                code = exit_code(exc)
        except typer.Abort as exc:
            error_line("aborted")
            code = exit_code(exc)
        except ClickException as exc:
            error_line(exc.format_message())  # type: ignore[attr-defined]
            code = exit_code(exc)
        except FbloopError as exc:
            error_line(exc.line())
            code = exit_code(exc)
        except KeyboardInterrupt as exc:
            error_line("interrupted")
            code = exit_code(exc)
        except Exception as exc:
            if "--verbose" in argv or "-v" in argv or os.environ.get("FBLOOP_DEBUG"):
                raise
            error_line(f"internal error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)")
            code = exit_code(exc)
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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """fbloop: image prompt -> images -> storyboard -> video prompt -> videos, each a scored feedback loop."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"feedback_cli.commands.{_name}").register(app)
for _info in [*app.registered_commands, *app.registered_groups]:
    _info.context_settings = {**HELP_CONTEXT, **(_info.context_settings or {})}


def main() -> None:
    app()
