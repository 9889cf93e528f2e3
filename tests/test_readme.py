"""The README is a newcomer's page: short, its links resolve, and its examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_readme_is_short_and_starts_with_the_two_commands():
    assert len(README.splitlines()) <= 250
    first = blocks("bash")[0]
    assert first.splitlines()[0].startswith("make demo") and "make test" in first


def test_every_local_link_resolves():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), f"README links to missing {target}"


def test_every_pretrained_model_is_in_the_zoo_with_its_card():
    from caloforge.models import pretrained_models

    for name in pretrained_models():
        assert f"[{name}](src/caloforge/pretrained/{name}/README.md)" in README


def test_the_python_quickstart_runs_as_written(tmp_path):
    (code,) = blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    auc, e_tot, family, *shape = done.stdout.split()
    assert 0.0 <= float(auc) <= 1.0 and 0.0 <= float(e_tot) <= 1.0
    assert family == "flow-matching-student" and " ".join(shape) == "(40, 900)"
    assert (tmp_path / "eval" / "report.html").exists()


def test_the_detector_yaml_is_a_working_detector():
    from caloforge.detectors import detector_from_yaml

    (text,) = blocks("yaml")
    detector = detector_from_yaml(text)
    assert detector.n_cells == 900 and 20 < detector.depth_x0 < 30


@pytest.mark.parametrize("name", ["lhcb-ecal", "atlas-like", "par04"])
def test_a_shown_detector_yaml_loads_back_as_the_same_detector(cli, tmp_path, name):
    from caloforge.detectors import load_detector

    code, shown, _ = cli("detectors", "show", name, "--yaml")
    assert code == 0
    path = tmp_path / "mine.yaml"
    path.write_text(shown)
    assert load_detector(path) == load_detector(name)
