"""The NYU validation (seed 003) on 3D-image calorimeters with photons and π⁰.

Guthrie, Malkin and Pine judge their generated LCD ECAL showers, per particle type, on:

- the total energy per slice (layer): the longitudinal profile;
- the energy spread per slice, σ = the intensity-weighted RMS distance of the slice's cells from
  its centroid (in mm, over x and y together);
- the histogram of pixel (cell) intensities;
- E_out against E_in, as a scatter and as the histogram of E_out/E_in;
- and the average shower image, whose agreement is what the study found its LAGAN to reach.

Their MLP WGAN "performed surprisingly well" on averaged statistics: the mean E_out/E_in, read
here per bin of E_in (``ENERGY_BINS`` bins of equal reference population) as well as overall,
and how closely E_out follows E_in (their Pearson correlation).

Their finding for the L2-trained LSTM, single events that look like the average, shows in two
numbers this module adds per slice: the spread's mean, and the event-to-event fluctuation of the
slice's share of the incident energy, E_slice/E_in (its standard deviation over its mean; the
share, so that the spread of E_in does not count). The largest relative difference of each
profile, where the reference's slice holds at least 1 % of the energy, reads off
``metrics.json``.

**γ/π⁰ separability.** A π⁰'s two photons reach the face apart (the ``nyu`` source makes them
1.5 m upstream): its shower is wider and elongated. A gradient-boosted classifier
(scikit-learn's HistGradientBoostingClassifier) trained on half the Geant4 showers to tell γ
from π⁰, on log E_in, the slices' energy fractions, their spreads and the long and short axis
of the first third's transverse energy ellipse, gives Geant4's AUC on the other half, per
energy bin; the same classifier scored on the generated showers, labelled by the particle they
were generated as, gives the model's. A faithful model keeps Geant4's separability. The
ellipse's median axes per particle, overall and per E_in bin (``front_ellipse``), say whether a
model that loses it draws the showers too wide or too round.

The module is a study validation (:class:`~caloforge.evaluation.validations.Validation`):
``KEY``, ``TITLE`` and ``TEMPLATE`` name its entry in metrics.json and its section of the
report, :func:`measure` runs :func:`validation` on two samples, and :func:`section` draws its
figures (``nyu_figures``) and fills ``templates/nyu.html``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from caloforge.detectors import Detector
from caloforge.evaluation.observables import (
    cell_energies,
    max_relative_difference,
    response_and_resolution,
    transverse_image,
)
from caloforge.evaluation.report.formatting import percent, sig

if TYPE_CHECKING:
    from caloforge.evaluation.evaluate import Evaluation
    from caloforge.evaluation.report.plotting import Labels

__all__ = ["CONDITIONS", "applies", "separability", "slice_observables", "validation"]
__all__ += ["KEY", "TEMPLATE", "TITLE", "measure", "section", "summary"]  # its Validation members

KEY = "nyu"
"""Its key in metrics.json and its section's id in the report."""
TITLE = "NYU validation"
TEMPLATE = "nyu.html"

CONDITIONS = ("particle", "energy")
PARTICLES = {22: "γ", 111: "π⁰"}
PIXEL_BINS = 50
RESPONSE_BINS = 40
SCATTER_POINTS = 1000
ENERGY_BINS = 4
IMAGE_FLOOR = 1e-3
"""The average image is compared on the cells holding at least this share of its energy: a
share of the 15 625 cells is 6 × 10⁻⁵, and 1 % (the profiles' floor) leaves a handful."""
MIN_PER_CLASS = 20
"""Fewest showers of each particle in a half for the separability classifier."""
_SLICE_KEYS = ("profile", "spread", "fluctuation")


def applies(detector: Detector, names: tuple[str, ...]) -> bool:
    """Whether the detector is a 3D image and the data has the particle and its energy."""
    return all(name in names for name in CONDITIONS) and transverse_image(detector) is not None


def slice_observables(showers: np.ndarray, detector: Detector) -> dict[str, np.ndarray]:
    """Per event: each slice's energy and spread σ (N, layers; NaN for an empty slice), and the
    long and short axis (mm) of the energy ellipse of the first third of the slices (N,)."""
    binning = transverse_image(detector)
    ny, nx = binning.shape
    xe, ye = binning.edges()
    x, y = (xe[1:] + xe[:-1]) / 2, (ye[1:] + ye[:-1]) / 2
    images = showers.reshape(len(showers), -1, ny, nx).astype(np.float64)
    energy = images.sum(axis=(2, 3))
    along_x, along_y = images.sum(axis=2), images.sum(axis=3)  # (N, L, nx), (N, L, ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = along_x @ x / energy, along_y @ y / energy
        variance = (along_x @ x**2 + along_y @ y**2) / energy - mx**2 - my**2
        spread = np.sqrt(np.clip(variance, 0, None))
    front = images[:, : max(1, images.shape[1] // 3)].sum(axis=1)  # (N, ny, nx)
    axes = _ellipse_axes(front, x, y)
    return {"energy": energy, "spread": spread, "long_axis": axes[:, 0], "short_axis": axes[:, 1]}


def _ellipse_axes(images: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 2) square roots of the eigenvalues of each image's energy-weighted covariance."""
    total = np.maximum(images.sum(axis=(1, 2)), np.finfo(np.float64).tiny)
    px, py = images.sum(axis=1) / total[:, None], images.sum(axis=2) / total[:, None]
    mx, my = px @ x, py @ y
    sxx = px @ x**2 - mx**2
    syy = py @ y**2 - my**2
    sxy = np.einsum("nij,i,j->n", images, y, x) / total - mx * my
    half_trace, det = (sxx + syy) / 2, sxx * syy - sxy**2
    root = np.sqrt(np.clip(half_trace**2 - det, 0, None))
    return np.sqrt(np.clip(np.column_stack([half_trace + root, half_trace - root]), 0, None))


def _per_slice(ref: dict, gen: dict, ref_in: np.ndarray, gen_in: np.ndarray) -> dict[str, Any]:
    """Mean energy, mean spread and relative fluctuation of the share per slice, each side."""
    out: dict[str, Any] = {}
    weight = ref["energy"].mean(axis=0)
    for name, function in (
        ("profile", lambda o, e: o["energy"].mean(axis=0)),
        ("spread", lambda o, e: _finite_mean(o["spread"])),
        ("fluctuation", lambda o, e: _relative_std(o["energy"] / e[:, None])),
    ):
        r, g = function(ref, ref_in), function(gen, gen_in)
        out[name] = {
            "ref": r.tolist(),
            "gen": g.tolist(),
            "max_relative_difference": max_relative_difference(r, g, weight),
        }
    return out


def _finite_mean(values: np.ndarray) -> np.ndarray:
    """Mean over events of each column's finite values; NaN where there are none (a slice
    empty in every event)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    total = np.where(finite, values, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(values.shape[1], np.nan), where=count > 0)


def _relative_std(energy: np.ndarray) -> np.ndarray:
    mean = energy.mean(axis=0)
    return np.divide(energy.std(axis=0), mean, out=np.full(mean.shape, np.nan), where=mean > 0)


def _energy_edges(ref_in: np.ndarray) -> np.ndarray:
    """The edges of ``ENERGY_BINS`` bins of E_in of equal reference population."""
    return np.quantile(ref_in, np.linspace(0, 1, ENERGY_BINS + 1))


def _response(ref_in, ref_out, gen_in, gen_out, rng) -> dict[str, Any]:
    r, g = ref_out / ref_in, gen_out / gen_in
    bins = []
    energy_edges = _energy_edges(ref_in)
    for lo, hi in pairwise(energy_edges):
        r_in, g_in = (ref_in >= lo) & (ref_in <= hi), (gen_in >= lo) & (gen_in <= hi)
        if g_in.any():
            row = {"energy_mev": [float(lo), float(hi)]}
            row |= {"mean_ref": float(r[r_in].mean()), "mean_gen": float(g[g_in].mean())}
            bins.append(row | {"relative_difference": row["mean_gen"] / row["mean_ref"] - 1})
    lo, hi = np.quantile(r, [0.001, 0.999])
    margin = 0.5 * (hi - lo) if hi > lo else 0.1 * max(hi, 1e-12)
    edges = np.linspace(max(0.0, lo - margin), hi + margin, RESPONSE_BINS + 1)
    out: dict[str, Any] = {"edges": edges.tolist()}
    for side, values, e_in, e_out in (("ref", r, ref_in, ref_out), ("gen", g, gen_in, gen_out)):
        out[f"mean_{side}"], out[f"resolution_{side}"] = response_and_resolution(values)
        out[f"hist_{side}"] = (np.histogram(values, edges)[0] / len(values)).tolist()
        pick = rng.permutation(len(values))[:SCATTER_POINTS]
        out[f"scatter_{side}"] = [e_in[pick].tolist(), e_out[pick].tolist()]
        out[f"correlation_{side}"] = _correlation(e_in, e_out)
    out["mean_relative_difference"] = out["mean_gen"] / out["mean_ref"] - 1
    out["resolution_relative_difference"] = out["resolution_gen"] / out["resolution_ref"] - 1
    out["bins"] = bins
    out["max_bin_relative_difference"] = max(
        (abs(b["relative_difference"]) for b in bins), default=float("nan")
    )
    return out


def _front_ellipse(ref: dict, gen: dict, ref_in: np.ndarray, gen_in: np.ndarray) -> dict:
    """Median long and short axis (mm) of the first third's energy ellipse, the separability's
    widths: overall and per E_in bin (``ENERGY_BINS`` of equal reference population)."""
    edges = _energy_edges(ref_in)
    rows = []
    for lo, hi in [(edges[0], edges[-1]), *pairwise(edges)]:
        row: dict[str, Any] = {"energy_mev": [float(lo), float(hi)]}
        for side, o, e_in in (("ref", ref, ref_in), ("gen", gen, gen_in)):
            mask = (e_in >= lo) & (e_in <= hi)
            for axis in ("long", "short"):
                values = o[f"{axis}_axis"][mask]
                row[f"{axis}_{side}"] = float(np.median(values)) if mask.any() else None
        rows.append(row)
    return {"overall": rows[0], "bins": rows[1:]}


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of two samples; NaN for fewer than two or a constant one."""
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _pixels(ref: np.ndarray, gen: np.ndarray, threshold: float) -> dict[str, Any]:
    if ref.size < 2 or gen.size < 2:
        return {"cells_ref": int(ref.size), "cells_gen": int(gen.size)}
    low = max(threshold, float(ref.min()), 1e-6)
    edges = np.geomspace(low, max(float(ref.max()), float(gen.max()), 2 * low), PIXEL_BINS + 1)
    h_ref = np.histogram(ref, edges)[0] / ref.size
    h_gen = np.histogram(gen, edges)[0] / gen.size
    return {
        "cells_ref": int(ref.size),
        "cells_gen": int(gen.size),
        "edges": edges.tolist(),
        "ref": h_ref.tolist(),
        "gen": h_gen.tolist(),
        "max_relative_difference": max_relative_difference(h_ref, h_gen),
    }


def classifier_features(observables: dict[str, np.ndarray], energy: np.ndarray) -> np.ndarray:
    """The separability classifier's inputs per event (module docstring)."""
    total = np.maximum(observables["energy"].sum(axis=1, keepdims=True), 1e-12)
    return np.column_stack(
        [
            np.log(energy),
            observables["energy"] / total,
            np.nan_to_num(observables["spread"]),
            observables["long_axis"],
            observables["short_axis"],
        ]
    )


def separability(
    ref_x: np.ndarray,
    ref_pi0: np.ndarray,
    ref_energy: np.ndarray,
    gen_x: np.ndarray,
    gen_pi0: np.ndarray,
    gen_energy: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """γ/π⁰ AUC of a classifier trained on half the reference: on the other half and on the
    generated showers, overall and in ``ENERGY_BINS`` bins of equal reference population."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ref_x))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    if min(np.bincount(ref_pi0[train].astype(int), minlength=2)) < MIN_PER_CLASS:
        return {"skipped": f"fewer than {MIN_PER_CLASS} showers of a particle to train on"}
    model = HistGradientBoostingClassifier(random_state=seed)
    model.fit(ref_x[train], ref_pi0[train])
    scores = {
        "ref": (model.predict_proba(ref_x[test])[:, 1], ref_pi0[test], ref_energy[test]),
        "gen": (model.predict_proba(gen_x)[:, 1], gen_pi0, gen_energy),
    }
    edges = _energy_edges(ref_energy)
    rows = []
    for k, (lo, hi) in enumerate([(edges[0], edges[-1]), *pairwise(edges)]):
        row: dict[str, Any] = {"energy_mev": [float(lo), float(hi)]}
        for side, (score, label, energy) in scores.items():
            last = k == 0 or hi == edges[-1]  # bins are [lo, hi), the last [lo, hi]
            mask = (energy >= lo) & ((energy <= hi) if last else (energy < hi))
            row[f"n_{side}"] = int(mask.sum())
            both = len(np.unique(label[mask])) == 2
            row[f"auc_{side}"] = float(roc_auc_score(label[mask], score[mask])) if both else None
        rows.append(row)
    return {"overall": rows[0], "bins": rows[1:], "n_train": len(train)}


def validation(
    ref: dict[str, np.ndarray],
    gen: dict[str, np.ndarray],
    ref_conditions: tuple[np.ndarray, np.ndarray],
    gen_conditions: tuple[np.ndarray, np.ndarray],
    ref_showers: np.ndarray,
    gen_showers: np.ndarray,
    threshold: float,
    seed: int,
) -> dict[str, Any]:
    """The NYU validation of the module docstring, for metrics.json.

    Arguments:
        ref, gen: :func:`slice_observables` of each sample.
        ref_conditions, gen_conditions: (PDG code, E_in in MeV) of each sample's events.
        ref_showers, gen_showers: the showers (for the pixel histograms).
        threshold: the readout threshold applied, MeV (the pixel histogram's lower edge).
        seed: of the classifier and of the scatter plots' subsamples.
    """
    rng = np.random.default_rng(seed)
    particles: dict[str, Any] = {}
    for code in np.unique(ref_conditions[0]).astype(int):
        r_mask, g_mask = ref_conditions[0] == code, gen_conditions[0] == code
        if not g_mask.any():
            continue
        r = {k: v[r_mask] for k, v in ref.items()}
        g = {k: v[g_mask] for k, v in gen.items()}
        entry: dict[str, Any] = {
            "name": PARTICLES.get(int(code), f"PDG {code}"),
            "n_ref": int(r_mask.sum()),
            "n_gen": int(g_mask.sum()),
            "response": _response(
                ref_conditions[1][r_mask],
                r["energy"].sum(axis=1),
                gen_conditions[1][g_mask],
                g["energy"].sum(axis=1),
                rng,
            ),
            "pixels": _pixels(
                cell_energies(ref_showers[r_mask]), cell_energies(gen_showers[g_mask]), threshold
            ),
            "image": {
                "max_relative_difference": max_relative_difference(
                    ref_showers[r_mask].mean(axis=0, dtype=np.float64),
                    gen_showers[g_mask].mean(axis=0, dtype=np.float64),
                    floor=IMAGE_FLOOR,
                )
            },
        }
        entry["front_ellipse"] = _front_ellipse(
            r, g, ref_conditions[1][r_mask], gen_conditions[1][g_mask]
        )
        slices = _per_slice(r, g, ref_conditions[1][r_mask], gen_conditions[1][g_mask])
        particles[str(code)] = entry | slices
    out: dict[str, Any] = {"particles": particles}
    if {22, 111} <= set(np.unique(ref_conditions[0]).astype(int)):
        out["separability"] = separability(
            classifier_features(ref, ref_conditions[1]),
            ref_conditions[0] == 111,
            ref_conditions[1],
            classifier_features(gen, gen_conditions[1]),
            gen_conditions[0] == 111,
            gen_conditions[1],
            seed,
        )
    return out


def measure(reference, generated, detector, names, threshold, seed) -> dict[str, Any]:
    """:func:`validation` of two :class:`~caloforge.evaluation.evaluate.Sample` (thresholded),
    for metrics.json (:meth:`~caloforge.evaluation.validations.Validation.measure`)."""
    particle = names.index("particle")
    samples = (reference, generated)
    return validation(
        *(x.per_event(lambda s, e, c: slice_observables(s, detector)) for x in samples),
        *((x.conditions[:, particle], x.energy) for x in samples),
        reference.showers,
        generated.showers,
        threshold,
        seed,
    )


def section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> dict[str, Any]:
    """The context of ``templates/nyu.html``, its figures drawn into ``out_dir``
    (:meth:`~caloforge.evaluation.validations.Validation.section`)."""
    from caloforge.evaluation import nyu_figures  # matplotlib: only when drawing

    nyu = evaluation.metrics[KEY]
    rows, figures = [], []
    for code, p in nyu["particles"].items():
        r = p["response"]
        rows.append(
            (
                p["name"],
                f"{p['n_ref']} / {p['n_gen']}",
                f"{sig(r['mean_ref'])} / {sig(r['mean_gen'])}",
                f"{sig(r['resolution_ref'])} / {sig(r['resolution_gen'])}",
                percent(r.get("max_bin_relative_difference")),
                f"{sig(r.get('correlation_ref'))} / {sig(r.get('correlation_gen'))}",
                *(percent(p[k]["max_relative_difference"]) for k in _SLICE_KEYS),
                percent(p["pixels"].get("max_relative_difference")),
                percent(p.get("image", {}).get("max_relative_difference")),
                _ellipse_cell(p.get("front_ellipse")),
            )
        )
        figures.append(
            {
                "name": nyu_figures.particle_figure(p, labels, out_dir / f"nyu_{code}.png"),
                "alt": f"NYU validation, {p['name']}",
                "caption": f"{p['name']}: mean energy, spread and fluctuation per slice; pixel "
                "intensities; E_out/E_in; E_out against E_in (reference filled, generated "
                "points).",
            }
        )
    codes = [int(code) for code in nyu["particles"]]
    figures.append(
        {
            "name": nyu_figures.unrolled_figure(
                evaluation, codes, labels, out_dir / "nyu_unrolled.png"
            ),
            "alt": "unrolled showers",
            "caption": "Showers unrolled as in the seed: each slice's 20 × 20 centre read "
            "along a spiral from the centre out (400 positions, left to right) against the "
            "slice (top to bottom); the mean over events and one event of each sample.",
        }
    )
    separability = None
    if "bins" in nyu.get("separability", {}):
        sep = nyu["separability"]
        table = []
        for row in [sep["overall"], *sep["bins"]]:
            lo, hi = (e / 1e3 for e in row["energy_mev"])
            table.append(
                (
                    "all" if row is sep["overall"] else f"{lo:.0f}–{hi:.0f}",
                    f"{row['n_ref']} / {row['n_gen']}",
                    sig(row["auc_ref"]),
                    sig(row["auc_gen"]),
                )
            )
        separability = {"rows": table, "n_train": sep["n_train"]}
    return {"rows": rows, "figures": figures, "separability": separability}


def _ellipse_cell(ellipse: dict[str, Any] | None) -> str:
    if ellipse is None:  # a metrics.json written before the ellipse was measured
        return "—"
    o = ellipse["overall"]
    return " / ".join(f"{sig(o[f'long_{s}'])} × {sig(o[f'short_{s}'])}" for s in ("ref", "gen"))


def summary(results: dict[str, Any]) -> dict[str, float]:
    """The seed's figures per particle and the separability, name → value
    (:meth:`~caloforge.evaluation.validations.Validation.summary`)."""
    out: dict[str, float] = {}
    for p in results["particles"].values():
        r, name = p["response"], p["name"]
        out |= {
            f"{name} E_out/E_in": r["mean_relative_difference"],
            f"{name} E_out/E_in, worst E_in bin": r["max_bin_relative_difference"],
            f"{name} σ/μ, model / Geant4": r["resolution_gen"] / r["resolution_ref"],
            f"{name} corr(E_out, E_in), Geant4": r["correlation_ref"],
            f"{name} corr(E_out, E_in), model": r["correlation_gen"],
            f"{name} spread": p["spread"]["max_relative_difference"],
            f"{name} fluctuation": p["fluctuation"]["max_relative_difference"],
            f"{name} average image": p["image"]["max_relative_difference"],
        }
        ellipse = p.get("front_ellipse", {}).get("overall", {})  # older files: none
        if ellipse.get("long_gen") is not None:
            out[f"{name} first third's long axis, model / Geant4"] = (
                ellipse["long_gen"] / ellipse["long_ref"]
            )
    if "overall" in results.get("separability", {}):
        overall = results["separability"]["overall"]
        out |= {"γ/π⁰ AUC, Geant4": overall["auc_ref"], "γ/π⁰ AUC, model": overall["auc_gen"]}
    return out
