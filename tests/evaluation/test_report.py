"""Tests of caloforge.evaluation.report on small synthetic evaluations.

Two detectors: the one-layer cartesian LHCb ECAL (with its cluster observables) and a two-layer
polar detector made here. Showers are Gaussian blobs, not physics: the report only has to lay
them out faithfully. The classifier is left out to keep the tests fast (it takes longer than all
the rest); its numbers are formatted by the same function as summary_rows, tested below.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from caloforge.data.showerfile import ShowerBatch, ShowerWriter
from caloforge.detectors import Detector, detector_from_yaml, load_detector
from caloforge.evaluation.evaluate import Evaluation, evaluate, write_metrics
from caloforge.evaluation.observables import RINGS
from caloforge.evaluation.report import cells_auc, summary_rows, write_report
from caloforge.evaluation.report.features import MAX_PANELS, feature_groups
from caloforge.evaluation.report.figures import image_layers
from caloforge.evaluation.report.page import verdict_section
from caloforge.evaluation.report.plotting import Labels

N_EVENTS = 300

POLAR_DETECTOR = """
name: tiny-polar
title: two W/Si layers with a polar readout, for tests
description: A small stand-in for CaloChallenge dataset 2 with 2 layers of 8 x 4 cells.
approximates: nothing; a test detector
size: [100.0, 100.0]
threshold: 0.01
layers:
  - name: layer
    count: 2
    repeat: 2
    slices:
      - {material: G4_W, thickness: 1.4}
      - {material: G4_Si, thickness: 0.3, active: true}
    readout: {binning: polar, r_edges: [0.0, 4.0, 8.0, 16.0, 32.0], n_alpha: 8}
"""

GEANT4 = {"kind": "geant4", "geant4": "11.4", "physics_list": "FTFP_BERT"}


def model(name: str) -> dict[str, str]:
    return {"kind": "model", "family": "flow", "name": name, "version": "0.1"}


def write_showers(
    path: Path,
    detector: Detector,
    conditions: dict[str, np.ndarray],
    energy: np.ndarray,
    producer: dict,
    seed: int,
    width: float,
) -> Path:
    """Blobs of ``width`` mm centred on the axis, deposited over depth with a gamma profile."""
    rng = np.random.default_rng(seed)
    x, y = detector.cell_centres[:, 0], detector.cell_centres[:, 1]
    depth = detector.layer_depths()["t_centre"][detector.cell_layer]
    sigma = width * (1 + 0.1 * rng.normal(size=len(energy)))[:, None]
    weights = np.exp(-(x**2 + y**2) / (2 * sigma**2)) * depth**2 * np.exp(-0.5 * depth)
    visible = 0.2 * energy * (1 + 0.05 * rng.normal(size=len(energy)))
    showers = weights / weights.sum(1, keepdims=True) * visible[:, None]
    showers *= rng.gamma(4, 0.25, showers.shape)
    attrs = {
        "detector": detector.to_yaml(),
        "producer": json.dumps(producer),
        "seed": seed,
    }
    names = tuple(conditions)
    with ShowerWriter.create(
        path, n_cells=detector.n_cells, condition_names=names, attrs=attrs
    ) as w:
        columns = np.stack([conditions[n] for n in names], axis=1)
        w.append(ShowerBatch(showers.astype(np.float32), energy, columns))
    return path


def lhcb_conditions(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    energy = np.exp(rng.uniform(np.log(1e3), np.log(1e5), N_EVENTS))
    tx, ty = rng.normal(0, 0.1, (2, N_EVENTS))
    pz = energy / np.sqrt(1 + tx**2 + ty**2)
    x, y = rng.uniform(-5, 5, (2, N_EVENTS))
    return {"px": pz * tx, "py": pz * ty, "pz": pz, "x": x, "y": y}, energy


def make_evaluation(folder: Path, detector: Detector, generated_name: str, **kw) -> Evaluation:
    rng = np.random.default_rng(7)
    if detector.name == "lhcb-ecal":
        conditions, energy = lhcb_conditions(rng)
    else:
        energy = np.exp(rng.uniform(np.log(1e3), np.log(1e5), N_EVENTS))
        conditions = {"energy": energy}
    ref = write_showers(folder / "ref.h5", detector, conditions, energy, GEANT4, 1, 15.0)
    gen = write_showers(
        folder / "gen.h5", detector, conditions, energy, model(generated_name), 2, 18.0
    )
    # FPD and KPD warn that 300 showers are fewer than they want; that is the point here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return evaluate(gen, ref, **kw)


@pytest.fixture(scope="module")
def lhcb(tmp_path_factory) -> tuple[Evaluation, Path]:
    folder = tmp_path_factory.mktemp("lhcb")
    evaluation = make_evaluation(folder, load_detector("lhcb-ecal"), "lhcb-gan", classifier=False)
    return evaluation, write_report(evaluation, folder / "report")


@pytest.fixture(scope="module")
def polar(tmp_path_factory) -> tuple[Evaluation, Path]:
    folder = tmp_path_factory.mktemp("polar")
    detector = detector_from_yaml(POLAR_DETECTOR)
    evaluation = make_evaluation(folder, detector, "polar-flow", classifier=False)
    return evaluation, write_report(evaluation, folder / "report")


@pytest.fixture(params=["lhcb", "polar"])
def report(request) -> tuple[Evaluation, Path]:
    return request.getfixturevalue(request.param)


def images_of(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_shows_the_verdict_numbers(report):
    evaluation, path = report
    page = path.read_text(encoding="utf-8")
    m = evaluation.metrics
    for key in ("fpd_x1e3", "kpd_x1e3"):
        # Quoted ×10³ with the error rounded to two significant digits, as CaloChallenge does.
        value, error = m[key], m[f"{key}_err"]
        decimals = max(0, 1 - int(np.floor(np.log10(error))))
        assert f"{value:.{decimals}f} ± {error:.{decimals}f}" in page
    assert f"{m['n_reference']} / {m['n_generated']}" in page
    assert f"{m['threshold_mev']:.3g} MeV" in page
    for note in m["notes"]:
        assert escape(note) in page
    assert "classifier not run" in page


def test_worst_features_come_first_in_the_verdict(report):
    evaluation, path = report
    page = path.read_text(encoding="utf-8")
    verdict = page[page.index('id="verdict"') : page.index('id="images"')]
    powers = evaluation.metrics["separation_power"]
    worst = sorted(powers, key=lambda n: (-powers[n], n))[:5]
    positions = [verdict.index(f'<td class="text">{name}</td>') for name in worst]
    assert positions == sorted(positions)


def test_every_feature_is_named_with_its_separation_power(report):
    evaluation, path = report
    page = path.read_text(encoding="utf-8")
    for name in evaluation.features:
        sp = evaluation.metrics["separation_power"][name]
        assert f'<td class="text">{name}</td><td>{sp:.3g}</td>' in page


def test_images_exist_are_referenced_and_stay_small(report):
    _, path = report
    page = path.read_text(encoding="utf-8")
    names = images_of(page)
    assert names and all(not Path(n).is_absolute() and "/" not in n for n in names)
    pngs = {p.name for p in path.parent.glob("*.png")}
    assert set(names) == pngs
    assert len(pngs) <= 25
    for name in pngs:
        data = (path.parent / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) < 1_000_000


def test_page_opens_offline(report):
    _, path = report
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page


def test_sections_come_in_order(report):
    _, path = report
    page = path.read_text(encoding="utf-8")
    order = ["verdict", "images", "features", "spectrum", "response", "correlations", "bins"]
    positions = [page.index(f'<section id="{key}">') for key in [*order, "provenance"]]
    assert positions == sorted(positions)


def test_provenance_names_both_files_and_the_model(report):
    evaluation, path = report
    page = path.read_text(encoding="utf-8")
    provenance = evaluation.metrics["provenance"]
    for side in ("reference", "generated"):
        assert provenance[side]["path"] in page
    assert "Geant4" in page
    assert provenance["generated"]["producer"]["name"] in page


def test_same_evaluation_gives_identical_files(polar, tmp_path):
    evaluation, first = polar
    second = write_report(evaluation, tmp_path)
    assert second.read_bytes() == first.read_bytes()
    for name in images_of(first.read_text(encoding="utf-8")):
        assert (tmp_path / name).read_bytes() == (first.parent / name).read_bytes(), name


def test_polar_layers_are_all_shown_and_named(polar):
    evaluation, path = polar
    page = path.read_text(encoding="utf-8")
    assert "every readout layer" in page
    assert "layer_profiles.png" in images_of(page)
    assert evaluation.detector.name in page


def test_summary_rows_read_metrics_json_back(lhcb, tmp_path):
    evaluation, _ = lhcb
    metrics = json.loads(write_metrics(evaluation, tmp_path).read_text())
    rows = dict(summary_rows(metrics))
    assert rows["classifier AUC, cells"] == "n/a"
    assert rows["events (reference / generated)"] == f"{N_EVENTS} / {N_EVENTS}"
    worst = max(metrics["separation_power"], key=metrics["separation_power"].get)
    assert rows["largest separation power"].startswith(f"{worst}: ")


def test_summary_rows_round_to_the_error():
    metrics = {
        "auc_cells_network": 0.61234,
        "auc_cells_trees": 0.7,
        "auc_features": 0.5,
        "kpd_x1e3": 0.1234,
        "kpd_x1e3_err": 0.056,
        "fpd_x1e3": 12.3,
        "fpd_x1e3_err": 0.0,
        "separation_power": {"E_tot": 0.02, "width_x_0": 0.31, "asym_long": 0.31},
    }
    rows = dict(summary_rows(metrics))
    assert rows["classifier AUC, cells"] == "0.612"
    assert rows["classifier AUC, cells, boosted trees"] == "0.700"
    assert rows["classifier AUC, features"] == "0.500"
    assert rows["KPD ×10³"] == "0.123 ± 0.056"
    assert rows["FPD ×10³"] == "12.3"
    assert rows["largest separation power"] == "asym_long: 0.31"


def test_summary_rows_say_what_was_not_computed():
    rows = dict(summary_rows({"n_reference": 10, "n_generated": 10, "fpd_x1e3": None}))
    assert rows["classifier AUC, cells"] == "n/a"
    assert rows["FPD ×10³"] == "n/a"
    assert rows["largest separation power"] == "n/a"


def test_the_verdict_judges_the_cells_by_the_larger_auc():
    metrics = {"classifier": {"low": {"settings": "quick"}}, "auc_features": 0.9}
    for network, trees, larger in ((0.61, 0.72, "0.720"), (0.83, 0.72, "0.830")):
        metrics |= {"auc_cells_network": network, "auc_cells_trees": trees}
        assert cells_auc(metrics) == float(larger)
        page = verdict_section(metrics, Labels("Geant4", "model")).body
        card = page[page.index("classifier AUC · cells") :]
        assert card.index(larger) < card.index("the larger of network (quick)")
    assert cells_auc({"auc_cells_network": 0.6, "auc_cells_trees": None}) == 0.6
    assert cells_auc({"auc_cells_network": None}) is None


def test_rings_and_far_cells_of_a_one_layer_readout_only(lhcb, polar):
    evaluation, path = lhcb
    assert set(RINGS) <= set(evaluation.features)
    assert "Energy in rings around the centroid" in path.read_text(encoding="utf-8")
    assert "far cell spectrum separation power (r ≥ 6 cells)" in dict(
        summary_rows(evaluation.metrics)
    )
    other, _ = polar
    assert not set(RINGS) & set(other.features)
    assert "far_cell_spectrum_separation_power" not in other.metrics


def test_many_layers_fit_in_few_figures():
    # 45 layers as CaloChallenge dataset 2: 318 features.
    names = ["E_tot", "E_tot/E_inc", "n_nonzero"]
    for i in range(45):
        names += [f"{k}_{i}" for k in ("E_layer", "centre_x", "centre_y", "width_x")]
        names += [f"{k}_{i}" for k in ("width_y", "spread", "sparsity")]
    groups = feature_groups(names)
    shown = [n for group in groups for n in group.features]
    assert sorted(shown) == sorted(names)
    assert all(len(group.features) <= MAX_PANELS for group in groups)
    assert len(groups) <= 8
    # A family over layers starts its own row, so that a column is one layer.
    energies = groups[0].rows
    assert energies[0] == ["E_tot", "E_tot/E_inc"]
    assert energies[1][0] == "E_layer_0"


def test_image_layers_span_the_shower():
    profile = np.exp(-0.5 * ((np.arange(45) - 12) / 6) ** 2)
    chosen = image_layers(profile)
    assert len(chosen) <= 6
    assert 12 in chosen
    assert chosen == sorted(chosen) and chosen[0] < 12 < chosen[-1]
    assert image_layers(np.ones(4)) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "module",
    [
        "caloforge.evaluation.atlas_figures",
        "caloforge.evaluation.clic_figures",
        "caloforge.evaluation.nyu_figures",
        "caloforge.evaluation.report.plotting",
        "caloforge.evaluation.report",
        "caloforge.evaluation.atlas",
        "caloforge.evaluation.clic",
        "caloforge.evaluation.nyu",
        "caloforge.evaluation.validations",
        "caloforge.evaluation.evaluate",
        "caloforge.evaluation.report.figures",
        "caloforge.evaluation.report.page",
    ],
)
def test_each_module_imports_alone_and_only_write_report_loads_the_page(module):
    # A fresh interpreter per module: an import circle fails there whichever module comes first.
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert module in loaded
    if module != "caloforge.evaluation.report.page":
        assert "caloforge.evaluation.report.page" not in loaded
    if module.endswith(("_figures", ".plotting")):
        assert "caloforge.evaluation.report.figures" not in loaded
