"""The NYU seed's validation and the γ/π⁰ separability in evaluate and its report, on synthetic
lcd-ecal files."""

from __future__ import annotations

import numpy as np
import pytest

from caloforge.data.showerfile import ShowerBatch, ShowerFile, ShowerWriter
from caloforge.detectors import load_detector
from caloforge.evaluation.evaluate import evaluate
from caloforge.evaluation.nyu import applies, separability, slice_observables, summary
from caloforge.evaluation.report import write_report
from tests.conftest import write_lcd_like


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("nyu")
    ref = write_lcd_like(d / "ref.h5", 200, seed=10)
    same = write_lcd_like(d / "same.h5", 200, seed=20)
    # The "mean experiment": every shower replaced by the mean share of its particle, scaled to
    # its energy, as an L2-trained model would give.
    source = ShowerFile(same)
    data = source.read()
    particle = data.conditions[:, 0]
    shares = data.showers / data.incident_energies
    mean = np.zeros_like(data.showers)
    for code in (22, 111):
        mean[particle == code] = shares[particle == code].mean(axis=0)
    mean *= data.incident_energies
    mean[mean < 0.05] = 0
    paths = {"ref": ref, "same": same}
    for name, showers in (("mean", mean), ("scaled", 1.3 * data.showers)):
        paths[name] = d / f"{name}.h5"
        with ShowerWriter.create(
            paths[name], n_cells=data.showers.shape[1], condition_names=source.condition_names,
            attrs=dict(source.attrs),
        ) as w:  # fmt: skip
            w.append(ShowerBatch(showers, data.incident_energies[:, 0], data.conditions))
    return paths


def test_applies_to_3d_images_with_particle_and_energy():
    lcd = load_detector("lcd-ecal")
    assert applies(lcd, ("particle", "energy")) and not applies(lcd, ("energy",))
    assert not applies(load_detector("atlas-like"), ("particle", "energy"))


def test_slice_spread_and_ellipse_on_known_showers():
    lcd = load_detector("lcd-ecal")
    showers = np.zeros((2, 25, 25, 25))
    showers[0, :, 12, 12] = 1.0  # one cell per slice: no spread
    showers[1, :, 12, 10] = showers[1, :, 12, 14] = 1.0  # two cells 4 cells apart in x
    o = slice_observables(showers.reshape(2, -1), lcd)
    np.testing.assert_allclose(o["energy"], [[1.0] * 25, [2.0] * 25])
    np.testing.assert_allclose(o["spread"][0], 0.0, atol=1e-9)
    np.testing.assert_allclose(o["spread"][1], 2 * 5.1)  # RMS about the centroid: half apart
    np.testing.assert_allclose([o["long_axis"][1], o["short_axis"][1]], [2 * 5.1, 0.0], atol=1e-6)


def test_separability_measures_what_a_classifier_can_tell():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    pi0 = np.arange(400) % 2 == 1
    x[pi0, 0] += 3.0
    energy = rng.uniform(1e4, 1e5, 400)
    faithful = separability(x, pi0, energy, x, pi0, energy, seed=1)
    blind = separability(x, pi0, energy, x * [0, 1, 1], pi0, energy, seed=1)
    assert faithful["overall"]["auc_ref"] > 0.95 and faithful["overall"]["auc_gen"] > 0.95
    assert abs(blind["overall"]["auc_gen"] - 0.5) < 0.1
    assert len(faithful["bins"]) == 4 and sum(b["n_ref"] for b in faithful["bins"]) == 200


def test_seed_validation_sees_the_mean_experiment(files, tmp_path):
    same = evaluate(files["same"], files["ref"], classifier=False)
    mean = evaluate(files["mean"], files["ref"], classifier=False).metrics["nyu"]
    nyu = same.metrics["nyu"]
    assert set(nyu["particles"]) == {"22", "111"}
    for code in ("22", "111"):
        p = nyu["particles"][code]
        assert p["profile"]["max_relative_difference"] < 0.15
        assert p["fluctuation"]["max_relative_difference"] < 0.25
        assert abs(p["response"]["resolution_relative_difference"]) < 0.3
        # the mean event has the right profile but no fluctuation of its shares
        m = mean["particles"][code]
        assert m["profile"]["max_relative_difference"] < 0.15
        assert m["fluctuation"]["max_relative_difference"] > 0.9
        assert m["response"]["resolution_gen"] < 0.6 * m["response"]["resolution_ref"]
    # the averaged statistics: E_out/E_in per E_in bin, corr(E_out, E_in), the average image
    # (scaled: the same showers as "same", 1.3 times their energy)
    scaled = evaluate(files["scaled"], files["same"], classifier=False).metrics["nyu"]
    for code in ("22", "111"):
        same_r, mean_r = nyu["particles"][code]["response"], mean["particles"][code]["response"]
        assert len(same_r["bins"]) == 4 and same_r["max_bin_relative_difference"] < 0.1
        assert abs(same_r["correlation_gen"] - same_r["correlation_ref"]) < 0.05
        assert mean_r["correlation_gen"] > same_r["correlation_ref"]  # E_out ∝ E_in exactly
        assert nyu["particles"][code]["image"]["max_relative_difference"] < 0.6  # 100 each
        s = scaled["particles"][code]
        assert s["response"]["max_bin_relative_difference"] == pytest.approx(0.3, rel=1e-4)
        assert s["image"]["max_relative_difference"] == pytest.approx(0.3, rel=1e-4)
    # the first third's ellipse: the stand-in's π⁰ is two blobs side by side in x
    gamma, pi0 = (nyu["particles"][c]["front_ellipse"] for c in ("22", "111"))
    assert pi0["overall"]["long_ref"] > 1.2 * gamma["overall"]["long_ref"]
    assert pi0["overall"]["short_ref"] == pytest.approx(gamma["overall"]["short_ref"], rel=0.1)
    for row in (*gamma["bins"], *pi0["bins"]):
        assert row["long_gen"] == pytest.approx(row["long_ref"], rel=0.1)
    assert summary(nyu)["π⁰ first third's long axis, model / Geant4"] == pytest.approx(1, abs=0.1)
    headline = summary(scaled)
    assert headline["π⁰ average image"] == pytest.approx(0.3, rel=1e-4)
    assert headline["γ E_out/E_in, worst E_in bin"] == pytest.approx(0.3, rel=1e-4)
    assert headline["γ/π⁰ AUC, Geant4"] > 0.9
    # the stand-in's π⁰ is two blobs 2 cells apart: Geant4-like files keep it apart
    assert nyu["separability"]["overall"]["auc_ref"] > 0.9
    assert nyu["separability"]["overall"]["auc_gen"] > 0.9
    page = write_report(same, tmp_path / "report").read_text()
    assert 'id="nyu"' in page and "γ/π⁰ separability" in page and "nyu_unrolled.png" in page
    assert (tmp_path / "report" / "nyu_111.png").exists()
