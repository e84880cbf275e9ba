"""The one terminal object (issue 12): what a command prints is the text it means. An emoji code such as
`:fire:` in a prompt, a path or a file name is printed as written (Rich would turn it into 🔥 and the path
shown would not be the path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import only_run


def test_emoji_codes_in_a_path_and_a_prompt_are_printed_as_written(cli: Any, tmp_path: Path) -> None:
    prompt = tmp_path / "a :fire: fox.txt"
    prompt.write_text("a red fox :fire: in the snow\n")
    out = tmp_path / ":smile: runs"
    result = cli("run", prompt, "--workflow", "prompt-only", "--seed", "1", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    assert str(run) in result.stdout + result.stderr
    shown = cli("inspect", run)
    assert shown.exit_code == 0, shown.stderr
    assert ":fire:" in shown.stdout
    for text in (result.stdout, result.stderr, shown.stdout):
        assert "\N{FIRE}" not in text and "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in text


def test_the_terminal_consoles_keep_emoji_codes(capsys: Any) -> None:
    from rich.table import Table

    from feedback_cli.ui.terminal import Terminal

    terminal = Terminal()
    terminal.line("see /tmp/:fire:/image_0.png")
    table = Table()
    table.add_column("prompt")
    table.add_row("a :fire: fox")
    terminal.out.print(table)
    terminal.note("stderr :smile: too")
    captured = capsys.readouterr()
    assert "/tmp/:fire:/image_0.png" in captured.out and "a :fire: fox" in captured.out
    assert "stderr :smile: too" in captured.err
    assert "\N{FIRE}" not in captured.out
