"""Conditions: do two files cover the same phase space, and in which bins to compare them.

A generated sample can only be compared with a reference of the same condition distribution:
a model asked for harder electrons than Geant4 was would look wrong for no fault of its own.
``compare_conditions`` tests that with a two-sample Kolmogorov–Smirnov test per condition.
``condition_bins`` splits both samples into the bins the seed studies compared in: fixed energy
points (the ATLAS study), energy ranges, angle ranges and particle types.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import stats

from caloforge.sources.spec import MOMENTUM

__all__ = ["ConditionBin", "ConditionCheck", "compare_conditions", "condition_bins"]

MAX_ENERGY_POINTS = 16
"""Fewer distinct incident energies than this are treated as fixed energy points."""


@dataclass(frozen=True)
class ConditionCheck:
    """Per-condition KS p-values and the Bonferroni-corrected smallest one."""

    p_values: dict[str, float]

    @property
    def p_min(self) -> float:
        if not self.p_values:
            return 1.0
        return min(1.0, min(self.p_values.values()) * len(self.p_values))

    @property
    def worst(self) -> str:
        return min(self.p_values, key=self.p_values.get)


def compare_conditions(ref: np.ndarray, gen: np.ndarray, names: tuple[str, ...]) -> ConditionCheck:
    """Two-sample KS test of every condition column (identical columns give p = 1)."""
    p_values = {}
    for i, name in enumerate(names):
        a, b = ref[:, i], gen[:, i]
        if np.array_equal(np.sort(a), np.sort(b)):
            p_values[name] = 1.0
        else:
            p_values[name] = float(stats.ks_2samp(a, b).pvalue)
    return ConditionCheck(p_values)


@dataclass(frozen=True)
class ConditionBin:
    """One bin: a label, its kind, and the events of each sample that fall in it."""

    kind: str
    label: str
    ref: np.ndarray
    gen: np.ndarray


def _polar_angle(conditions: np.ndarray, names: tuple[str, ...]) -> np.ndarray | None:
    if all(n in names for n in MOMENTUM):
        px, py, pz = (conditions[:, names.index(n)] for n in MOMENTUM)
        return np.degrees(np.arctan2(np.hypot(px, py), pz))
    return None


def condition_bins(
    ref_energy: np.ndarray,
    ref_conditions: np.ndarray,
    gen_energy: np.ndarray,
    gen_conditions: np.ndarray,
    names: tuple[str, ...],
    n_bins: int = 4,
) -> list[ConditionBin]:
    """Bins of incident energy, angle and particle type, with edges from the reference.

    Energies: each fixed point when the reference has fewer than ``MAX_ENERGY_POINTS`` distinct
    ones, else ``n_bins`` ranges of equal reference population. Angles (θ, η, or the polar angle
    to z from the momentum): ``n_bins`` ranges of equal population. Particles: each PDG code.
    """
    bins: list[ConditionBin] = []
    points = np.unique(ref_energy)
    if len(points) < MAX_ENERGY_POINTS:
        for e in points:
            bins.append(
                ConditionBin(
                    "energy point",
                    f"E = {e / 1e3:g} GeV",
                    np.isclose(ref_energy, e, rtol=1e-6),
                    np.isclose(gen_energy, e, rtol=1e-6),
                )
            )
    else:
        bins += _quantile_bins("energy", ref_energy / 1e3, gen_energy / 1e3, "GeV", n_bins)
    angles = []
    for name, unit in (("theta", "deg"), ("eta", "")):
        if name in names:
            i = names.index(name)
            angles.append((name, ref_conditions[:, i], gen_conditions[:, i], unit))
    ref_angle = _polar_angle(ref_conditions, names)
    if ref_angle is not None:
        angles.append(("angle to z", ref_angle, _polar_angle(gen_conditions, names), "deg"))
    for name, ref_values, gen_values, unit in angles:
        bins += _quantile_bins(name, ref_values, gen_values, unit, n_bins)
    if "particle" in names:
        i = names.index("particle")
        for code in np.unique(ref_conditions[:, i]):
            bins.append(
                ConditionBin(
                    "particle",
                    f"PDG {int(code)}",
                    ref_conditions[:, i] == code,
                    gen_conditions[:, i] == code,
                )
            )
    return bins


def _quantile_bins(
    name: str, ref: np.ndarray, gen: np.ndarray, unit: str, n_bins: int
) -> list[ConditionBin]:
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        return []
    bins = []
    for i, (lo, hi) in enumerate(pairwise(edges)):
        last = i == len(edges) - 2
        in_ref = (ref >= lo) & ((ref <= hi) if last else (ref < hi))
        in_gen = (gen >= lo) & ((gen <= hi) if last else (gen < hi))
        label = f"{name} {lo:.3g}-{hi:.3g}{' ' + unit if unit else ''}"
        bins.append(ConditionBin(f"{name} range", label, in_ref, in_gen))
    return bins
