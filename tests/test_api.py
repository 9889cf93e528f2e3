"""The public Python API: cheap to import, every name its function, usable from a plain script,
and a wrong argument named in one line."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap

import pytest

import caloforge
from caloforge import CaloforgeError, InvalidArgument


def test_import_is_cheap():
    heavy = "('torch', 'geant4_pybind', 'h5py', 'sklearn')"
    code = f"import sys, caloforge; print(sorted(m for m in {heavy} if m in sys.modules))"
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "[]"


@pytest.mark.parametrize("name", sorted(caloforge._HOMES))
def test_every_public_name_is_what_its_home_defines(name):
    home = importlib.import_module(caloforge._HOMES[name])
    # Importing every module first: a submodule of the same name must not shadow the function.
    for module in ("caloforge.generation", "caloforge.timing", "caloforge.runtimes.onnx"):
        importlib.import_module(module)
    assert getattr(caloforge, name) is getattr(home, name)
    assert name in caloforge.__all__ and name in dir(caloforge)
    assert getattr(caloforge, name).__doc__, f"{name} has no docstring"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        caloforge.simulat  # noqa: B018


def test_simulate_from_a_plain_script_without_a_main_guard(tmp_path):
    # Spawned workers that re-ran this script would call simulate again, and fail.
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent("""
        import caloforge
        run = caloforge.simulate("lhcb-ecal", "lhcb", n_events=2, out="g4.h5", jobs=2, seed=1)
        print("events", run.n_events, len(caloforge.ShowerFile(run.path)))
        """)
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["events", "2", "2"]


BAD_CALLS = {
    "simulate detector type": (
        lambda p: caloforge.simulate(42, "lhcb", 1, p / "x.h5"),
        "detector",
    ),
    "simulate unknown detector": (
        lambda p: caloforge.simulate("no-such", "lhcb", 1, p / "x.h5"),
        "detector",
    ),
    "simulate unknown source": (
        lambda p: caloforge.simulate("lhcb-ecal", "no-such", 1, p / "x.h5"),
        "source",
    ),
    "simulate n_events": (
        lambda p: caloforge.simulate("lhcb-ecal", "lhcb", "ten", p / "x.h5"),
        "n_events",
    ),
    "merge a string": (lambda p: caloforge.merge("a.h5", p / "x.h5"), "inputs"),
    "train unknown family": (lambda p: caloforge.train("no-such", "a.h5", p / "m"), "family"),
    "train settings type": (
        lambda p: caloforge.train("energy-first", "a.h5", p / "m", settings={"steps": "x"}),
        "settings",
    ),
    "generate unknown model": (
        lambda p: caloforge.generate("no-such", p / "x.h5", n=2, source="lhcb"),
        "model_name",
    ),
    "evaluate max_events": (
        lambda p: caloforge.evaluate("a.h5", "b.h5", max_events="many"),
        "max_events",
    ),
    "export path": (lambda p: caloforge.export("lhcb-ecal-wgan", p / "x.txt"), "path"),
    "export unknown model": (lambda p: caloforge.export("no-such", p / "x.onnx"), "model"),
    "bench backends": (lambda p: caloforge.bench("lhcb-ecal-wgan", backends="onnx"), "backends"),
    "load_model type": (lambda p: caloforge.load_model(3.5), "name_or_dir"),
    "load_detector type": (lambda p: caloforge.load_detector(None), "name_or_path"),
    "load_source type": (lambda p: caloforge.load_source([1]), "name_or_path"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_a_wrong_argument_is_one_line_naming_it(case, tmp_path):
    call, parameter = BAD_CALLS[case]
    with pytest.raises(InvalidArgument) as caught:
        call(tmp_path)
    assert caught.value.parameter == parameter
    assert str(caught.value).startswith(f"{parameter}: ") and "\n" not in str(caught.value)


def test_a_missing_argument_is_a_caloforge_error():
    with pytest.raises(CaloforgeError, match="simulate: missing a required argument: 'out'"):
        caloforge.simulate("lhcb-ecal", "lhcb", 3)


def test_values_are_read_as_their_annotation(tmp_path):
    # Lax as pydantic: "0" is read as the int 0, which simulate then refuses as such.
    with pytest.raises(InvalidArgument, match=r"n_events: must be positive, got 0$"):
        caloforge.simulate("lhcb-ecal", "lhcb", "0", tmp_path / "x.h5")


def test_cli_names_the_flag_of_a_wrong_argument(cli, tmp_path):
    code, _, stderr = cli(
        "simulate", "lhcb-ecal", "--source", "lhcb", "--n", "1", "--cut", "0", "--out", "x.h5"
    )
    assert code == 1 and stderr.startswith("error: --cut: ")
    code, _, stderr = cli("export", "no-such", "--out", str(tmp_path / "m.onnx"))
    assert code == 1 and re.match(r"error: MODEL: no model directory no-such", stderr)
