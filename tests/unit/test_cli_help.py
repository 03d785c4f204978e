"""``pilotid --help`` and each command's help: plain text, a description, examples and the
exit statuses, the same codes as ``docs/errors.rst``."""

from __future__ import annotations

import pytest

from pilotid import cli
from pilotid.errors import error_codes

COMMANDS = (["run"], ["probe"], ["cleanup"], ["proxy-info"], ["policy"], ["myproxy"],
            ["myproxy", "get"],
            ["myproxy", "info"], ["myproxy", "store"], ["myproxy", "destroy"],
            ["myproxy", "trustroots"], ["testca"], ["testissuer"], ["agent"])


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.main([*argv, "--help"])
    assert stopped.value.code == 0
    return capsys.readouterr().out


def test_main_help_is_plain_text_not_restructuredtext(capsys):
    text = help_text(capsys)
    assert "``" not in text
    assert "end user's own Unix identity" in text


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_each_command_has_a_description_before_its_options(capsys, argv):
    text = help_text(capsys, *argv)
    description = text.split("\n\n")[1]
    assert not description.startswith(("options:", "positional arguments:"))
    assert len(description.split()) > 8


@pytest.mark.parametrize("argv", [[], *COMMANDS], ids=lambda argv: " ".join(argv) or "pilotid")
def test_each_help_shows_an_example_of_its_command(capsys, argv):
    text = help_text(capsys, *argv)
    examples = text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0]
    assert any(line.lstrip().startswith(" ".join(["pilotid", *argv]) + " ")
               for line in examples.splitlines())


@pytest.mark.parametrize("argv", [[], *COMMANDS], ids=lambda argv: " ".join(argv) or "pilotid")
def test_each_help_lists_every_pilot_error_code(capsys, argv):
    table = help_text(capsys, *argv).split("\nexit status", 1)[1]
    for code, cls in error_codes().items():
        assert f"{code} {cls.__name__}" in table
    assert "0                  success" in table
