"""The report's order of the high-level features: by kind, each family in layer order.

A family is one feature over every readout layer (``width_x_0``, ``width_x_1``, ...); the
groups are the page's sections of histograms (energies, centres, widths, sparsity, rings, the
seed-specific rest), each cut into figures of at most ``MAX_PANELS`` panels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from caloforge.evaluation.observables import RINGS

__all__ = [
    "MAX_COLUMNS",
    "MAX_PANELS",
    "Group",
    "family_names",
    "feature_groups",
    "is_energy",
    "ordered_metric_features",
    "split_name",
    "unit",
]

MAX_PANELS = 60
"""Histogram panels per PNG: six columns of ten rows, about 1310 × 2400 pixels."""
MAX_COLUMNS = 6

_LAYER_FEATURE = re.compile(r"^(?P<family>.+)_(?P<layer>\d+)$")

_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("energies", "Energies", ("E_tot", "E_tot/E_inc", "E_layer")),
    ("centres", "Centres of energy", ("centre_x", "centre_y")),
    ("widths", "Widths and spreads", ("width_x", "width_y", "spread")),
    ("sparsity", "Sparsity and occupancy", ("n_nonzero", "sparsity")),
    ("rings", "Energy in rings around the centroid", RINGS),
)
_OTHER_GROUP = ("seed", "Seed-specific observables")

_UNITS = {
    "E_tot": "MeV",
    "E_layer": "MeV",
    "centre_x": "mm",
    "centre_y": "mm",
    "width_x": "mm",
    "width_y": "mm",
    "spread": "mm",
    "width_long": "mm",
    "width_trans": "mm",
    "cluster_x": "mm",
    "cluster_y": "mm",
    "delta_x": "mm",
    "delta_y": "mm",
    "n_nonzero": "cells",
    "sparsity": "fraction of cells",
    **dict.fromkeys(RINGS, "fraction of the energy"),
}


@dataclass(frozen=True)
class Group:
    """A section of feature histograms and the rows of panels that show it."""

    key: str
    title: str
    features: list[str]
    rows: list[list[str]]


def split_name(name: str) -> tuple[str, int | None]:
    """(family, layer) of a per-layer feature such as ``width_x_12``; (name, None) otherwise.

    Example:
        >>> split_name("width_x_12"), split_name("E_tot")
        (('width_x', 12), ('E_tot', None))
    """
    match = _LAYER_FEATURE.match(name)
    if match is None:
        return name, None
    return match["family"], int(match["layer"])


def is_energy(name: str) -> bool:
    """Whether the feature is an energy in MeV (not a ratio), shown on log bins."""
    family, _ = split_name(name)
    return family.startswith("E_") and "/" not in family


def unit(name: str) -> str:
    """The unit of a feature's axis; empty for pure numbers."""
    family, _ = split_name(name)
    if family.startswith("sparsity"):
        return "fraction of cells"
    return _UNITS.get(family, "")


def feature_groups(names: Sequence[str]) -> list[Group]:
    """Features by kind, each family (a feature over every layer) in layer order.

    Families of one feature (E_tot, or any feature of a one-layer detector) share rows; a
    family over several layers starts a row of its own, so that one column of a grid is one
    layer. A group of more than ``MAX_PANELS`` panels is split between families into several
    figures.
    """
    families: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        family, layer = split_name(name)
        families.setdefault(family, []).append((-1 if layer is None else layer, name))
    known = {family for _, _, members in _GROUPS for family in members}
    groups = []
    for key, title, members in (*_GROUPS, (*_OTHER_GROUP, ())):
        chosen = members or tuple(f for f in families if f not in known)
        ordered = [[n for _, n in sorted(families[f])] for f in chosen if f in families]
        # Each figure is a list of rows; a row is (names, whether single features may join it).
        figures: list[list[tuple[list[str], bool]]] = [[]]
        for family in ordered:
            rows = figures[-1]
            if rows and sum(len(r) for r, _ in rows) + len(family) > MAX_PANELS:
                rows = []
                figures.append(rows)
            if len(family) == 1 and rows and rows[-1][1] and len(rows[-1][0]) < MAX_COLUMNS:
                rows[-1][0].append(family[0])
            elif len(family) == 1:
                rows.append(([family[0]], True))
            else:
                rows += [
                    (family[i : i + MAX_COLUMNS], False) for i in range(0, len(family), MAX_COLUMNS)
                ]
        figures = [rows for rows in figures if rows]
        for i, rows in enumerate(figures):
            grid = [r for r, _ in rows]
            features = [n for r in grid for n in r]
            if len(figures) == 1:
                groups.append(Group(key, title, features, grid))
            else:
                part = ", ".join(family_names(features))
                groups.append(Group(f"{key}_{i + 1}", f"{title}: {part}", features, grid))
    return groups


def family_names(features: Sequence[str]) -> list[str]:
    """Short description of a figure's features: each family once, with its layer range.

    Example:
        >>> family_names(["E_tot", "width_x_0", "width_x_1", "width_x_2"])
        ['E_tot', 'width_x_0…2']
    """
    families: dict[str, list[int]] = {}
    for name in features:
        family, layer = split_name(name)
        families.setdefault(family, []).append(-1 if layer is None else layer)
    out = []
    for family, layers in families.items():
        if layers == [-1]:
            out.append(family)
        else:
            out.append(
                f"{family}_{min(layers)}…{max(layers)}"
                if len(layers) > 1
                else f"{family}_{layers[0]}"
            )
    return out


def ordered_metric_features(names: Sequence[str]) -> list[str]:
    """Metric features by group, family and layer, so that each family is one block."""
    ordered = [n for group in feature_groups(names) for n in group.features]
    return [n for n in ordered if n in set(names)]
