"""Where a one-layer shower's energy lies: rings around its centroid, and its far cells.

For each file: the mean fraction of the energy in rings 0-1, 1-3, 3-6, 6-8 and beyond 8 cells
of the energy-weighted centroid, the cells above the detector's threshold at 6 cells or more
per shower, their median energy, and how many of them hold less than twice the threshold.
The energy-weighted width is dominated by the far cells, so a model with the right number of
them but too little energy in each comes out narrow. Rings and far cells are those of the
evaluation (``ring_fractions`` and ``far_cell_energies`` in ``caloforge.evaluation.observables``).

Usage: python benchmarks/lhcb_rings.py SHOWERS.h5 [MORE.h5 ...]   (a Markdown table)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from caloforge.data.showerfile import ShowerFile
from caloforge.evaluation.observables import (
    FAR_CELLS,
    RINGS,
    apply_threshold,
    far_cell_energies,
    one_layer_image,
    ring_fractions,
)


def rings(path: Path) -> list[str]:
    file = ShowerFile(path)
    detector = file.detector
    if one_layer_image(detector) is None:
        raise SystemExit(f"{path}: {detector.name} has no one-layer cartesian readout")
    cells = apply_threshold(file.read().showers, detector.threshold)
    fractions = ring_fractions(cells, detector)
    far = far_cell_energies(cells, detector)
    n = len(cells)
    faint = (far < 2 * detector.threshold).sum() / n
    return [f"{100 * fractions[name].mean():.2f}" for name in RINGS] + [
        f"{len(far) / n:.1f}",
        f"{np.median(far):.2f}",
        f"{faint:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    head = ["file"] + [f"E % {name}" for name in RINGS]
    head += [f"cells r ≥ {FAR_CELLS:g}", "their median MeV", "of them < 2 x threshold"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for path in args.files:
        print(f"| {path.name} | " + " | ".join(rings(path)) + " |")


if __name__ == "__main__":
    main()
