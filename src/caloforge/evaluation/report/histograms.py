"""Histograms of two samples, each panel with a ratio panel below it.

The reference is filled, the generated sample drawn as points with their statistical errors,
both normalised to unit sum; below each, generated / reference with the reference's relative
error as a band and values beyond ``RATIO_RANGE`` as triangles at its edge. Bins span the
0.1-99.9 % quantiles of both samples, log-spaced for energies over more than a decade and
aligned to the lattice of discrete features. The figures that lay such panels out are in
:mod:`caloforge.evaluation.report.figures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from caloforge.evaluation.report.plotting import (
    GENERATED_COLOUR,
    REFERENCE_COLOUR,
    generated_points,
    log_scale,
)

__all__ = [
    "DISPLAY_BINS",
    "RATIO_RANGE",
    "Panel",
    "display_edges",
    "draw_fractions",
    "fractions",
    "histogram_panel",
    "ratio_panel",
]

DISPLAY_BINS = 40
RATIO_RANGE = (0.5, 1.5)


def fractions(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of ``values`` per bin with its Poisson error; values beyond the edges are put
    into the first and last bins, so that no event leaves the plot."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    n = max(len(values), 1)
    return counts / n, np.sqrt(counts) / n


def _lattice_step(values: np.ndarray) -> float | None:
    """The spacing of values that sit on a lattice (cell counts, sparsities), else None."""
    if len(values) < 2:
        return None
    step = float(np.min(np.diff(values)))
    span = float(values[-1] - values[0])
    if step <= 0 or span / step > 1e5:
        return None
    k = (values - values[0]) / step
    return step if np.allclose(k, np.round(k), atol=1e-3) else None


def display_edges(ref: np.ndarray, gen: np.ndarray, log: bool) -> np.ndarray:
    """Bins spanning the 0.1-99.9 % quantiles of both samples.

    Log-spaced for energies over more than a decade, aligned to the lattice of discrete
    features (so that a cell count never falls between bins unevenly), linear otherwise.
    """
    if log:
        positive = [v[v > 0] for v in (ref, gen) if np.any(v > 0)]
        if positive:
            lo = min(float(np.quantile(v, 0.001)) for v in positive)
            hi = max(float(np.quantile(v, 0.999)) for v in positive)
            # Within a decade a linear axis reads better (3DGAN's E_tot at 100-200 GeV).
            if hi >= 10 * lo:
                return np.geomspace(lo, hi, DISPLAY_BINS + 1)
    samples = [v for v in (ref, gen) if len(v)]
    lo = min(float(np.quantile(v, 0.001)) for v in samples)
    hi = max(float(np.quantile(v, 0.999)) for v in samples)
    unique = np.unique(np.concatenate(samples))
    unique = unique[(unique >= lo) & (unique <= hi)]
    step = _lattice_step(unique)
    if hi <= lo:
        half = abs(lo) * 0.05 if lo else 0.5
        return np.array([lo - half, lo + half])
    if step is not None:
        width = step * math.ceil((hi - lo) / step / DISPLAY_BINS + 1e-9)
        n = math.floor((hi - lo) / width + 1e-9) + 1
        return lo - step / 2 + width * np.arange(n + 1)
    return np.linspace(lo, hi, DISPLAY_BINS + 1)


def draw_fractions(
    ax: Axes,
    edges: np.ndarray,
    ref: tuple[np.ndarray, np.ndarray],
    gen: tuple[np.ndarray, np.ndarray],
    *,
    step: dict[str, Any] | None = None,
    points: dict[str, Any] | None = None,
) -> None:
    """Both samples' :func:`fractions` (values, errors): the reference filled and outlined (in
    the ``step`` style), the generated sample as points with their errors (``points``)."""
    mplhep.histplot(
        ref[0], edges, ax=ax, histtype="fill", color=REFERENCE_COLOUR, alpha=0.35, flow=None
    )
    mplhep.histplot(
        ref[0], edges, ax=ax, histtype="step", color=REFERENCE_COLOUR, flow=None, **(step or {})
    )
    mplhep.histplot(
        gen[0],
        edges,
        ax=ax,
        histtype="errorbar",
        yerr=gen[1],
        color=GENERATED_COLOUR,
        flow=None,
        **(points or {}),
    )


def ratio_panel(
    rax: Axes,
    edges: np.ndarray,
    ref: tuple[np.ndarray, np.ndarray],
    gen: tuple[np.ndarray, np.ndarray],
) -> None:
    """Generated / reference per bin: the reference's relative error as a band, the generated
    sample as points with its error, values beyond the range as triangles at its edge."""
    (h_ref, e_ref), (h_gen, e_gen) = ref, gen
    filled = h_ref > 0
    safe = np.where(filled, h_ref, 1.0)
    band = np.where(filled, e_ref / safe, 0.0)
    rax.stairs(
        1 + band,
        edges,
        baseline=1 - band,
        fill=True,
        color=REFERENCE_COLOUR,
        alpha=0.3,
        linewidth=0,
    )
    rax.axhline(1.0, color=REFERENCE_COLOUR, linewidth=0.9)
    centres = (
        np.sqrt(edges[1:] * edges[:-1])
        if rax.get_xscale() == "log"
        else ((edges[1:] + edges[:-1]) / 2)
    )
    ratio = np.where(filled, h_gen / safe, np.nan)
    error = np.where(filled, e_gen / safe, np.nan)
    lo, hi = RATIO_RANGE
    inside = filled & (ratio >= lo) & (ratio <= hi)
    generated_points(
        rax, centres[inside], ratio[inside], error[inside], markersize=2.2, elinewidth=0.8
    )
    margin = 0.04 * (hi - lo)
    for mask, y, marker in (
        (filled & (ratio > hi), hi - margin, "^"),
        (filled & (ratio < lo), lo + margin, "v"),
    ):
        if mask.any():
            rax.plot(
                centres[mask],
                np.full(mask.sum(), y),
                linestyle="",
                marker=marker,
                color=GENERATED_COLOUR,
                markersize=3,
            )
    rax.set_ylim(lo, hi)
    rax.set_yticks([lo, 1.0, hi])


def histogram_panel(ax: Axes, rax: Axes, ref: np.ndarray, gen: np.ndarray, *, log: bool) -> None:
    """Reference filled, generated as points, normalised to unit sum, with a ratio panel."""
    edges = display_edges(ref, gen, log)
    log = log and edges[0] > 0
    if log:
        log_scale([ax, rax], small=True)
        zeros = [float(np.mean(v <= 0)) if len(v) else 0.0 for v in (ref, gen)]
        ref, gen = ref[ref > 0], gen[gen > 0]
        if max(zeros) > 0:
            ax.text(
                0.03,
                0.95,
                f"at 0: {zeros[0]:.1%} / {zeros[1]:.1%}",
                transform=ax.transAxes,
                fontsize=6.5,
                va="top",
                color="#4a5563",
            )
    h_ref = fractions(ref, edges)
    h_gen = fractions(gen, edges)
    draw_fractions(
        ax,
        edges,
        h_ref,
        h_gen,
        step={"linewidth": 1.0},
        points={"markersize": 2.2, "elinewidth": 0.8},
    )
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.25 * max(float(h_ref[0].max()), float(h_gen[0].max()), 1e-12))
    ratio_panel(rax, edges, h_ref, h_gen)
    ax.tick_params(which="both", labelbottom=False)
    ax.set_xlabel("")
    ax.set_ylabel("")
    if not log:
        rax.xaxis.set_major_locator(MaxNLocator(4))
    # The lowest label would touch the ratio panel's top one.
    ax.yaxis.set_major_locator(MaxNLocator(4, prune="lower"))


@dataclass(frozen=True)
class Panel:
    """One histogram of a grid: its title, both samples' values and how to bin them."""

    title: str
    ref: np.ndarray
    gen: np.ndarray
    log: bool
    unit: str
