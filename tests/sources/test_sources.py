import numpy as np
import pytest

from caloforge.errors import CaloforgeError
from caloforge.sources import (
    CONDITIONS,
    builtin_sources,
    load_source,
    parse_energy,
    particle_conditions,
    sample_primaries,
    source_from_yaml,
    with_energy,
)


def test_presets_exist():
    assert {"lhcb", "atlas", "3dgan", "nyu"} <= set(builtin_sources())


@pytest.mark.parametrize("name", ["lhcb", "atlas", "3dgan", "nyu"])
def test_conditions_have_the_declared_columns(name):
    src = load_source(name)
    p = sample_primaries(src, 0, 1000, seed=7)
    cond = p.conditions(src.conditions)
    assert cond.shape == (1000, len(src.conditions))
    assert np.isfinite(cond).all()
    assert np.all(np.abs(np.linalg.norm(p.direction, axis=1) - 1) < 1e-12)
    lo, hi = src.energy_range
    assert p.energy.min() >= lo and p.energy.max() <= hi


@pytest.mark.parametrize("name", builtin_sources())
def test_one_particle_conditions_equal_the_arrays(name):
    """The hybrid's per-particle path gives every condition exactly as the array path does."""
    primaries = sample_primaries(load_source(name), 0, 100, seed=3)
    names = tuple(CONDITIONS)
    one = [
        particle_conditions(names, int(p), float(e), x.tolist(), d.tolist())
        for p, e, x, d in zip(
            primaries.pdg, primaries.energy, primaries.position, primaries.direction
        )
    ]
    np.testing.assert_array_equal(np.array(one), primaries.conditions(names))


def test_lhcb_spectrum_and_angles():
    src = load_source("lhcb")
    p = sample_primaries(src, 0, 20_000, seed=1)
    # dN/dE ∝ 1/E: ln E is uniform, so half the events lie below sqrt(1 GeV * 100 GeV) = 10 GeV.
    assert np.mean(p.energy < 10_000) == pytest.approx(0.5, abs=0.02)
    angle_xz = np.degrees(np.arctan2(p.direction[:, 0], p.direction[:, 2]))
    angle_yz = np.degrees(np.arctan2(p.direction[:, 1], p.direction[:, 2]))
    assert angle_xz.std() == pytest.approx(20, rel=0.05)
    assert angle_yz.std() == pytest.approx(10, rel=0.05)
    assert np.abs(p.position[:, :2]).max() <= 5.0
    px, py, pz, _, _ = p.conditions(src.conditions).T
    assert np.allclose(
        np.sqrt(px**2 + py**2 + pz**2), np.sqrt(p.energy**2 + 2 * p.energy * 0.511), rtol=1e-6
    )


def test_atlas_eta_and_3dgan_theta():
    atlas = load_source("atlas")
    e, eta = sample_primaries(atlas, 0, 5000, seed=2).conditions(atlas.conditions).T
    assert set(np.unique(e)) == set(atlas.energy.values)
    assert eta.min() >= 0.2 and eta.max() <= 0.25
    gan = load_source("3dgan")
    p = sample_primaries(gan, 0, 5000, seed=2)
    theta = p.conditions(("theta",))[:, 0]
    assert theta.min() >= 60 and theta.max() <= 120
    # theta = 90 is normal incidence.
    i = np.argmin(np.abs(theta - 90))
    assert p.direction[i, 2] > 0.999


def test_nyu_mixes_photons_and_pions():
    nyu = load_source("nyu")
    pdg = sample_primaries(nyu, 0, 4000, seed=3).conditions(("particle",))[:, 0]
    assert set(np.unique(pdg)) == {22, 111}
    assert np.mean(pdg == 22) == pytest.approx(0.5, abs=0.05)


def test_events_depend_only_on_seed_and_index():
    src = load_source("lhcb")
    whole = sample_primaries(src, 0, 10_000, seed=5)
    part = sample_primaries(src, 4000, 4100, seed=5)  # spans a block boundary
    assert np.array_equal(whole.energy[4000:4100], part.energy)
    assert np.array_equal(whole.direction[4000:4100], part.direction)
    other = sample_primaries(src, 4000, 4100, seed=6)
    assert not np.array_equal(other.energy, part.energy)


def test_energy_parsing_and_overrides():
    assert parse_energy("20 GeV") == 20_000
    assert parse_energy("1.5TeV") == 1.5e6
    with pytest.raises(CaloforgeError):
        parse_energy("twenty")
    src = with_energy(load_source("lhcb"), energy=20_000)
    assert np.all(sample_primaries(src, 0, 10, seed=0).energy == 20_000)
    with pytest.raises(CaloforgeError, match="outside source 'lhcb'"):
        with_energy(load_source("lhcb"), energy=500_000)
    ranged = with_energy(load_source("nyu"), energy_range=(1000, 2000))
    assert ranged.energy_range == (1000, 2000)


FIXED = "energy: {kind: fixed, value: 1}"


def test_bad_source_yaml():
    with pytest.raises(CaloforgeError, match="unknown particle"):
        source_from_yaml(
            "name: x\nparticles: [graviton]\nenergy: {kind: fixed, value: 1}\nconditions: [energy]"
        )
    with pytest.raises(CaloforgeError, match="unknown condition"):
        source_from_yaml(
            "name: x\nparticles: [e-]\nenergy: {kind: fixed, value: 1}\nconditions: [spin]"
        )
    with pytest.raises(CaloforgeError, match="unknown source"):
        load_source("nope")
