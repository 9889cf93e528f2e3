"""Where a one-layer shower's energy lies: rings around its centroid, and its far cells.

For each file: the mean fraction of the energy in rings 0-1, 1-3, 3-6, 6-8 and beyond 8 cells
of the energy-weighted centroid, the cells above the detector's threshold at 6 cells or more
per shower, their median energy, and how many of them hold less than twice the threshold.
The energy-weighted width is dominated by the far cells, so a model with the right number of
them but too little energy in each comes out narrow.

Usage: python benchmarks/lhcb_rings.py SHOWERS.h5 [MORE.h5 ...]   (a Markdown table)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from caloforge.data.showerfile import ShowerFile
from caloforge.evaluation.observables import apply_threshold, transverse_image
from caloforge.models.common import centroids

RINGS = ((0, 1), (1, 3), (3, 6), (6, 8), (8, np.inf))
FAR = 6


def rings(path: Path) -> list[str]:
    file = ShowerFile(path)
    detector = file.detector
    readout = transverse_image(detector)
    if readout is None or len(detector.readout_layers) != 1:
        raise SystemExit(f"{path}: {detector.name} has no one-layer cartesian readout")
    ny, nx = readout.shape
    cells = apply_threshold(file.read().showers, detector.threshold)
    column, row = centroids(cells, detector).T
    showers = cells.reshape(-1, ny, nx)
    total = showers.sum((1, 2))
    rows, cols = np.mgrid[:ny, :nx]
    r = np.hypot(cols[None] - column[:, None, None], rows[None] - row[:, None, None])
    fractions = [
        100 * ((showers * ((r >= a) & (r < b))).sum((1, 2)) / total).mean() for a, b in RINGS
    ]
    far = showers[(showers > 0) & (r >= FAR)]
    n = len(showers)
    faint = (far < 2 * detector.threshold).sum() / n
    return [f"{f:.2f}" for f in fractions] + [
        f"{len(far) / n:.1f}",
        f"{np.median(far):.2f}",
        f"{faint:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    head = ["file"] + [f"E % r {a}-{b}" for a, b in RINGS]
    head += [f"cells r ≥ {FAR}", "their median MeV", "of them < 2 x threshold"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for path in args.files:
        print(f"| {path.name} | " + " | ".join(rings(path)) + " |")


if __name__ == "__main__":
    main()
