"""Physics observables of showers: pure functions of arrays and a Detector.

Every function takes showers as an (N, n_cells) array in MeV, cells in the detector's flat order,
after the readout threshold has been applied (``apply_threshold``). ``high_level_features``
collects the per-event features that metrics compare:

- CaloChallenge (arXiv:2410.21611): E_tot, E_layer, energy-weighted centre and width
  sqrt(<x²> − <x>²) per layer in x and y, sparsity (fraction of cells above threshold) per layer;
- 3DGAN: E_tot / E_inc; NYU: the energy spread σ per layer (energy-weighted RMS of the cells'
  distance to the layer's centroid) and the number of non-zero cells;
- LHCb (Chekalina et al., arXiv:1812.01319, appendix): asymmetries, widths and cluster
  coordinates along the particle's trajectory, and sparsity at several thresholds;
- on a one-layer cartesian readout, the fraction of the energy in rings around the shower's
  energy-weighted centroid (``ring_fractions``);
- ATLAS photon shower shapes on ATLAS-like detectors (``caloforge.evaluation.atlas``).

Cell spectra (every cell's energy, not one value per event) come from ``cell_energies``, and
those of the cells far from the centroid from ``far_cell_energies``.
An empty layer has centre and width 0, as CaloChallenge's evaluation sets them.
"""

from __future__ import annotations

import numpy as np

from caloforge.detectors import CartesianBinning, Detector
from caloforge.evaluation.atlas import atlas_shower_shapes
from caloforge.sources.spec import incident_energy

__all__ = [
    "FAR_CELLS",
    "LHCB_CONDITIONS",
    "RINGS",
    "RING_EDGES",
    "apply_threshold",
    "cell_energies",
    "centres_and_widths",
    "centroid_distances",
    "correlation_matrix",
    "far_cell_energies",
    "high_level_features",
    "layer_energies",
    "layer_moments",
    "lhcb_cluster_features",
    "max_relative_difference",
    "one_layer_image",
    "response_and_resolution",
    "ring_fractions",
    "sparsity",
    "transverse_image",
]

LHCB_CONDITIONS = ("px", "py", "pz", "x", "y")
"""The conditions the LHCb cluster observables need."""

SPARSITY_THRESHOLDS = (0.1, 1.0, 10.0)
"""MeV: the thresholds of the LHCb sparsity curves."""

RING_EDGES = (1.0, 3.0, 6.0, 8.0)
"""Cells: the edges of the rings around a shower's centroid (``ring_fractions``)."""
RINGS = tuple(
    f"ring_{a:g}-{b:g}" for a, b in zip((0.0, *RING_EDGES), (*RING_EDGES, np.inf), strict=True)
)
"""The names of the ring features, inner to outer: ``ring_0-1`` ... ``ring_8-inf``."""
FAR_CELLS = 6.0
"""Cells: the distance from the centroid from which ``far_cell_energies`` takes cells."""


def apply_threshold(showers: np.ndarray, threshold: float) -> np.ndarray:
    """Zero every cell below ``threshold`` MeV (CaloChallenge zeroes cells before evaluating)."""
    if threshold <= 0:
        return showers
    return np.where(showers >= threshold, showers, 0).astype(showers.dtype, copy=False)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def layer_energies(showers: np.ndarray, detector: Detector) -> np.ndarray:
    """(N, L) energy per readout layer."""
    return np.add.reduceat(showers, detector.layer_offsets[:-1], axis=1, dtype=np.float64)


def centres_and_widths(showers: np.ndarray, detector: Detector) -> dict[str, np.ndarray]:
    """Energy-weighted centre and width per layer in x and y, and the spread √(wx² + wy²).

    Returns (N, L) arrays under ``centre_x``, ``centre_y``, ``width_x``, ``width_y``, ``spread``.
    """
    x, y = detector.cell_centres[:, 0], detector.cell_centres[:, 1]
    out = {}
    for axis, coord in (("x", x), ("y", y)):
        out[f"centre_{axis}"], out[f"width_{axis}"] = layer_moments(showers, detector, coord)
    out["spread"] = np.hypot(out["width_x"], out["width_y"])
    return out


def layer_moments(
    showers: np.ndarray, detector: Detector, coordinate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) energy-weighted mean and width sqrt(<c²> − <c>²) of a per-cell ``coordinate``
    in each layer; 0 for an empty layer."""
    offsets = detector.layer_offsets[:-1]
    e = layer_energies(showers, detector)
    s = showers.astype(np.float64, copy=False)
    mean = _safe_ratio(np.add.reduceat(s * coordinate, offsets, axis=1), e)
    second = _safe_ratio(np.add.reduceat(s * coordinate**2, offsets, axis=1), e)
    return mean, np.sqrt(np.clip(second - mean**2, 0, None))


def sparsity(showers: np.ndarray, detector: Detector, threshold: float = 0.0) -> np.ndarray:
    """(N, L) fraction of each layer's cells above ``threshold`` (non-zero for 0)."""
    hit = (showers > threshold).astype(np.float64)
    counts = np.add.reduceat(hit, detector.layer_offsets[:-1], axis=1)
    return counts / np.diff(detector.layer_offsets)


def cell_energies(showers: np.ndarray) -> np.ndarray:
    """Every non-zero cell energy, flattened: the single-cell spectrum of 3DGAN and NYU."""
    values = showers.ravel()
    return values[values > 0]


def response_and_resolution(response: np.ndarray) -> tuple[float, float]:
    """The mean of E_tot/E_inc over events and the resolution σ/μ (NaN for a mean ≤ 0).

    Example:
        >>> response_and_resolution(np.array([0.5, 1.5]))
        (1.0, 0.5)
    """
    mean = float(response.mean())
    return mean, float(response.std() / mean) if mean > 0 else float("nan")


WEIGHT_FLOOR = 0.01
"""Bins (layers, cells, histogram bins) with less than this share of the reference's total are
left out of ``max_relative_difference``: the seeds' "agreement within 10 %" is about where a
profile carries weight."""


def max_relative_difference(
    ref: np.ndarray,
    gen: np.ndarray,
    weight: np.ndarray | None = None,
    floor: float = WEIGHT_FLOOR,
) -> float:
    """Largest |gen/ref − 1| over the bins whose ``weight`` (default: ref) holds at least
    ``floor`` of its total; NaN if none does, infinite if gen is not finite there.

    Example:
        >>> max_relative_difference(np.array([100.0, 50.0, 0.5]), np.array([125.0, 25.0, 5.0]))
        0.5
    """
    weight = ref if weight is None else weight
    keep = (weight >= floor * weight.sum()) & np.isfinite(ref) & (ref != 0)
    if not keep.any():
        return float("nan")
    diff = np.abs(gen[keep] / ref[keep] - 1)
    return float(diff.max()) if np.isfinite(diff).all() else float("inf")


def transverse_image(detector: Detector) -> CartesianBinning | None:
    """The common cartesian binning of every layer, if there is one."""
    binnings = {layer.readout for layer in detector.readout_layers}
    if len(binnings) == 1 and isinstance(next(iter(binnings)), CartesianBinning):
        return next(iter(binnings))
    return None


def one_layer_image(detector: Detector) -> CartesianBinning | None:
    """The cartesian binning of a detector with one readout layer, if it has one."""
    binning = transverse_image(detector)
    return binning if binning is not None and len(detector.readout_layers) == 1 else None


def centroid_distances(showers: np.ndarray, detector: Detector) -> np.ndarray:
    """(N, n_cells) Euclidean distance in cells between each cell's centre and the shower's
    energy-weighted centroid (``caloforge.models.common.centroids``) on a one-layer cartesian
    readout; NaN for an empty shower.

    Example:
        >>> from caloforge.detectors import load_detector
        >>> showers = np.zeros((1, 900)); showers[0, 15 * 30 + 15] = 1.0
        >>> float(centroid_distances(showers, load_detector("lhcb-ecal"))[0, 15 * 30 + 18])
        3.0
    """
    from caloforge.models.common import centroids

    binning = one_layer_image(detector)
    if binning is None:
        raise ValueError(f"{detector.name} has no one-layer cartesian readout")
    ny, nx = binning.shape
    row, column = np.divmod(np.arange(ny * nx), nx)
    centre_column, centre_row = centroids(showers, detector).T
    return np.hypot(column - centre_column[:, None], row - centre_row[:, None])


def ring_fractions(showers: np.ndarray, detector: Detector) -> dict[str, np.ndarray]:
    """The fraction of each shower's energy in the rings ``RINGS`` around its centroid: cells
    at a distance r (``centroid_distances``) with a ≤ r < b for the ring ``ring_a-b`` of the
    edges ``RING_EDGES``; 0 for an empty shower. The fractions of a shower sum to 1.

    The energy-weighted width is dominated by the outer rings, which hold a few % of the
    energy: a model with too little energy there comes out narrow.
    """
    ring = np.searchsorted(RING_EDGES, centroid_distances(showers, detector), side="right")
    total = showers.sum(axis=1, dtype=np.float64)
    return {
        name: _safe_ratio(np.where(ring == i, showers, 0).sum(axis=1, dtype=np.float64), total)
        for i, name in enumerate(RINGS)
    }


def far_cell_energies(showers: np.ndarray, detector: Detector) -> np.ndarray:
    """Every non-zero cell energy at ``FAR_CELLS`` cells or more from its shower's centroid
    (``centroid_distances``), flattened: the spectrum of the far cells."""
    far = centroid_distances(showers, detector) >= FAR_CELLS
    return showers[(showers > 0) & far]


def lhcb_cluster_features(
    showers: np.ndarray, detector: Detector, conditions: np.ndarray
) -> dict[str, np.ndarray]:
    """The LHCb cluster observables along the particle's trajectory.

    With (x0, y0) the entry point and p the momentum, the expected centre is where the trajectory
    reaches shower-maximum depth z_max = X0 (ln(E/E_c) − 0.5) of the detector's mixture:
    c = (x0 + z_max px/pz, y0 + z_max py/pz). With u the unit vector of (px, py) (the x axis at
    normal incidence), each cell's offset d from c splits into a longitudinal l = d·u and a
    transverse w = d × u coordinate. Then, summing over depth:

    - ``asym_long`` = (E[l > 0] − E[l < 0]) / E and ``asym_trans`` = (E[w > 0] − E[w < 0]) / E;
    - ``width_long``, ``width_trans``: energy-weighted standard deviations of l and w;
    - ``cluster_x``, ``cluster_y``: energy-weighted mean cell position; ``delta_x``, ``delta_y``:
      cluster coordinate minus expected centre.

    Arguments:
        showers: (N, n_cells) MeV.
        detector: a detector whose layers share one cartesian binning (summed over depth).
        conditions: (N, 5) px, py, pz (MeV), x, y (mm).
    """
    binning = transverse_image(detector)
    if binning is None or detector.mixture is None:
        raise ValueError("LHCb observables need layers sharing one cartesian binning")
    n_layers = len(detector.readout_layers)
    image = showers.reshape(len(showers), n_layers, -1).sum(axis=1, dtype=np.float64)
    xc, yc = binning.centres()
    px, py, pz, x0, y0 = (conditions[:, i] for i in range(5))
    energy = incident_energy(conditions, LHCB_CONDITIONS)[:, 0]
    mix = detector.mixture
    t_max = np.log(np.maximum(energy, mix.critical_energy) / mix.critical_energy) - 0.5
    z_max = np.clip(t_max, 0, None) * mix.x0
    cx = x0 + z_max * px / pz
    cy = y0 + z_max * py / pz
    pt = np.hypot(px, py)
    ux = np.where(pt > 0, _safe_ratio(px, pt), 1.0)
    uy = np.where(pt > 0, _safe_ratio(py, pt), 0.0)
    dx = xc[None, :] - cx[:, None]
    dy = yc[None, :] - cy[:, None]
    longitudinal = dx * ux[:, None] + dy * uy[:, None]
    transverse = dx * uy[:, None] - dy * ux[:, None]
    total = image.sum(axis=1)

    def asymmetry(coord):
        return _safe_ratio((image * np.sign(coord)).sum(axis=1), total)

    def width(coord):
        mean = _safe_ratio((image * coord).sum(axis=1), total)
        second = _safe_ratio((image * coord**2).sum(axis=1), total)
        return np.sqrt(np.clip(second - mean**2, 0, None))

    cluster_x = _safe_ratio(image @ xc, total)
    cluster_y = _safe_ratio(image @ yc, total)
    return {
        "asym_long": asymmetry(longitudinal),
        "asym_trans": asymmetry(transverse),
        "width_long": width(longitudinal),
        "width_trans": width(transverse),
        "cluster_x": cluster_x,
        "cluster_y": cluster_y,
        "delta_x": cluster_x - cx,
        "delta_y": cluster_y - cy,
    }


def high_level_features(
    showers: np.ndarray,
    detector: Detector,
    incident_energies: np.ndarray,
    conditions: np.ndarray | None = None,
    condition_names: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Every per-event feature, by name, each an (N,) array (see the module docstring).

    Per-layer features are named ``NAME_i`` with i the readout layer index. The LHCb cluster
    features are included when the conditions hold px, py, pz, x, y and the layers share one
    cartesian binning; the ring fractions (``RINGS``) when the readout is one cartesian layer.

    Example:
        >>> from caloforge.detectors import load_detector
        >>> det = load_detector("lhcb-ecal")
        >>> showers = np.zeros((1, 900)); showers[0, 15 * 30 + 15] = 100.0
        >>> f = high_level_features(showers, det, np.array([[1000.0]]))
        >>> float(f["E_tot"][0]), float(f["centre_x_0"][0]), float(f["n_nonzero"][0])
        (100.0, 10.0, 1.0)
    """
    e_inc = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
    e_layer = layer_energies(showers, detector)
    e_tot = e_layer.sum(axis=1)
    shapes = centres_and_widths(showers, detector)
    sparse = sparsity(showers, detector)
    features: dict[str, np.ndarray] = {
        "E_tot": e_tot,
        "E_tot/E_inc": _safe_ratio(e_tot, e_inc),
        "n_nonzero": (showers > 0).sum(axis=1).astype(np.float64),
    }
    for i in range(e_layer.shape[1]):
        features[f"E_layer_{i}"] = e_layer[:, i]
        for key in ("centre_x", "centre_y", "width_x", "width_y", "spread"):
            features[f"{key}_{i}"] = shapes[key][:, i]
        features[f"sparsity_{i}"] = sparse[:, i]
    if (
        conditions is not None
        and all(name in condition_names for name in LHCB_CONDITIONS)
        and transverse_image(detector) is not None
        and detector.mixture is not None
    ):
        columns = [condition_names.index(name) for name in LHCB_CONDITIONS]
        features.update(lhcb_cluster_features(showers, detector, conditions[:, columns]))
        for t in SPARSITY_THRESHOLDS:
            features[f"sparsity_above_{t:g}MeV"] = (showers > t).mean(axis=1, dtype=np.float64)
    if one_layer_image(detector) is not None:
        features.update(ring_fractions(showers, detector))
    features.update(atlas_shower_shapes(showers, detector))
    return features


def correlation_matrix(features: dict[str, np.ndarray]) -> np.ndarray:
    """Pearson correlations between features (constant features correlate 0 with all)."""
    matrix = np.stack(list(features.values()), axis=1)
    std = matrix.std(axis=0)
    centred = (matrix - matrix.mean(axis=0)) / np.where(std > 0, std, 1)
    corr = centred.T @ centred / len(matrix)
    corr[:, std == 0] = 0
    corr[std == 0, :] = 0
    return corr
