"""The command line's promise for bad input: one line on stderr, exit status 1, for every
command's typed options and for the training settings."""

from __future__ import annotations

import typing

import pytest
import typer

from caloforge.cli import app
from caloforge.models import FAMILIES


def _commands(command=None, path=()):
    """(path, click command) of every command, nested groups walked."""
    command = command or typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def _numeric(param) -> bool:
    annotation = param.type_descriptor.annotation
    return bool({int, float} & {annotation, *typing.get_args(annotation)})


NUMERIC_OPTIONS = [
    (path, param.opts[0])
    for path, command in _commands()
    for param in command.params
    if param.param_type_name == "option" and _numeric(param)
]


def test_the_walk_finds_the_numeric_options():
    found = {(" ".join(path), option) for path, option in NUMERIC_OPTIONS}
    assert {("simulate", "--n"), ("train", "--batch-size"), ("bench", "--repeats")} <= found
    assert len(found) > 20


@pytest.mark.parametrize(
    ("path", "option"), NUMERIC_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
def test_a_word_for_a_number_is_one_line(cli, path, option):
    code, out, err = cli(*path, option, "abc")
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert option in err and "abc" not in err.split(option, 1)[0]


@pytest.mark.parametrize(
    "option", ["--steps", "--batch-size", "--eval-every", "--checkpoint-every", "--data-parts"]
)
def test_training_settings_out_of_range_are_one_line(cli, tmp_path, option):
    code, _, err = cli(
        "train",
        "flow-matching",
        "--data",
        str(tmp_path / "x.h5"),
        "--out",
        str(tmp_path / "m"),
        option,
        "0",
    )
    assert code == 1
    assert err.strip().splitlines() == [f"error: {option}: input should be greater than 0, got 0"]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("no-such-command",), "No such command"),
        (("simulate", "lhcb-ecal"), "Missing option '--source'"),
        (("train", "flow-matching", "--no-such-flag"), "No such option"),
    ],
)
def test_usage_errors_are_one_line(cli, args, says):
    code, out, err = cli(*args)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err


def test_help_without_a_command(cli):
    code, out, _ = cli()
    assert code == 0 and "simulate" in out and "Usage" in out
    code, out, _ = cli("geant4")
    assert code == 0 and "tables" in out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_models_show_lists_every_option_of_every_family(cli, family):
    from caloforge.models import family_options

    code, out, err = cli("models", "show", family)
    assert code == 0 and err == ""
    options = family_options(family)
    assert options and all(o.description for o in options)  # one line each
    for option in options:
        assert option.name in out
    code, _, err = cli("models", "show", "no-such")
    assert code == 1 and len(err.strip().splitlines()) == 1 and family in err
