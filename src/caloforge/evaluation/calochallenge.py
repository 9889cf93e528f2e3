"""CaloChallenge's own estimators, so that a caloforge number can stand in its published table.

``caloforge evaluate --protocol calochallenge`` computes every metric the way CaloChallenge's
``code/evaluate.py`` (github.com/CaloChallenge/homepage) does, on showers in its units:

- cells in **calibrated** energy, visible / sampling fraction (Par04: / 0.033), and zeroed
  below 0.5 keV of visible energy (its 15.15 keV);
- its high-level features (``HighLevelFeatures.py``): E_tot, E_layer, the centres and widths
  of energy in η = r cos α and φ = r sin α and in r, and the sparsity 1 − (hit fraction), per
  layer; E_tot/E_inc;
- separation powers on its fixed histogram ranges, entries outside them dropped;
- FPD and KPD with jetnet's estimator (draws with replacement, FPD from 10 000 to 50 000,
  KPD batches of 10 000) on its feature array: log10 E_inc, log10 of the energies (+10⁻⁸),
  positions and widths / 100 mm, sparsities, each scaled by the reference's largest |value|;
- the classifier on its inputs: log10 E_inc and cells / E_inc for cells, its feature array
  for features.

The project's default estimators (``evaluate`` without the protocol) differ on purpose; the
README says how and why. The protocol is defined for CaloChallenge's geometries of datasets 2
and 3, every layer binned in angle and radius (``par04``).

References:
    | CaloChallenge 2022 (Krause et al., 2024)
    | https://arxiv.org/abs/2410.21611

    | Evaluating generative models in high energy physics (Kansal et al., 2023)
    | https://arxiv.org/abs/2211.10295
"""

from __future__ import annotations

import numpy as np

from caloforge.detectors import Detector, PolarBinning
from caloforge.errors import CaloforgeError
from caloforge.evaluation.observables import centres_and_widths, layer_energies, layer_moments

__all__ = [
    "FPD_OPTIONS",
    "KPD_OPTIONS",
    "cell_spectrum_edges",
    "check_geometry",
    "feature_matrix",
    "high_level_features",
    "histogram_edges",
]

FPD_OPTIONS = {"min_samples": 10_000, "max_samples": 50_000, "replace": True}
"""``distances.fpd`` as CaloChallenge calls jetnet: ``fpd(ref, gen, min_samples=10000)``."""
KPD_OPTIONS = {"batch_size": 10_000, "replace": True}
"""``distances.kpd`` as CaloChallenge calls jetnet: ``kpd(ref, gen, batch_size=10000)``."""

_ENERGY_FLOOR = 1e-8  # MeV, added before log10, as CaloChallenge does
_MM_PER_UNIT = 100.0  # CaloChallenge divides positions and widths by 100


def check_geometry(detector: Detector) -> None:
    """Refuse detectors whose layers are not all binned in angle and radius."""
    if not all(isinstance(layer.readout, PolarBinning) for layer in detector.readout_layers):
        raise CaloforgeError(
            f"the calochallenge protocol is defined for CaloChallenge's polar geometries "
            f"(par04, datasets 2 and 3); {detector.name!r} is not one"
        )


def high_level_features(
    showers: np.ndarray, energies: np.ndarray, detector: Detector
) -> dict[str, np.ndarray]:
    """CaloChallenge's high-level features of thresholded showers in its units, by name.

    Names: ``E_tot``, ``E_tot/E_inc`` and, per layer i, ``E_layer_i``, ``EC_eta_i``,
    ``EC_phi_i``, ``width_eta_i``, ``width_phi_i``, ``sparsity_i`` (the fraction of empty
    cells), ``EC_r_i`` and ``width_r_i``.
    """
    check_geometry(detector)
    e_layer = layer_energies(showers, detector)
    e_tot = showers.sum(axis=1, dtype=np.float64)
    shapes = centres_and_widths(showers, detector)
    x, y = detector.cell_centres[:, 0], detector.cell_centres[:, 1]
    r_centre, r_width = layer_moments(showers, detector, np.hypot(x, y))
    offsets = detector.layer_offsets
    empty = np.add.reduceat((showers <= 0).astype(np.float64), offsets[:-1], axis=1)
    features = {"E_tot": e_tot, "E_tot/E_inc": e_tot / np.asarray(energies).reshape(-1)}
    for i in range(e_layer.shape[1]):
        features[f"E_layer_{i}"] = e_layer[:, i]
        features[f"EC_eta_{i}"] = shapes["centre_x"][:, i]
        features[f"EC_phi_{i}"] = shapes["centre_y"][:, i]
        features[f"width_eta_{i}"] = shapes["width_x"][:, i]
        features[f"width_phi_{i}"] = shapes["width_y"][:, i]
        features[f"sparsity_{i}"] = empty[:, i] / (offsets[i + 1] - offsets[i])
        features[f"EC_r_{i}"] = r_centre[:, i]
        features[f"width_r_{i}"] = r_width[:, i]
    return features


def histogram_edges(name: str, reference: np.ndarray, threshold: float) -> np.ndarray | None:
    """CaloChallenge's histogram edges for a feature of datasets 2 and 3, or None for a
    feature it draws no histogram of (E_tot: it draws E_tot/E_inc).

    Arguments:
        name: a feature of :func:`high_level_features`.
        reference: the reference's values (the E_layer edges run to its maximum).
        threshold: the cell threshold in calibrated MeV (the E_layer edges start there).
    """
    family = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
    if family == "E_layer":
        top = max(float(np.max(reference)), threshold * 10)
        return np.logspace(np.log10(threshold), np.log10(top), 40)
    fixed = {
        "E_tot/E_inc": (0.5, 1.5, 101),
        "EC_eta": (-30.0, 30.0, 101),
        "EC_phi": (-30.0, 30.0, 101),
        "width_eta": (0.0, 30.0, 101),
        "width_phi": (0.0, 30.0, 101),
        "EC_r": (0.0, 42.0, 101),
        "width_r": (0.0, 20.0, 101),
        "sparsity": (0.0, 1.0, 21),
    }
    return np.linspace(*fixed[family]) if family in fixed else None


def cell_spectrum_edges(reference: np.ndarray, threshold: float) -> np.ndarray:
    """CaloChallenge's edges for the spectrum of every cell: 50 log bins from the threshold."""
    return np.logspace(np.log10(threshold), np.log10(float(np.max(reference))), 50)


def feature_matrix(features: dict[str, np.ndarray], energies: np.ndarray) -> np.ndarray:
    """CaloChallenge's high-level array (``prepare_high_data_for_classifier``), in its order.

    log10 E_inc; log10(E_layer + 10⁻⁸) per layer; η centres, φ centres, η widths, φ widths
    / 100; log10(E_tot + 10⁻⁸); sparsities; r centres, r widths / 100.
    """
    n_layers = sum(1 for name in features if name.startswith("E_layer_"))

    def block(prefix: str) -> list[np.ndarray]:
        return [features[f"{prefix}_{i}"] for i in range(n_layers)]

    columns = [np.log10(np.asarray(energies, dtype=np.float64).reshape(-1))]
    columns += [np.log10(e + _ENERGY_FLOOR) for e in block("E_layer")]
    for prefix in ("EC_eta", "EC_phi", "width_eta", "width_phi"):
        columns += [v / _MM_PER_UNIT for v in block(prefix)]
    columns.append(np.log10(features["E_tot"] + _ENERGY_FLOOR))
    columns += block("sparsity")
    for prefix in ("EC_r", "width_r"):
        columns += [v / _MM_PER_UNIT for v in block(prefix)]
    return np.stack(columns, axis=1)
