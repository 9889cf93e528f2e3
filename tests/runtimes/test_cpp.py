"""The C++ library (cpp/) against Python, on a pretrained model of every family and graph.

`make cpp` builds libcaloforge against the venv's libtorch; `caloforge export --out M.pt2`
compiles each model's decode with AOTInductor. The C++ programs must give Python's showers for
the same seed (the same noise) and conditions, write a shower file caloforge reads, run
concurrent calls safely, and stop bad input with one line. Without cmake, a C++ compiler or
HDF5's headers the module fails, saying what is missing: a green run means the C++ library was
tested. ``CALOFORGE_SKIP_CPP=1`` (``make test CALOFORGE_SKIP_CPP=1``) skips it instead, on
purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.errors import CaloforgeError
from caloforge.models import load_model, pretrained_models, resolve_model
from caloforge.runtimes import export
from caloforge.runtimes.aoti import AotiSampler
from caloforge.sources import sample_primaries, source_from_yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "cpp"
HDF5_HEADERS = ("/usr/include/hdf5/serial/hdf5.h", "/usr/include/hdf5.h")


def _one_per_graph() -> list[str]:
    """The first pretrained model, by name, of each family and output kind (the LSTM's ``l2``
    takes no noise, its ``mixture`` does): the C++ side is the same for all, what differs is the
    graph they compile to (each compilation takes a minute or two)."""
    first: dict[tuple[str, str], str] = {}
    for name in pretrained_models():
        config = json.loads((resolve_model(name) / "config.json").read_text())
        first.setdefault((config["family"], config.get("output", "")), name)
    return sorted(first.values())


MODELS = _one_per_graph()


def _missing_toolchain() -> str | None:
    for tool in ("make", "cmake", "c++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not any(Path(p).exists() for p in HDF5_HEADERS):
        return "HDF5's C headers are missing (Debian's libhdf5-dev, which `make install` installs)"
    return None


@pytest.fixture(scope="module")
def programs() -> Path:
    if os.environ.get("CALOFORGE_SKIP_CPP") == "1":
        pytest.skip("C++ library not tested: CALOFORGE_SKIP_CPP=1")
    reason = _missing_toolchain()
    if reason:
        pytest.fail(
            f"cannot build the C++ library: {reason}; install it, or skip these tests on purpose "
            "with CALOFORGE_SKIP_CPP=1",
            pytrace=False,
        )
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "cpp"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD


@pytest.fixture(scope="module")
def packages(programs, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("packages")
    return {name: export(load_model(name), folder / f"{name}.pt2") for name in MODELS}


def _run(program: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True)


def _assert_same_showers(got: np.ndarray, expected: np.ndarray, threshold: float) -> None:
    """Equal to float tolerance, but for cells that one side put just below the read-out
    threshold (zeroed) and the other just above it."""
    close = np.isclose(got, expected, rtol=1e-4, atol=1e-3)
    flips = ~close & (np.minimum(got, expected) == 0) & (np.maximum(got, expected) < 2 * threshold)
    assert (close | flips).all(), f"largest difference {np.abs(got - expected).max()} MeV"
    assert flips.mean() < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_cpp_generate_equals_python_decode(name, programs, packages, tmp_path):
    model = load_model(name)
    n, seed = (300 if model.detector.n_cells < 10_000 else 20), 11  # clic-ecal: 65 025 cells
    source = source_from_yaml(model.config.training["data"]["source"])
    conditions = sample_primaries(source, 0, n, 5).conditions(model.config.conditions)
    rows = tmp_path / "conditions.txt"
    np.savetxt(rows, conditions.astype(np.float32), fmt="%.9g", header="one shower per row")
    out = tmp_path / "cpp.h5"
    done = _run(
        programs / "caloforge-generate",
        packages[name],
        "--conditions",
        rows,
        "--seed",
        seed,
        "--out",
        out,
        "--detector",
        model.detector.name,
    )
    assert done.returncode == 0, done.stderr

    c = torch.as_tensor(conditions, dtype=torch.float32)
    noise = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        expected = model.decode(noise, c).numpy()
    written = ShowerFile(out)
    assert written.complete and written.detector == model.detector
    assert written.producer["name"] == name and written.seed == seed
    batch = written.read()
    _assert_same_showers(batch.showers, expected, model.detector.threshold)
    np.testing.assert_allclose(batch.conditions, c.numpy(), rtol=1e-7)
    np.testing.assert_allclose(batch.incident_energies[:, 0], model.energy_of(c)[:, 0], rtol=1e-5)
    # The package run from Python is the same graph.
    sampler = AotiSampler(packages[name])
    _assert_same_showers(sampler.decode(noise.numpy(), c.numpy()), expected, 0.1)


def test_a_small_batch_on_one_thread_gives_the_large_batchs_showers(packages):
    model = load_model("lhcb-ecal-wgan")
    source = source_from_yaml(model.config.training["data"]["source"])
    conditions = sample_primaries(source, 0, 100, 3).conditions(model.config.conditions)
    noise = np.random.default_rng(3).standard_normal((100, model.latent_dim))
    sampler = AotiSampler(packages["lhcb-ecal-wgan"])
    threads = torch.get_num_threads()
    large = sampler.decode(noise, conditions)
    small = sampler.decode(noise[:3], conditions[:3])  # below SMALL_BATCH: one thread
    assert torch.get_num_threads() == threads
    _assert_same_showers(small, large[:3], model.detector.threshold)


def test_concurrent_calls_agree_with_calls_alone(programs, packages, tmp_path):
    # A model directory holding model.pt2 loads as the package itself.
    (tmp_path / "model.pt2").write_bytes(packages["lhcb-ecal-wgan"].read_bytes())
    done = _run(programs / "caloforge-thread-check", tmp_path)
    assert done.returncode == 0, done.stderr


def test_bench_reports_every_batch_size(programs, packages):
    done = _run(
        programs / "caloforge-bench",
        packages["lhcb-ecal-wgan"],
        "--batch-sizes",
        "1,7",
        "--repeats",
        "1",
    )
    assert done.returncode == 0, done.stderr
    timing = json.loads(done.stdout)["ms_per_shower"]
    assert set(timing) == {"1", "7"} and all(t > 0 for t in timing.values())


def test_bad_input_is_one_line(programs, packages, tmp_path):
    generate = programs / "caloforge-generate"
    wgan = packages["lhcb-ecal-wgan"]
    corrupt = tmp_path / "corrupt.pt2"
    corrupt.write_bytes(wgan.read_bytes()[: 1 << 16])  # a package cut short
    out = tmp_path / "o.h5"
    cases = {
        "cannot load model package": [corrupt, "--n", 2, "--condition", "px=0", "--out", out],
        "no model package at": [
            tmp_path / "missing.pt2",
            "--n",
            1,
            "--condition",
            "x=0",
            "--out",
            out,
        ],
        "trained for detector lhcb-ecal, not atlas-like": [
            wgan,
            "--n",
            1,
            "--condition",
            "x=0",
            "--out",
            out,
            "--detector",
            "atlas-like",
        ],
        "no value for condition py": [
            wgan,
            "--n",
            1,
            "--condition",
            "px=0",
            "--condition",
            "pz=1000",
            "--condition",
            "x=0",
            "--condition",
            "y=0",
            "--out",
            out,
        ],
        "has no condition energy": [wgan, "--n", 1, "--condition", "energy=1", "--out", out],
        "--n needs a number": [wgan, "--n", "many", "--condition", "x=0", "--out", out],
    }
    for words, args in cases.items():
        done = _run(generate, *args)
        assert done.returncode == 1, words
        assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert not out.exists() and not Path(f"{out}.partial").exists()
    with pytest.raises(CaloforgeError, match="cannot load model package"):
        AotiSampler(corrupt)
