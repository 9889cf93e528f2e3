"""ATLAS photon shower shapes on the ``atlas-like`` cells (266 cells around the impact cell).

The readout layers are the presampler (7 η × 3 φ cells), the strips (56 × 3), the middle layer
(7 × 7) and the back (4 × 7); in the detector's flat order each layer is an image of φ rows by
η columns, x being η and y φ. On this geometry the standard ATLAS photon identification
variables (ATLAS Collaboration, Eur. Phys. J. C 79 (2019) 205, arXiv:1902.04655, table 1) read:

- ``f_<layer>``: the layer's share of the total energy, presampler included;
- ``f1`` and ``f3``: the strips' and the back's share of the energy in the accordion (strips,
  middle and back), as ATLAS defines them;
- ``depth``: the energy-weighted mean depth of the layers' centres, in X0 from the front face;
- ``R_eta``: middle-layer energy in the central 3 η columns (all 7 φ) over the 7 × 7;
- ``R_phi``: middle-layer energy in the central 3 × 3 over the central 3 η × 7 φ;
- ``w_eta2``: the energy-weighted RMS of η, in units of η, in the middle layer's central
  3 η × 5 φ cells (cell size Δη = 0.025);
- ``E_ratio``: in the strips' η profile (the 3 φ rows summed), (E₁ − E₂) / (E₁ + E₂) with E₁ the
  largest strip and E₂ the largest local maximum after it; 1 when the profile has one maximum.

The cells sit around the impact cell, so these windows are centred on the cell the photon
enters, where ATLAS centres them on the hottest cell of the cluster: the same cell for nearly
every photon at η 0.20–0.25. Mean η and φ in the strips and the middle are the general features
``centre_x_1``, ``centre_y_1``, ``centre_x_2`` and ``centre_y_2`` (mm; 38.3 mm is 0.025 in η,
36.8 mm is 0.0245 in φ).

**The ATLAS validation.** The ATLAS study (seed 001) judged its GAN and VAE per photon energy:
the energy response and resolution at each of its energies ("GAN still about 15 % too large at
worst case"), the shower shapes above against Geant4's, and energies left out of the training
(interpolation). :func:`validation` measures, at each energy point of the reference (or in
``ENERGY_BINS`` ranges of equal population when the energies are continuous): the mean
E_tot/E_inc and σ/μ of both samples, and the separation power of every shower shape within
that energy, on :func:`~caloforge.evaluation.evaluate.histogram_bins` bins of the energy's
reference events. The common metrics pool all energies, where a shape that is right on average
can be wrong at every energy; these do not.

The module is a study validation (:class:`~caloforge.evaluation.validations.Validation`):
``KEY``, ``TITLE`` and ``TEMPLATE`` name its entry in metrics.json and its section of the
report, :func:`measure` runs :func:`validation` on two samples, and :func:`section` draws its
figure (``atlas_figures``) and fills ``templates/atlas.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from caloforge.detectors import CartesianBinning, Detector

if TYPE_CHECKING:
    from caloforge.evaluation.evaluate import Evaluation
    from caloforge.evaluation.report.plotting import Labels

__all__ = ["ATLAS_LAYERS", "applies", "atlas_shower_shapes", "e_ratio", "validation"]
__all__ += ["KEY", "TEMPLATE", "TITLE", "measure", "section", "summary"]  # its Validation members

KEY = "atlas"
"""Its key in metrics.json and its section's id in the report."""
TITLE = "ATLAS validation"
TEMPLATE = "atlas.html"
ENERGY_BINS = 4
"""Ranges of equal reference population when the incident energies are not a few points."""

ATLAS_LAYERS = ("presampler", "strips", "middle", "back")
"""The readout layers, by name, that make a detector ATLAS-like."""

_ETA_PER_MIDDLE_CELL = 0.025


def _is_atlas_like(detector: Detector) -> bool:
    layers = detector.readout_layers
    return tuple(layer.name for layer in layers) == ATLAS_LAYERS and all(
        isinstance(layer.readout, CartesianBinning) for layer in layers
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _central(n: int, width: int) -> slice:
    start = (n - width) // 2
    return slice(start, start + width)


def e_ratio(profile: np.ndarray) -> np.ndarray:
    """(E₁ − E₂) / (E₁ + E₂) of each row of ``profile`` (N, cells): E₁ the largest cell, E₂ the
    largest other local maximum (a cell above both neighbours); 1 without one, 0 for an empty
    profile.

    Example:
        >>> e_ratio(np.array([[0.0, 4.0, 1.0, 2.0, 0.0], [0.0, 3.0, 2.0, 1.0, 0.0]]))
        array([0.33333333, 1.        ])
    """
    profile = np.asarray(profile, dtype=np.float64)
    padded = np.pad(profile, ((0, 0), (1, 1)), constant_values=-np.inf)
    peaks = (profile > padded[:, :-2]) & (profile > padded[:, 2:]) & (profile > 0)
    values = np.sort(np.where(peaks, profile, 0.0), axis=1)
    first, second = profile.max(axis=1), values[:, -2]
    second = np.where(values[:, -1] == first, second, values[:, -1])
    return np.where(first > 0, _ratio(first - second, first + second), 0.0)


def atlas_shower_shapes(showers: np.ndarray, detector: Detector) -> dict[str, np.ndarray]:
    """The ATLAS photon shower shapes of the module docstring, each an (N,) array; empty for a
    detector that is not ATLAS-like (readout layers presampler, strips, middle, back)."""
    if not _is_atlas_like(detector):
        return {}
    layers = detector.split_layers(showers.astype(np.float64))
    _, strips, middle, _ = layers
    e_layer = np.stack([layer.sum(axis=(1, 2)) for layer in layers], axis=1)
    e_tot = e_layer.sum(axis=1)
    accordion = e_layer[:, 1:].sum(axis=1)
    features = {f"f_{name}": _ratio(e_layer[:, i], e_tot) for i, name in enumerate(ATLAS_LAYERS)}
    features["f1"] = _ratio(e_layer[:, 1], accordion)
    features["f3"] = _ratio(e_layer[:, 3], accordion)
    depth = detector.layer_depths()["t_centre"]
    features["depth"] = _ratio(e_layer @ depth, e_tot)

    n_phi, n_eta = middle.shape[1:]
    eta3 = middle[:, :, _central(n_eta, 3)]
    features["R_eta"] = _ratio(eta3.sum(axis=(1, 2)), middle.sum(axis=(1, 2)))
    features["R_phi"] = _ratio(
        eta3[:, _central(n_phi, 3), :].sum(axis=(1, 2)), eta3.sum(axis=(1, 2))
    )
    window = middle[:, _central(n_phi, 5), _central(n_eta, 3)]
    eta = (np.arange(3) - 1.0) * _ETA_PER_MIDDLE_CELL
    weights = window.sum(axis=1)
    total = weights.sum(axis=1)
    mean = _ratio(weights @ eta, total)
    second = _ratio(weights @ eta**2, total)
    features["w_eta2"] = np.sqrt(np.clip(second - mean**2, 0, None))
    features["E_ratio"] = e_ratio(strips.sum(axis=1))
    return features


def applies(detector: Detector, names: tuple[str, ...]) -> bool:
    """Whether the detector is ATLAS-like (:data:`ATLAS_LAYERS`) and the data has its energy."""
    return "energy" in names and _is_atlas_like(detector)


def _worst(values: list[float], target: float) -> float:
    """The value furthest from ``target`` (NaN when none is finite)."""
    finite = [v for v in values if np.isfinite(v)]
    return max(finite, key=lambda v: abs(v - target)) if finite else float("nan")


def validation(
    ref_shapes: dict[str, np.ndarray],
    gen_shapes: dict[str, np.ndarray],
    ref_response: np.ndarray,
    gen_response: np.ndarray,
    bins: list[Any],
) -> dict[str, Any]:
    """The ATLAS validation of the module docstring, for metrics.json.

    Arguments:
        ref_shapes, gen_shapes: :func:`atlas_shower_shapes` of each sample's events.
        ref_response, gen_response: E_tot/E_inc of each sample's events.
        bins: the energy points or ranges, as
            :class:`~caloforge.evaluation.conditions.ConditionBin` (masks of both samples).
    """
    from caloforge.evaluation.distances import separation_power
    from caloforge.evaluation.evaluate import MIN_BIN_EVENTS, histogram_bins
    from caloforge.evaluation.observables import response_and_resolution

    rows = []
    for b in bins:
        n_ref, n_gen = int(b.ref.sum()), int(b.gen.sum())
        row: dict[str, Any] = {"label": b.label, "n_ref": n_ref, "n_gen": n_gen}
        if min(n_ref, n_gen) >= MIN_BIN_EVENTS:
            row["response_ref"], row["resolution_ref"] = response_and_resolution(
                ref_response[b.ref]
            )
            row["response_gen"], row["resolution_gen"] = response_and_resolution(
                gen_response[b.gen]
            )
            row["response_relative_difference"] = row["response_gen"] / row["response_ref"] - 1
            row["resolution_ratio"] = row["resolution_gen"] / row["resolution_ref"]
            n = histogram_bins(n_ref)
            powers = {
                name: separation_power(ref_shapes[name][b.ref], gen_shapes[name][b.gen], n)
                for name in ref_shapes
            }
            row["separation_power"] = powers
            row["worst_shape"] = max(powers, key=powers.get)
            row["worst_separation_power"] = powers[row["worst_shape"]]
        rows.append(row)
    measured = [r for r in rows if "separation_power" in r]
    worst = max(measured, key=lambda r: r["worst_separation_power"], default=None)
    return {
        "energies": rows,
        "worst_response_relative_difference": _worst(
            [r["response_relative_difference"] for r in measured], 0.0
        ),
        "worst_resolution_ratio": _worst([r["resolution_ratio"] for r in measured], 1.0),
        "worst_separation_power": None
        if worst is None
        else {
            "energy": worst["label"],
            "shape": worst["worst_shape"],
            "value": worst["worst_separation_power"],
        },
    }


def measure(reference, generated, detector, names, threshold, seed) -> dict[str, Any]:
    """:func:`validation` of two :class:`~caloforge.evaluation.evaluate.Sample` (thresholded),
    for metrics.json (:meth:`~caloforge.evaluation.validations.Validation.measure`)."""
    from caloforge.evaluation.conditions import condition_bins

    samples = (reference, generated)
    shapes = [x.per_event(lambda s, e, c: atlas_shower_shapes(s, detector)) for x in samples]
    responses = [_ratio(x.showers.sum(axis=1, dtype=np.float64), x.energy) for x in samples]
    bins = condition_bins(
        reference.energy, reference.conditions, generated.energy, generated.conditions, names,
        n_bins=ENERGY_BINS,
    )  # fmt: skip
    energy_bins = [b for b in bins if b.kind.startswith("energy")]
    return validation(*shapes, *responses, energy_bins)


def section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> dict[str, Any]:
    """The context of ``templates/atlas.html``, its figure drawn into ``out_dir``
    (:meth:`~caloforge.evaluation.validations.Validation.section`)."""
    from caloforge.evaluation import atlas_figures  # matplotlib: only when drawing
    from caloforge.evaluation.report.formatting import percent, sig

    atlas = evaluation.metrics[KEY]
    rows = []
    for r in atlas["energies"]:
        if "separation_power" not in r:
            rows.append((r["label"], f"{r['n_ref']} / {r['n_gen']}", *["–"] * 5))
            continue
        rows.append(
            (
                r["label"],
                f"{r['n_ref']} / {r['n_gen']}",
                f"{sig(r['response_ref'])} / {sig(r['response_gen'])}",
                percent(r["response_relative_difference"], 1),
                f"{sig(r['resolution_ref'])} / {sig(r['resolution_gen'])}",
                sig(r["resolution_ratio"]),
                f"{r['worst_shape']} {sig(r['worst_separation_power'])}",
            )
        )
    name = atlas_figures.energies_figure(atlas, labels, out_dir / "atlas_energies.png")
    figure = {
        "name": name,
        "alt": "ATLAS validation per energy",
        "caption": "Per incident energy: the mean response E_tot/E_inc, the resolution σ/μ "
        "(reference line, generated points), and each shower shape's separation power.",
    }
    return {"rows": rows, "figures": [figure] if name else []}


def summary(results: dict[str, Any]) -> dict[str, float]:
    """The study's figures, name → value
    (:meth:`~caloforge.evaluation.validations.Validation.summary`)."""
    worst = results["worst_separation_power"]
    return {
        "E_tot/E_inc, worst energy": results["worst_response_relative_difference"],
        "σ/μ model / Geant4, worst energy": results["worst_resolution_ratio"],
        "shower shapes, worst separation power within an energy": (
            worst["value"] if worst else float("nan")
        ),
    }
