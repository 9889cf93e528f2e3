"""Shared fixtures: small data made by the tests themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def cli(capsys):
    """Run the real CLI entry point in-process; returns (exit code, stdout, stderr)."""
    from caloforge.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def write_lhcb_like(path, n: int, seed: int, widen: float = 1.0, scale: float = 1.0):
    """A small lhcb-ecal file of Gaussian blobs along the LHCb source's conditions.

    Not physics: a cheap stand-in whose energy and shape follow the conditions, so that models
    and metrics have structure to learn and to find.
    """

    from caloforge.data.showerfile import ShowerBatch, ShowerWriter
    from caloforge.detectors import load_detector
    from caloforge.sources import load_source, sample_primaries, source_to_yaml

    det, src = load_detector("lhcb-ecal"), load_source("lhcb")
    p = sample_primaries(src, 0, n, seed)
    rng = np.random.default_rng(seed + 1000)
    cond = p.conditions(src.conditions)
    x, y = det.cell_centres[:, 0], det.cell_centres[:, 1]
    cx = cond[:, 3] + 100 * cond[:, 0] / cond[:, 2]
    cy = cond[:, 4] + 100 * cond[:, 1] / cond[:, 2]
    width = 15.0 * widen * (1 + 0.1 * rng.normal(size=n))[:, None]
    blob = np.exp(-((x - cx[:, None]) ** 2 + (y - cy[:, None]) ** 2) / (2 * width**2))
    visible = 0.17 * scale * p.energy * (1 + 0.05 * rng.normal(size=n))
    showers = blob / blob.sum(axis=1, keepdims=True) * visible[:, None]
    showers *= rng.gamma(4.0, 0.25, showers.shape)
    showers[showers < 0.05] = 0.0
    attrs = {
        "detector": det.to_yaml(),
        "source": source_to_yaml(src),
        "seed": seed,
    }
    with ShowerWriter.create(path, n_cells=900, condition_names=src.conditions, attrs=attrs) as w:
        w.append(ShowerBatch(showers.astype(np.float32), p.energy, cond))
    return path


def write_primaries(path, detector, source, primaries, showers, seed):
    """A shower file of ``showers`` made by ``primaries`` of ``source`` in ``detector``."""
    from caloforge.data.showerfile import ShowerBatch, ShowerWriter
    from caloforge.sources import source_to_yaml

    attrs = {"detector": detector.to_yaml(), "source": source_to_yaml(source), "seed": seed}
    with ShowerWriter.create(
        path, n_cells=detector.n_cells, condition_names=source.conditions, attrs=attrs
    ) as w:
        w.append(ShowerBatch(showers, primaries.energy, primaries.conditions(source.conditions)))
    return path


def write_atlas_like(path, n, seed, spread=1.0):
    """atlas-like photons at the atlas source's energies: a middle-layer blob whose energy
    resolution is ``spread`` times 10 %/sqrt(E). Not physics: a stand-in with per-energy
    structure."""
    from caloforge.detectors import load_detector
    from caloforge.sources import load_source, sample_primaries

    detector, source = load_detector("atlas-like"), load_source("atlas")
    p = sample_primaries(source, 0, n, seed)
    rng = np.random.default_rng(seed + 1)
    showers = np.zeros((n, detector.n_cells), np.float32)
    sigma = spread * 0.1 / np.sqrt(p.energy / 1e3)
    visible = 0.2 * p.energy * (1 + sigma * rng.normal(size=n))
    centre = detector.layer_offsets[2] + 3 * 7 + 3
    showers[:, centre] = 0.7 * visible
    showers[:, centre + 1] = 0.2 * visible
    showers[:, detector.layer_offsets[1] + 28] = 0.1 * visible
    return write_primaries(path, detector, source, p, showers, seed)


def write_clic_like(path, n, seed, scale=1.0):
    """clic-ecal electrons of the 3dgan source: a blob along the depth, drifting in x with
    cot θ, whose visible energy is ``scale`` × 2 % of the primary's. Not physics: a stand-in
    with the structure the 3DGAN validation bins in (E_p, θ)."""
    from caloforge.detectors import load_detector
    from caloforge.sources import load_source, sample_primaries

    detector, source = load_detector("clic-ecal"), load_source("3dgan")
    p = sample_primaries(source, 0, n, seed)
    rng = np.random.default_rng(seed + 1)
    z = np.arange(25)[None, :, None, None]
    y, x = np.mgrid[0:51, 0:51]
    centre = (
        25 + 0.3 * z * (1 / np.tan(np.radians(p.conditions(("theta",))[:, 0])))[:, None, None, None]
    )
    profile = np.exp(-((x - centre) ** 2 + (y - 25) ** 2) / 8.0) * (z + 1) * np.exp(-z / 5.0)
    profile = profile.reshape(n, -1)
    showers = profile * (scale * 0.02 * p.energy / profile.sum(axis=1))[:, None]
    showers = (showers * rng.gamma(4.0, 0.25, showers.shape)).astype(np.float32)
    showers[showers < 0.01] = 0
    return write_primaries(path, detector, source, p, showers, seed)


def write_lcd_like(path, n, seed):
    """lcd-ecal photons and π⁰ of the nyu source at 10-100 GeV: a Gaussian blob per layer with a
    rising and falling depth profile, the π⁰'s split in two blobs 2 cells apart, about 1.5 % of
    the primary's energy visible, with gamma-distributed cell fluctuations. Not physics: a
    stand-in with the structure the NYU validation looks at."""
    from caloforge.detectors import load_detector
    from caloforge.sources import load_source, sample_primaries, with_energy

    detector = load_detector("lcd-ecal")
    source = with_energy(load_source("nyu"), energy_range=(10_000.0, 100_000.0))
    p = sample_primaries(source, 0, n, seed)
    rng = np.random.default_rng(seed + 1)
    pi0 = p.conditions(("particle",))[:, 0] == 111
    z = np.arange(25)[None, :, None, None]
    y, x = np.mgrid[0:25, 0:25]
    offset = np.where(pi0, 1.0, 0.0)[:, None, None, None]
    profile = np.exp(-((x - 12 - offset) ** 2 + (y - 12) ** 2) / 3.0) + np.exp(
        -((x - 12 + offset) ** 2 + (y - 12) ** 2) / 3.0
    )
    profile = profile * (z + 1) ** 2 * np.exp(-z / 4.0)
    profile = profile.reshape(n, -1)
    showers = profile * (0.015 * p.energy / profile.sum(axis=1))[:, None]
    showers = (showers * rng.gamma(2.0, 0.5, showers.shape)).astype(np.float32)
    showers[showers < 0.05] = 0
    return write_primaries(path, detector, source, p, showers, seed)


TINY = {
    "wgan-gp-lhcb": {
        "latent": 8,
        "generator_channels": [16, 8, 8, 4],
        "critic_channels": [4, 8, 8, 16],
        "n_critic": 2,
        "regressor_steps": 2,
        "profile_fit_steps": 20,
    },
    "wgan-gp-atlas": {"latent": 4, "hidden": [16, 16], "n_critic": 2},
    "vae-atlas": {"latent": 3, "hidden": [16, 16], "iaf_steps": 2, "iaf_hidden": [8], "context": 4},
    "gan-3d": {"latent": 8, "generator_filters": [4, 2, 2], "discriminator_filters": 2},
    "flow-matching": {"hidden": 32, "blocks": 1, "sample_steps": 3},
    "energy-first": {
        "hidden": 32,
        "blocks": 1,
        "energy_hidden": 16,
        "energy_blocks": 1,
        "sample_steps": 2,
        "energy_steps": 2,
    },
    "lstm-lcd": {"hidden": 16, "embedding": 3, "crop": 6, "keep": 20},
    "wgan-mlp-lcd": {"latent": 8, "crop": 6, "keep": 20, "critic_filters": 2, "n_critic": 2},
    "lagan-lcd": {"latent": 8, "channels": [4, 4, 2], "critic_channels": [2, 2, 2], "n_critic": 2},
}
"""Each family's networks small enough to train a few steps in a second."""


FAMILY_DATA = {
    "wgan-gp-lhcb": "lhcb",
    "flow-matching": "lhcb",
    "flow-matching-student": "lhcb",
    "energy-first": "lhcb",
    "wgan-gp-atlas": "atlas",
    "vae-atlas": "atlas",
    "gan-3d": "clic",
    "lstm-lcd": "lcd",
    "wgan-mlp-lcd": "lcd",
    "lagan-lcd": "lcd",
}
"""The stand-in data each registered family trains on in the tests."""

WRITERS = {
    "lhcb": lambda p: write_lhcb_like(p, 300, seed=1),
    "atlas": lambda p: write_atlas_like(p, 300, seed=1),
    "clic": lambda p: write_clic_like(p, 100, seed=2),
    "lcd": lambda p: write_lcd_like(p, 100, seed=1),
}


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """``data(kind)``: the stand-in file of ``WRITERS[kind]``, written once per session."""
    folder = tmp_path_factory.mktemp("stand-in")
    made: dict = {}

    def get(kind: str):
        if kind not in made:
            made[kind] = WRITERS[kind](folder / f"{kind}.h5")
        return made[kind]

    return get


def tiny_options(family: str, teacher=None) -> dict:
    """A family's tiny test options; the student's name its ``teacher`` directory."""
    if family == "flow-matching-student":
        return {"teacher": str(teacher), "hidden": 16, "blocks": 1}
    return TINY[family]


def option_args(options: dict) -> list[str]:
    """``options`` as ``caloforge train``'s ``-o key=value`` arguments."""
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={json.dumps(value)}")]


@pytest.fixture(scope="session")
def lhcb_like(tmp_path_factory):
    return write_lhcb_like(tmp_path_factory.mktemp("data") / "lhcb_like.h5", 300, seed=1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, lhcb_like):
    """A tiny WGAN trained for 6 steps on ``lhcb_like``."""
    from caloforge.training.loop import TrainingSettings, train

    out = tmp_path_factory.mktemp("models") / "tiny"
    settings = TrainingSettings(steps=6, batch_size=32, checkpoint_every=3, eval_every=3)
    train("wgan-gp-lhcb", lhcb_like, out, settings=settings, model_options=TINY["wgan-gp-lhcb"])
    return out
