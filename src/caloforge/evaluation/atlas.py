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
"""

from __future__ import annotations

import numpy as np

from caloforge.detectors import CartesianBinning, Detector

__all__ = ["ATLAS_LAYERS", "atlas_shower_shapes", "e_ratio"]

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
