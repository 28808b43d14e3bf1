"""The command line as a new user meets it, in process (fast): global options after the command's
name, ``--format`` help that names exactly the choices it accepts, and the README's "Your own
member file" walkthrough naming only commands and options that exist (CI runs it end to end:
ci/own_member_file.sh)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from ci.walkthrough import CONSOLE_COMMAND, script, section_commands
from healthcare_mlops.cli.main import app, global_options_first

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands(command=None, path=()) -> list[tuple[tuple[str, ...], click.Command]]:
    command = command or typer.main.get_command(app)
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, path + (name,))
    return found


def test_home_after_the_command_is_the_same_as_before(tmp_path):
    runner = CliRunner()
    before = runner.invoke(app, ["--home", str(tmp_path / "a"), "info", "--format", "json"])
    after = runner.invoke(app, ["info", "--format", "json", "--home", str(tmp_path / "a")])
    assert before.exit_code == 0 and after.exit_code == 0, (before.output, after.output)
    assert json.loads(before.output)["home"] == json.loads(after.output)["home"] == str((tmp_path / "a").resolve())
    # given twice, the one after the command's name wins, as a later option does
    both = runner.invoke(app, ["--home", str(tmp_path / "a"), "info", "--format", "json",
                               "--home", str(tmp_path / "b")])
    assert json.loads(both.output)["home"] == str((tmp_path / "b").resolve())
    target = runner.invoke(app, ["info", "--target", "nope"])
    assert target.exit_code != 0 and "unknown target 'nope'" in str(target.exception)


def test_every_command_accepts_the_global_options_after_its_name(tmp_path):
    runner = CliRunner()
    for path, _ in _commands():
        if not path:
            continue
        # an unknown option fails while parsing, before --help (eager) is acted on
        result = runner.invoke(app, [*path, "--home", str(tmp_path), "--target", "local", "--help"])
        assert result.exit_code == 0, (path, result.output)
    bad = runner.invoke(app, ["jobs", "run", "x", "--homer", str(tmp_path)])
    assert bad.exit_code != 0 and "No such option" in bad.output


def test_global_options_move_in_front_in_their_order():
    assert global_options_first(["jobs", "run", "x", "--home", "h", "-p", "a=b", "--target=dev"]) == \
        ["--home", "h", "--target=dev", "jobs", "run", "x", "-p", "a=b"]
    assert global_options_first(["--home", "a", "info", "--home", "b"]) == ["--home", "a", "--home", "b", "info"]
    assert global_options_first(["sql", "--", "--home", "x"]) == ["sql", "--", "--home", "x"]
    assert global_options_first(["info", "--home"]) == ["info", "--home"]     # no value: click says so
    assert global_options_first(["jobs", "validate", "--target-only"]) == ["jobs", "validate", "--target-only"]


def test_format_help_names_exactly_the_choices_it_accepts():
    seen = 0
    for path, command in _commands():
        for param in command.params:
            if "--format" not in getattr(param, "opts", ()):
                continue
            seen += 1
            choices = _choices(param)
            said = param.help.rstrip(".").replace(" or ", ", ").split(", ")
            assert said == choices, (path, param.help, choices)
    assert seen >= 10


def _choices(param) -> list[str]:
    """The values an option accepts (typer >= 0.2x keeps the annotation; older ones a click Choice)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return [member.value for member in annotation] if annotation else list(param.type.choices)


def test_a_format_the_help_does_not_name_is_refused(tmp_path):
    refused = CliRunner().invoke(app, ["governance", "status", "--format", "csv", "--home", str(tmp_path)])
    assert refused.exit_code == 2 and "'csv' is not one of" in refused.output.replace("\n", " "), refused.output


def test_the_walkthrough_names_only_commands_and_options_that_exist():
    commands = section_commands(README)
    cli = [shlex.split(c) for c in commands if c.startswith("healthcare-mlops ")]
    assert [words[1:3] for words in cli][:2] == [["data", "ingest"], ["jobs", "run"]]
    assert any(c.startswith(CONSOLE_COMMAND) for c in commands)
    known = dict(_commands())
    for words in cli:
        path = tuple(w for w in words[1:] if not w.startswith("-"))
        while path not in known:
            path = path[:-1]
        options = {opt for p in known[path].params + known[()].params for opt in getattr(p, "opts", ())}
        assert {w for w in words if w.startswith("--")} <= options, words
        assert "--home" in words, f"every walkthrough command names its home: {words}"


def test_the_walkthrough_script_starts_the_console_in_the_background():
    text = script(["./quickstart install", "healthcare-mlops data ingest m.csv --home h",
                   "healthcare-mlops app --home h"], REPO, 8123)
    assert text.splitlines()[1] == f"{REPO / 'quickstart'} install"
    assert "healthcare-mlops app --home h --port 8123 > console.log 2>&1 &" in text
    assert "/_stcore/health" in text


def test_a_readme_without_the_section_fails_loudly():
    with pytest.raises(SystemExit, match="no section"):
        section_commands("# title\n\n## Other\n```bash\nls\n```\n")


def test_help_paragraphs_are_wrapped_by_the_terminal_not_the_source():
    for path, command in _commands():
        for paragraph in (command.help or "").split("\n\n"):
            assert paragraph.startswith("\b") or "\n" not in paragraph, (path, paragraph)
    shown = CliRunner().invoke(app, ["data", "ingest", "--help"], env={"COLUMNS": "200"}).output
    words = " ".join(shown.replace("│", " ").split())          # the terminal's wrapping, undone
    assert "a changed file at the same path for the same date needs --replace." in words, shown


def test_reflowed_keeps_paragraphs_and_verbatim_blocks():
    from healthcare_mlops.cli.main import reflowed

    assert reflowed("One\n    two.\n\n    Three\n    four.") == "One two.\n\nThree four."
    assert reflowed("One.\n\n\b\nkeep\nlines") == "One.\n\n\b\nkeep\nlines"
    assert reflowed(None) is None


def test_ci_runs_the_walkthrough():
    steps = (REPO / ".ci" / "run").read_text().splitlines()
    assert "bash ci/own_member_file.sh" in steps
    script_text = (REPO / "ci" / "own_member_file.sh").read_text()
    assert "ci/walkthrough.py" in script_text and "ci/member_file.py" in script_text
