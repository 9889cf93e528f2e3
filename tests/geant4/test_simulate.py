"""Real Geant4 on a handful of low-energy events: physics sanity, cell geometry, determinism."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from caloforge.data.showerfile import ShowerFile, ShowerWriter, partial_path
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.geant4.run import merge, parse_shard, shard_range, simulate
from caloforge.sources import load_source, source_from_yaml, source_to_yaml, with_energy

LHCB_1GEV = with_energy(load_source("lhcb"), 1000.0)


def pencil(x: float, y: float, energy: float = 1000.0):
    """Electrons along z entering the face at (x, y)."""
    return source_from_yaml(
        f"name: pencil\nparticles: [e-]\nenergy: {{kind: fixed, value: {energy}}}\n"
        f"position: {{kind: point, x: {x}, y: {y}}}\nconditions: [energy, x, y]"
    )


@pytest.fixture(scope="module")
def lhcb_run(tmp_path_factory):
    """12 events of 1 GeV LHCb electrons, two workers, small chunks."""
    path = tmp_path_factory.mktemp("g4") / "lhcb.h5"
    simulate(load_detector("lhcb-ecal"), LHCB_1GEV, 12, path, seed=7, jobs=2, chunk_size=3)
    return path


def test_energy_is_conserved_and_sampling_fraction_plausible(lhcb_run):
    f = ShowerFile(lhcb_run)
    data = f.read()
    visible = data.showers.sum(axis=1)
    active = data.extras["energy_active"]
    passive = data.extras["energy_passive"]
    incident = data.incident_energies[:, 0]
    assert len(f) == 12 and f.complete
    assert np.all(visible <= active * (1 + 1e-6))  # cells are float32
    assert np.all(active + passive <= incident * (1 + 1e-9))
    # Most of a 1 GeV shower stays in 24 X0; its scintillator share is 0.1-0.2 (REFERENCE.md).
    assert np.mean((active + passive) / incident) > 0.9
    sampling = np.mean(active / (active + passive))
    assert 0.12 < sampling < 0.22


def test_file_records_provenance(lhcb_run):
    f = ShowerFile(lhcb_run)
    assert f.producer["kind"] == "geant4"
    assert f.producer["physics_list"] == "emstandard"
    assert f.producer["production_cut_mm"] == 0.7
    assert "EM tables" in f.producer["em_data"] or "G4EMLOW" in f.producer["em_data"]
    assert f.seed == 7 and f.detector.name == "lhcb-ecal" and f.source.name == "lhcb"
    assert f.condition_names == ("px", "py", "pz", "x", "y")
    p = f.read().conditions[:, :3]
    assert np.allclose(np.linalg.norm(p, axis=1), np.sqrt(1000.0**2 + 2 * 1000.0 * 0.511))


@pytest.mark.parametrize(
    ("detector", "x", "y", "cell"),
    [
        ("lhcb-ecal", 10.0, 10.0, 15 * 30 + 15),  # even grid: the axis is a corner
        ("lhcb-ecal", -250.0, -290.0, 2),  # x runs fastest
        ("clic-ecal", 0.0, 0.0, 25 * 51 + 25),  # odd grid: the axis is a cell centre
        # polar: α bins from -π, r fastest; r = 20 mm is the fifth ring of 4.65 mm
        ("par04", 20 * math.cos(math.pi / 16), 20 * math.sin(math.pi / 16), 8 * 9 + 4),
        ("par04", 20 * math.cos(-15 * math.pi / 16), 20 * math.sin(-15 * math.pi / 16), 4),
    ],
)
def test_pencil_beam_lights_the_cell_it_enters(tmp_path, detector, x, y, cell):
    det = load_detector(detector)
    path = tmp_path / "pencil.h5"
    simulate(det, pencil(x, y), 2, path, seed=1)
    first_layer = ShowerFile(path).read().showers[:, : det.layer_offsets[1]].sum(axis=0)
    assert int(first_layer.argmax()) == cell


def test_a_pi0_made_upstream_lands_as_two_photons_apart(tmp_path):
    # 10 GeV: the photons open by at least 2 m/E = 27 mrad, so over the nyu source's 1.5 m of
    # flight they reach the face 4 cm or more apart, where a π⁰ made at the face gives one blob.
    det = load_detector("lcd-ecal")
    source = with_energy(load_source("nyu"), 10_000.0).model_copy(update={"particles": ("pi0",)})
    assert source.flight == 1500.0 and "flight: 1500.0" in source_to_yaml(source)
    spreads = []
    for flight in (1500.0, 0.0):
        path = tmp_path / f"pi0-{flight}.h5"
        simulate(det, source.model_copy(update={"flight": flight}), 2, path, seed=3)
        data = ShowerFile(path).read()
        assert ShowerFile(path).attrs["source"] == source_to_yaml(
            source.model_copy(update={"flight": flight})
        )
        x = (np.arange(25) - 12) * 5.1
        early = data.showers.reshape(2, 25, 25, 25)[:, :8].sum(axis=1)  # first 8 layers
        variance = 0.0
        for projection in (early.sum(axis=1), early.sum(axis=2)):  # along x, along y
            mean = projection @ x / projection.sum(axis=1)
            variance = variance + projection @ x**2 / projection.sum(axis=1) - mean**2
        spreads.append(np.sqrt(variance))
    assert spreads[0].min() > 2 * spreads[1].max()  # measured: 21 mm against 6-7 mm
    assert "flight:" not in source_to_yaml(source.model_copy(update={"flight": 0.0}))


def test_same_seed_same_showers_whatever_the_workers(tmp_path, lhcb_run):
    again = tmp_path / "again.h5"
    simulate(load_detector("lhcb-ecal"), LHCB_1GEV, 12, again, seed=7, jobs=1, chunk_size=5)
    a, b = ShowerFile(lhcb_run).read(), ShowerFile(again).read()
    assert np.array_equal(a.showers, b.showers)
    assert np.array_equal(a.extras["energy_passive"], b.extras["energy_passive"])
    other = tmp_path / "other.h5"
    simulate(load_detector("lhcb-ecal"), LHCB_1GEV, 3, other, seed=8)
    assert not np.array_equal(ShowerFile(other).read().showers, a.showers[:3])


def test_resume_continues_without_duplicates(tmp_path, lhcb_run):
    path = tmp_path / "resumed.h5"
    det = load_detector("lhcb-ecal")
    simulate(det, LHCB_1GEV, 5, path, seed=7)
    # Pretend the run was cut off after 5 of 12 events, mid-append.
    path.rename(partial_path(path))
    with h5py.File(partial_path(path), "r+") as h5:
        h5.attrs["n_planned"] = 12
        h5["showers"].resize(6, axis=0)
    result = simulate(det, LHCB_1GEV, 12, path, seed=7, resume=True, chunk_size=4)
    assert result.n_new == 7 and result.complete
    assert np.array_equal(ShowerFile(path).read().showers, ShowerFile(lhcb_run).read().showers)


def test_interrupted_parallel_run_keeps_its_events_and_resumes(tmp_path, lhcb_run):
    path = tmp_path / "cut.h5"
    det = load_detector("lhcb-ecal")

    def interrupt(done: int, total: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(det, LHCB_1GEV, 12, path, seed=7, jobs=2, chunk_size=3, progress=interrupt)
    kept = ShowerFile(partial_path(path))
    assert not path.exists() and 6 <= len(kept) < 12
    result = simulate(det, LHCB_1GEV, 12, path, seed=7, jobs=2, chunk_size=3, resume=True)
    assert result.complete and result.n_new == 12 - len(kept)
    assert np.array_equal(ShowerFile(path).read().showers, ShowerFile(lhcb_run).read().showers)


def test_shards_merge_into_the_unsharded_run(tmp_path, lhcb_run):
    det = load_detector("lhcb-ecal")
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"shard{i}.h5")
        simulate(det, LHCB_1GEV, 12, shards[-1], seed=7, shard=(i, 3))
    assert [len(ShowerFile(s)) for s in shards] == [4, 4, 4]
    merged = merge(list(reversed(shards)), tmp_path / "merged.h5")
    assert np.array_equal(ShowerFile(merged).read().showers, ShowerFile(lhcb_run).read().showers)
    with pytest.raises(CaloforgeError, match="do not tile"):
        merge([shards[0], shards[2]], tmp_path / "gap.h5")


def test_shard_parsing():
    assert parse_shard("2/3") == (2, 3)
    assert shard_range(10, (2, 3)) == (6, 10)
    for bad in ("3/2", "2/2", "1/0", "a/b", "-1/2"):
        with pytest.raises(CaloforgeError):
            parse_shard(bad)


def test_bad_requests_fail_before_any_work(tmp_path, lhcb_run):
    det = load_detector("lhcb-ecal")
    with pytest.raises(CaloforgeError, match="must be positive"):
        simulate(det, LHCB_1GEV, 0, tmp_path / "x.h5")
    with pytest.raises(CaloforgeError, match="exists"):
        simulate(det, LHCB_1GEV, 3, lhcb_run, seed=7)
    with pytest.raises(CaloforgeError, match="unknown physics list"):
        simulate(det, LHCB_1GEV, 3, tmp_path / "x.h5", physics="qgsp")
    with pytest.raises(CaloforgeError, match="different seed"):
        simulate(det, LHCB_1GEV, 20, lhcb_run, seed=8, resume=True)


def test_corrupted_partial_is_refused_on_resume(tmp_path):
    path = tmp_path / "broken.h5"
    with ShowerWriter.create(path, n_cells=900, condition_names=("a",), n_planned=5) as w:
        w.close(finish=False)
    partial_path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(CaloforgeError, match=r"corrupted|cannot open"):
        simulate(load_detector("lhcb-ecal"), LHCB_1GEV, 5, path, resume=True)


def test_cli_errors_are_one_line(cli, tmp_path, lhcb_run):
    cases = [
        (["--source", "nope"], "unknown source 'nope'"),
        (["--source", "lhcb", "--n", "0"], "must be positive"),
        (["--source", "lhcb", "--energy", "500GeV"], "outside source 'lhcb'"),
        (["--source", "lhcb", "--shard", "3/2"], "shard '3/2'"),
    ]
    for extra, message in cases:
        args = ["simulate", "lhcb-ecal", "--n", "3", "--out", str(tmp_path / "c.h5"), *extra]
        code, _, stderr = cli(*args)
        assert code == 1, stderr
        assert message in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli(
        "simulate", "lhcb-ecal", "--source", "lhcb", "--n", "3", "--out", str(lhcb_run)
    )
    assert code == 1 and "exists" in stderr


@pytest.fixture(scope="module")
def par04_off_axis(tmp_path_factory):
    """4 GeV electrons entering par04 12 mm from the axis at α = π/16: the centre of angular
    bin 8 of 16, which spans [0, π/8] as CaloChallenge's bins run from -π."""
    path = tmp_path_factory.mktemp("par04") / "off_axis.h5"
    alpha = math.pi / 16
    simulate(
        load_detector("par04"),
        pencil(12 * math.cos(alpha), 12 * math.sin(alpha), 4000.0),
        6,
        path,
        seed=3,
    )
    return path


def test_par04_angular_bins_run_as_calochallenges(par04_off_axis):
    # A centred, normal beam is symmetric in angle: only an off-axis one pins their direction.
    from caloforge.evaluation import calochallenge

    f = ShowerFile(par04_off_axis)
    batch = f.read()
    per_alpha = batch.showers.reshape(len(batch), 45, 16, 9).sum(axis=(0, 1, 3))
    assert int(np.argmax(per_alpha)) == 8
    features = calochallenge.high_level_features(batch.showers, batch.incident_energies, f.detector)
    # Energy-weighted eta = r cos(alpha) and phi = r sin(alpha) in a middle layer: the entry
    # point's direction (12 mm from the axis, with the shower's spread around it).
    eta, phi = features["EC_eta_10"].mean(), features["EC_phi_10"].mean()
    assert eta > 6 and 0 < phi < eta / 2


def test_par04_reader_default_scale_matches_simulate(par04_off_axis, tmp_path):
    # CaloChallenge's dataset 2 is Si energy / 0.033: written that way its E_tot/E_inc is near
    # 0.94, and read back by default it lands in caloforge's units, equal to simulate's file.
    import h5py as h5

    from caloforge.data.formats import convert, to_calochallenge

    visible = ShowerFile(par04_off_axis).read()
    response = np.median(visible.showers.sum(axis=1) / visible.incident_energies[:, 0])
    assert 0.02 < response < 0.04  # a 0.3 mm Si / 1.4 mm W sampling calorimeter
    written = to_calochallenge(par04_off_axis, tmp_path / "cc.h5")
    bare = tmp_path / "bare.h5"  # as CaloChallenge ships it: the two datasets, no attributes
    with h5.File(written) as src, h5.File(bare, "w") as dst:
        for key in ("incident_energies", "showers"):
            dst[key] = src[key][:]
        calibrated = np.median(dst["showers"][:].sum(axis=1) / dst["incident_energies"][:, 0])
    assert 0.8 < calibrated < 1.05
    back = ShowerFile(convert(bare, tmp_path / "back.h5", "calochallenge")).read()
    np.testing.assert_allclose(back.showers, visible.showers, rtol=1e-6, atol=1e-9)
