"""Every pretrained model ships a model card, its README.md: the same sections in the same order,
its family and version as config.json says, the commands that made and measured it, and no path
of the machine it was written on."""

import fnmatch
import json
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from caloforge.models import pretrained_models, resolve_model

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = [
    "## Training data",
    "## Training",
    "## Fidelity on the held-out set",
    "## Speed",
    "## Known weaknesses",
    "## Use",
]
ABSOLUTE = ("/work/", "/root/", "/home/", "/tmp/")


def card(name: str) -> str:
    path = resolve_model(name) / "README.md"
    assert path.is_file(), f"{name} has no model card (README.md)"
    return path.read_text()


def prose(text: str) -> list[str]:
    """The card's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def section(text: str, heading: str) -> str:
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section {heading!r}"
    return match.group(1)


def test_every_pretrained_model_is_checked():
    assert len(pretrained_models()) >= 10


@pytest.mark.parametrize("name", pretrained_models())
def test_card_has_its_title_and_the_sections_in_order(name):
    lines = prose(card(name))
    assert lines[0] == f"# {name}"
    assert [line for line in lines if line.startswith("## ")] == SECTIONS
    assert not [line for line in lines[1:] if line.startswith("# ")]


@pytest.mark.parametrize("name", pretrained_models())
def test_card_names_the_family_and_version_of_config_json(name):
    config = json.loads((resolve_model(name) / "config.json").read_text())
    text = " ".join(card(name).split())  # a line break in markdown is a space
    assert f"`{config['family']}`" in text
    assert f"version `{config['version']}`" in text


@pytest.mark.parametrize("name", pretrained_models())
def test_card_gives_the_commands_that_trained_and_measured_the_model(name):
    config = json.loads((resolve_model(name) / "config.json").read_text())
    text = card(name)
    assert f"caloforge train {config['family']} " in section(text, "## Training")
    fidelity = section(text, "## Fidelity on the held-out set")
    assert "caloforge evaluate" in fidelity or "benchmarks/" in fidelity
    assert "metrics.json" in fidelity  # what the file shipped beside the weights holds
    assert f"caloforge generate {name} " in section(text, "## Use")
    assert f'caloforge.load_model("{name}")' in section(text, "## Use")


@pytest.mark.parametrize("name", pretrained_models())
def test_card_and_files_beside_the_weights_hold_no_absolute_path(name):
    # The training records its data's path for --resume; a shipped model keeps the file's name.
    config = json.loads((resolve_model(name) / "config.json").read_text())
    assert "/" not in config["training"]["data"]["path"]
    for path in [resolve_model(name) / "README.md", *resolve_model(name).glob("*.json*")]:
        text = path.read_text()
        for prefix in ABSOLUTE:
            assert prefix not in text, f"{path.name} of {name} holds a path under {prefix}"


def shipped(path: str, patterns: list[str]) -> bool:
    """Whether a setuptools package-data glob (relative to the package) takes this file."""
    target = PurePosixPath(path)
    for pattern in patterns:
        if "**" in pattern:
            if fnmatch.fnmatch(path, pattern.replace("**/", "*")):
                return True
        elif len(PurePosixPath(pattern).parts) == len(target.parts) and target.match(pattern):
            return True
    return False


def test_the_wheel_ships_every_card():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["caloforge"]
    for name in pretrained_models():
        assert shipped(f"pretrained/{name}/README.md", patterns), patterns
        assert shipped(f"pretrained/{name}/config.json", patterns), patterns
    assert not shipped("pretrained/x/README.md", ["pretrained/*/*.json"])  # the check can fail
