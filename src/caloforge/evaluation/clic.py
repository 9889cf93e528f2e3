"""The 3DGAN validation (seed 002) on 3D-image calorimeters conditioned on the polar angle.

Khattak et al. (arXiv:2109.07388) judge their GAN against Geant4 on four things, each reproduced
here for a detector whose readout layers are equal cartesian grids (``clic-ecal``: 25 layers
of 51 × 51 cells) and whose files carry the ``energy`` and ``theta`` conditions:

- the response E_tot/E_p against the primary energy E_p: mean and standard deviation in ten
  equal bins of E_p;
- the single-cell spectrum, every non-zero cell energy, in linear and in logarithmic bins;
- the longitudinal profile (mean energy per layer) and the transverse profiles (mean energy per
  cell column in x and per row in y, summed over depth) in three equal bins of θ;
- the correlation matrix of shower features, and Geant4's minus the GAN's.

The features of the correlation matrix are the seed's kinds on this geometry: E_p, θ, E_tot,
E_tot/E_p, the first moments (energy-weighted mean x, y in mm and depth in layers), the second
moments (energy-weighted standard deviations about them) and the number of non-zero cells and
the energy in the front, middle and back thirds of the depth.

The seed's criterion is agreement within 10 %; :func:`validation` reports, for each, the
largest relative difference where the reference carries weight (a profile's layers and cells
with at least 1 % of its energy, spectrum bins with at least 1 % of the cells, every E_p bin),
so that the criterion reads off ``metrics.json``.

Every per-event quantity is computed from showers in chunks of events
(:func:`image_profiles`), so that 65 025-cell files never have a float64 copy of all cells.

The module is a study validation (:class:`~caloforge.evaluation.validations.Validation`):
``KEY``, ``TITLE`` and ``TEMPLATE`` name its entry in metrics.json and its section of the
report, :func:`measure` runs :func:`validation` on two samples, and :func:`section` draws its
figures (``clic_figures``) and fills ``templates/clic.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from caloforge.detectors import Detector
from caloforge.evaluation.observables import (
    cell_energies,
    correlation_matrix,
    max_relative_difference,
    transverse_image,
)
from caloforge.evaluation.report.formatting import finite, percent, sig

if TYPE_CHECKING:
    from caloforge.evaluation.evaluate import Evaluation
    from caloforge.evaluation.report.plotting import Labels

__all__ = ["CONDITIONS", "applies", "image_profiles", "shower_features", "validation"]
__all__ += ["KEY", "TEMPLATE", "TITLE", "measure", "section", "summary"]  # its Validation members

KEY = "clic"
"""Its key in metrics.json and its section's id in the report."""
TITLE = "3DGAN validation"
TEMPLATE = "clic.html"

CONDITIONS = ("energy", "theta")
"""The conditions the 3DGAN validation bins in."""

ENERGY_BINS = 10
THETA_BINS = 3
SPECTRUM_BINS = 60


def applies(detector: Detector, names: tuple[str, ...]) -> bool:
    """Whether the detector is a 3D image (equal cartesian layers) and the data has E and θ."""
    return all(name in names for name in CONDITIONS) and transverse_image(detector) is not None


def image_profiles(showers: np.ndarray, detector: Detector) -> dict[str, np.ndarray]:
    """Per event: the longitudinal (N, layers) and transverse (N, nx), (N, ny) profiles and the
    number of non-zero cells (N,), of showers on a 3D-image detector (:func:`applies`)."""
    binning = detector.readout_layers[0].readout
    ny, nx = binning.shape
    images = showers.reshape(len(showers), -1, ny, nx)
    return {
        "longitudinal": images.sum(axis=(2, 3), dtype=np.float64),
        "x": images.sum(axis=(1, 2), dtype=np.float64),
        "y": images.sum(axis=(1, 3), dtype=np.float64),
        "n_nonzero": (images > 0).sum(axis=(1, 2, 3)).astype(np.float64),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def shower_features(
    profiles: dict[str, np.ndarray], energy: np.ndarray, theta: np.ndarray, detector: Detector
) -> dict[str, np.ndarray]:
    """The correlation matrix's features (module docstring), each (N,)."""
    xe, ye = detector.readout_layers[0].readout.edges()
    xc, yc = (xe[1:] + xe[:-1]) / 2, (ye[1:] + ye[:-1]) / 2
    long = profiles["longitudinal"]
    depth = np.arange(long.shape[1], dtype=np.float64)
    e_tot = long.sum(axis=1)
    features = {"E_p": energy, "theta": theta, "E_tot": e_tot, "E_tot/E_p": _ratio(e_tot, energy)}
    for axis, profile, coord in (
        ("x", profiles["x"], xc),
        ("y", profiles["y"], yc),
        ("z", long, depth),
    ):
        mean = _ratio(profile @ coord, e_tot)
        second = _ratio(profile @ coord**2, e_tot)
        features[f"M1{axis}"] = mean
        features[f"M2{axis}"] = np.sqrt(np.clip(second - mean**2, 0, None))
    features["n_nonzero"] = profiles["n_nonzero"]
    for name, part in zip(("front", "middle", "back"), np.array_split(long, 3, axis=1)):
        features[f"E_{name}"] = part.sum(axis=1)
    return features


def _equal_bins(values: np.ndarray, n: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return np.linspace(lo, hi if hi > lo else lo + 1.0, n + 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def _response(ref: dict, gen: dict) -> dict[str, Any]:
    edges = _equal_bins(ref["E_p"], ENERGY_BINS)
    rows = []
    for i in range(ENERGY_BINS):
        row: dict[str, Any] = {"E_p": [float(edges[i]), float(edges[i + 1])]}
        for side, f in (("ref", ref), ("gen", gen)):
            r = f["E_tot/E_p"][_bin_index(f["E_p"], edges) == i]
            row[f"n_{side}"] = int(r.size)
            row[f"mean_{side}"] = float(r.mean()) if r.size else float("nan")
            row[f"std_{side}"] = float(r.std()) if r.size else float("nan")
        row["relative_difference"] = row["mean_gen"] / row["mean_ref"] - 1
        rows.append(row)
    diffs = [abs(r["relative_difference"]) for r in rows if np.isfinite(r["relative_difference"])]
    return {"bins": rows, "max_relative_difference": max(diffs) if diffs else float("nan")}


def _spectrum(ref: np.ndarray, gen: np.ndarray, threshold: float) -> dict[str, Any]:
    """Fractions of non-zero cells in linear and log bins set by the reference."""
    out: dict[str, Any] = {"cells_ref": int(ref.size), "cells_gen": int(gen.size)}
    if ref.size < 2 or gen.size < 2:
        return out
    low = max(threshold, float(ref.min()), 1e-6)
    high = max(float(ref.max()), float(gen.max()), 2 * low)
    edges = {
        "linear": np.linspace(0.0, float(np.quantile(ref, 0.999)), SPECTRUM_BINS + 1),
        "log": np.geomspace(low, high, SPECTRUM_BINS + 1),
    }
    for scale, e in edges.items():
        h_ref = np.histogram(ref, e)[0] / ref.size
        h_gen = np.histogram(gen, e)[0] / gen.size
        out[scale] = {"edges": e.tolist(), "ref": h_ref.tolist(), "gen": h_gen.tolist()}
    out["max_relative_difference"] = max_relative_difference(
        np.asarray(out["log"]["ref"]), np.asarray(out["log"]["gen"])
    )
    return out


def _profiles(ref: dict, gen: dict, ref_theta, gen_theta) -> dict[str, Any]:
    edges = _equal_bins(ref_theta, THETA_BINS)
    rows, worst = [], 0.0
    for i in range(THETA_BINS):
        row: dict[str, Any] = {"theta": [float(edges[i]), float(edges[i + 1])]}
        for side, p, theta in (("ref", ref, ref_theta), ("gen", gen, gen_theta)):
            mask = _bin_index(theta, edges) == i
            row[f"n_{side}"] = int(mask.sum())
            for kind in ("longitudinal", "x", "y"):
                values = p[kind][mask]
                mean = values.mean(axis=0) if len(values) else np.full(values.shape[1], np.nan)
                row[f"{kind}_{side}"] = mean.tolist()
        if min(row["n_ref"], row["n_gen"]) > 0:
            for kind in ("longitudinal", "x", "y"):
                diff = max_relative_difference(
                    np.asarray(row[f"{kind}_ref"]), np.asarray(row[f"{kind}_gen"])
                )
                row[f"{kind}_max_relative_difference"] = diff
                worst = max(worst, diff)
        rows.append(row)
    return {"bins": rows, "max_relative_difference": worst}


def validation(
    ref_profiles: dict[str, np.ndarray],
    gen_profiles: dict[str, np.ndarray],
    ref_conditions: tuple[np.ndarray, np.ndarray],
    gen_conditions: tuple[np.ndarray, np.ndarray],
    ref_cells: np.ndarray,
    gen_cells: np.ndarray,
    detector: Detector,
    threshold: float,
) -> dict[str, Any]:
    """The 3DGAN validation of the module docstring, for metrics.json.

    Arguments:
        ref_profiles, gen_profiles: :func:`image_profiles` of each sample.
        ref_conditions, gen_conditions: (E_p, θ) of each sample's events.
        ref_cells, gen_cells: every non-zero cell energy of each sample.
        detector: the detector (its transverse cell centres).
        threshold: the readout threshold applied, MeV (the log spectrum's lower edge).
    """
    ref = shower_features(ref_profiles, *ref_conditions, detector)
    gen = shower_features(gen_profiles, *gen_conditions, detector)
    names = list(ref)
    corr_ref, corr_gen = correlation_matrix(ref), correlation_matrix(gen)
    diff = corr_ref - corr_gen
    return {
        "response": _response(ref, gen),
        "cell_spectrum": _spectrum(ref_cells, gen_cells, threshold),
        "profiles": _profiles(ref_profiles, gen_profiles, ref_conditions[1], gen_conditions[1]),
        "correlation": {
            "features": names,
            "reference": corr_ref.tolist(),
            "generated": corr_gen.tolist(),
            "max_abs_difference": float(np.abs(diff).max()),
        },
    }


def measure(reference, generated, detector, names, threshold, seed) -> dict[str, Any]:
    """:func:`validation` of two :class:`~caloforge.evaluation.evaluate.Sample` (thresholded),
    for metrics.json (:meth:`~caloforge.evaluation.validations.Validation.measure`)."""
    energy, theta = (names.index(name) for name in CONDITIONS)
    samples = (reference, generated)
    return validation(
        *(x.per_event(lambda s, e, c: image_profiles(s, detector)) for x in samples),
        *((x.conditions[:, energy], x.conditions[:, theta]) for x in samples),
        cell_energies(reference.showers),
        cell_energies(generated.showers),
        detector,
        threshold,
    )


def section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> dict[str, Any]:
    """The context of ``templates/clic.html``, its figures drawn into ``out_dir``
    (:meth:`~caloforge.evaluation.validations.Validation.section`)."""
    from caloforge.evaluation import clic_figures  # matplotlib: only when drawing

    clic = evaluation.metrics[KEY]
    rows = []
    for name, value in (
        ("E_tot/E_p per E_p bin (mean)", clic["response"]["max_relative_difference"]),
        ("cell spectrum (log bins)", clic["cell_spectrum"].get("max_relative_difference")),
        ("profiles per θ bin", clic["profiles"]["max_relative_difference"]),
    ):
        within = "yes" if finite(value) and value <= 0.1 else "no"
        rows.append((name, percent(value, 1), within))
    rows.append(
        ("correlation matrix, max |Δρ|", sig(clic["correlation"]["max_abs_difference"]), "–")
    )
    figures = []
    spectrum = clic_figures.spectrum_figure(clic, labels, out_dir / "clic_spectrum.png")
    if spectrum:
        figures.append(
            {
                "name": spectrum,
                "alt": "cell spectrum",
                "caption": "Single-cell spectrum, linear and log bins.",
            }
        )
    figures.append(
        {
            "name": clic_figures.profiles_figure(clic, labels, out_dir / "clic_profiles.png"),
            "alt": "profiles",
            "caption": "Mean longitudinal and transverse profiles in bins of θ (the primary is "
            "tilted in x): reference filled, generated points.",
        }
    )
    figures.append(
        {
            "name": clic_figures.correlation_figure(clic, out_dir / "clic_correlation.png"),
            "alt": "correlation difference",
            "caption": "Reference minus generated correlation of the seed's shower features.",
        }
    )
    return {"rows": rows, "figures": figures}


def summary(results: dict[str, Any]) -> dict[str, float]:
    """The seed's figures, name → value
    (:meth:`~caloforge.evaluation.validations.Validation.summary`)."""
    return {
        "E_tot/E_p, worst E_p bin": results["response"]["max_relative_difference"],
        "cell spectrum": results["cell_spectrum"].get("max_relative_difference", float("nan")),
        "profiles": results["profiles"]["max_relative_difference"],
        "max |Δρ|": results["correlation"]["max_abs_difference"],
    }
