"""What the boosted trees tell a model's showers from Geant4's by: their AUC on groups of features.

The evaluation's boosted trees (``boosted_auc``) see every cell; this script fits the same trees
on one group of derived features at a time, so that a high AUC on the cells can be traced to
where it comes from: each layer's energy and number of cells read out, the same for each ring
within each layer (the rings of ``partition(detector, layer_rings=True)``: 1, 3, 6 and 8 cells
from the layer's middle cell, around which the models centre a shower), the largest cells of
each layer in order, and the cells of a few layers. Then, per ring and for a few layers, the
model's mean energy and mean cells read out over Geant4's, and each shown layer's core: the
median share of its energy in its largest cell, how often that cell is the middle one, and how
far its centroid wanders (the spread of its energy-weighted column over the showers that read
it out). A group near 0.5 holds nothing the trees can use; one near the cells' AUC holds what
they use.

Works for any detector whose readout layers are cartesian (atlas-like, lcd-ecal, clic-ecal; a
one-layer readout has one layer). Both files hold the same conditions in the same order
(``caloforge generate MODEL --conditions-from HELDOUT.h5``).

Usage: python benchmarks/what_trees_see.py GENERATED.h5 HELDOUT.h5 [--n 2400] [--layers 0 3 12]
Never run as a test.
"""

from __future__ import annotations

import argparse

import numpy as np

from caloforge.data.showerfile import ShowerFile
from caloforge.evaluation.classifier import boosted_auc
from caloforge.models.common import partition

TOP = 20
"""The largest cells of each layer the ``largest cells`` group keeps, in order."""


def groups(showers: np.ndarray, layer: np.ndarray, part: np.ndarray) -> dict[str, np.ndarray]:
    """Each group's features of (N, cells) showers."""
    n = len(showers)
    read = (showers > 0).astype(np.float64)

    def summed(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.stack([x[:, labels == k].sum(1) for k in np.unique(labels)], axis=1)

    largest = []
    for k in np.unique(layer):
        cells = -np.sort(-showers[:, layer == k], axis=1)[:, :TOP]
        largest.append(np.pad(cells, ((0, 0), (0, TOP - cells.shape[1]))))
    return {
        "layer energies": summed(showers, layer),
        "layer cells read out": summed(read, layer),
        "ring energies per layer": summed(showers, part),
        "ring cells read out per layer": summed(read, part),
        f"{TOP} largest cells per layer": np.concatenate(largest, axis=1).reshape(n, -1),
    }


def core(showers: np.ndarray, cells: np.ndarray, shape: tuple[int, int]) -> tuple[float, ...]:
    """One layer's (median largest share, fraction whose largest cell is the middle one, σ of the
    centroid's column in cells), over the showers with energy in the layer."""
    ny, nx = shape
    x = showers[:, cells]
    x = x[x.sum(1) > 0]
    total = x.sum(1)
    middle = (ny - 1) // 2 * nx + (nx - 1) // 2
    column = (x.reshape(-1, ny, nx).sum(1) * np.arange(nx)).sum(1) / total
    return (
        float(np.median(x.max(1) / total)),
        float(np.mean(x.argmax(1) == middle)),
        float(np.std(column)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("generated")
    parser.add_argument("heldout")
    parser.add_argument("--n", type=int, default=2400, help="showers of each file")
    parser.add_argument("--layers", type=int, nargs="*", help="layers whose cells get a row")
    args = parser.parse_args()

    reference, generated = ShowerFile(args.heldout), ShowerFile(args.generated)
    detector = reference.detector
    n = min(args.n, len(reference), len(generated))
    ref = reference.read(0, n).showers.astype(np.float64)
    gen = generated.read(0, n).showers.astype(np.float64)
    layer = detector.cell_layer
    part = partition(detector, layer_rings=True)
    chosen = args.layers if args.layers is not None else sorted({0, len(np.unique(layer)) // 2})

    print(f"{detector.name}: {n} showers of each file, boosted trees' test AUC")
    print("| features | AUC |\n|---|---|")
    print(f"| all cells | {boosted_auc(ref, gen, seed=0):.3f} |")
    made, geant4 = groups(gen, layer, part), groups(ref, layer, part)
    for name, features in geant4.items():
        print(f"| {name} | {boosted_auc(features, made[name], seed=0):.3f} |")
    for k in chosen:
        auc = boosted_auc(ref[:, layer == k], gen[:, layer == k], seed=0)
        print(f"| cells of layer {k} | {auc:.3f} |")

    shown = sorted(set(chosen) | {int(layer.max())})
    print("\nmodel / Geant4, mean energy / mean cells read out, ring by ring from the middle")
    most = int(np.bincount(layer[np.unique(part, return_index=True)[1]]).max())
    print("| layer | " + " | ".join(f"ring {j}" for j in range(most)) + " |")
    print("|---" * (most + 1) + "|")
    ratio = {
        key: made[key].mean(0) / np.maximum(geant4[key].mean(0), 1e-30)
        for key in ("ring energies per layer", "ring cells read out per layer")
    }  # one column per part, parts numbered in order
    for k in shown:
        cells = [
            f"{ratio['ring energies per layer'][p]:.2f} / "
            f"{ratio['ring cells read out per layer'][p]:.2f}"
            for p in np.unique(part[layer == k])
        ]
        print(f"| {k} | " + " | ".join(cells) + " |")

    print("\neach layer's core, Geant4 / model")
    print(
        "| layer | largest cell's median share | largest cell the middle one | σ centroid, cells |"
    )
    print("|---|---|---|---|")
    for k in shown:
        shape = detector.readout_layers[k].readout.shape
        g, m = core(ref, layer == k, shape), core(gen, layer == k, shape)
        print(
            f"| {k} | {g[0]:.3f} / {m[0]:.3f} | {g[1]:.2f} / {m[1]:.2f} | {g[2]:.2f} / {m[2]:.2f} |"
        )


if __name__ == "__main__":
    main()
