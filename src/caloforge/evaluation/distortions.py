"""Deliberate distortions of showers, to check that the metrics see what they should.

A metric earns trust by staying at its floor for two samples of the same physics and by moving
clearly for a known defect. ``scale_energy`` multiplies every cell (a 5 % miscalibration);
``smear_cells`` spreads each layer's image with a Gaussian of a given width in cells (a shower
too wide by about one cell), conserving each layer's energy inside the readout;
``share_with_neighbours`` moves a fraction of every cell's energy to its four neighbours, a
defect that a classifier of the cells must see; ``shift_outward`` moves a fraction of every
polar cell's energy to the next ring outward (a radial smear).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from caloforge.data.showerfile import ShowerBatch, ShowerFile, ShowerWriter
from caloforge.detectors import CartesianBinning, Detector, PolarBinning
from caloforge.errors import CaloforgeError

__all__ = [
    "DISTORTIONS",
    "LABELS",
    "scale_energy",
    "share_with_neighbours",
    "shift_outward",
    "smear_cells",
    "write_distorted",
]


def scale_energy(showers: np.ndarray, factor: float = 1.05) -> np.ndarray:
    """Every cell times ``factor``."""
    return showers * np.float32(factor)


def _per_layer(showers, detector, binning, what, transform) -> np.ndarray:
    """``transform`` applied to every layer's image (n, rows, columns), float64; refuses
    layers whose readout is not of type ``binning``."""
    out = np.empty_like(showers)
    offsets = detector.layer_offsets
    for i, layer in enumerate(detector.readout_layers):
        if not isinstance(layer.readout, binning):
            raise CaloforgeError(f"{what} is defined for {binning.__name__} layers only")
        a, b = offsets[i], offsets[i + 1]
        images = showers[:, a:b].reshape(len(showers), *layer.readout.shape).astype(np.float64)
        out[:, a:b] = transform(images).reshape(len(showers), -1)
    return out


def smear_cells(showers: np.ndarray, detector: Detector, sigma_cells: float = 1.0) -> np.ndarray:
    """Each cartesian layer blurred by a Gaussian of ``sigma_cells`` cells, renormalised to the
    layer's energy (energy blurred out of the window comes back in proportion)."""

    def blur(images):
        blurred = ndimage.gaussian_filter(
            images, sigma=(0, sigma_cells, sigma_cells), mode="constant"
        )
        before = images.sum(axis=(1, 2), keepdims=True)
        after = blurred.sum(axis=(1, 2), keepdims=True)
        return blurred * np.divide(before, after, out=np.zeros_like(before), where=after > 0)

    return _per_layer(showers, detector, CartesianBinning, "smearing", blur)


def share_with_neighbours(
    showers: np.ndarray, detector: Detector, fraction: float = 0.2
) -> np.ndarray:
    """Each cartesian cell keeps 1 − ``fraction`` of its energy and gives ``fraction`` / 4 to
    each of its four neighbours; what would leave the readout stays in the cell."""

    def share(images):
        given = images * (fraction / 4)
        shared = images - 4 * given
        for axis in (1, 2):
            for shift in (-1, 1):
                moved = np.roll(given, shift, axis=axis)
                edge = [slice(None)] * 3
                edge[axis] = 0 if shift == 1 else -1
                # Energy rolled round the edge goes back to the cell it came from.
                back = [slice(None)] * 3
                back[axis] = -1 if shift == 1 else 0
                shared[tuple(back)] += moved[tuple(edge)]
                moved[tuple(edge)] = 0
                shared += moved
        return shared

    return _per_layer(showers, detector, CartesianBinning, "sharing with neighbours", share)


def shift_outward(showers: np.ndarray, detector: Detector, fraction: float = 0.2) -> np.ndarray:
    """Each polar cell gives ``fraction`` of its energy to the next ring outward at the same
    angle; the outermost ring keeps its own."""

    def shift(rings):
        moved = rings[:, :, :-1] * fraction
        rings[:, :, :-1] -= moved
        rings[:, :, 1:] += moved
        return rings

    return _per_layer(showers, detector, PolarBinning, "shifting outward", shift)


DISTORTIONS = {
    "energy x1.05": lambda showers, detector: scale_energy(showers, 1.05),
    "widened by 1 cell": lambda showers, detector: smear_cells(showers, detector, 1.0),
    "20% to neighbours": lambda showers, detector: share_with_neighbours(showers, detector, 0.2),
    "20% outward": lambda showers, detector: shift_outward(showers, detector, 0.2),
}
"""The distortions of the yardstick's calibration, by name."""

LABELS = {
    "energy x1.05": "every cell ×1.05",
    "widened by 1 cell": "every layer widened by one cell",
    "20% to neighbours": "20 % of each cell to its neighbours",
    "20% outward": "20 % of each cell to the next ring out",
}
"""Each distortion in words, as the report's verdict names it."""


def write_distorted(src: str | Path, out: str | Path, name: str, overwrite: bool = False) -> Path:
    """A copy of a shower file with distortion ``name`` applied to its showers."""
    if name not in DISTORTIONS:
        raise CaloforgeError(f"unknown distortion {name!r}; choose from {', '.join(DISTORTIONS)}")
    f = ShowerFile(src)
    detector = f.detector
    producer = {"kind": "distorted", "distortion": name, "from": str(f.path)}
    attrs = f.header | {"producer": json.dumps(producer)}
    with ShowerWriter.create(
        out, n_cells=f.n_cells, condition_names=f.condition_names, attrs=attrs, overwrite=overwrite
    ) as writer:
        for batch in f.iter_batches(5000):
            showers = DISTORTIONS[name](batch.showers, detector).astype(np.float32)
            writer.append(ShowerBatch(showers, batch.incident_energies, batch.conditions))
    return Path(out)
