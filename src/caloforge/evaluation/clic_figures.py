"""Figures of the 3DGAN validation (``metrics["clic"]``, :mod:`caloforge.evaluation.clic`).

They draw from the metrics alone, so a report can be redrawn from metrics.json, with the report's
plotting conventions (:mod:`caloforge.evaluation.report.plotting`) and nothing of the page: the
section that shows them is ``templates/clic.html``, filled by
:class:`~caloforge.evaluation.clic.ClicValidation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caloforge.evaluation.report.plotting import Labels, figure, figure_legend, save, steps

__all__ = ["correlation_figure", "profiles_figure", "spectrum_figure"]

_PROFILE_AXES = (
    ("longitudinal", "layer", "mean energy per layer [MeV]"),
    ("x", "cell column x (tilt plane)", "mean energy per column [MeV]"),
    ("y", "cell row y", "mean energy per row [MeV]"),
)


def spectrum_figure(clic: dict[str, Any], labels: Labels, path: Path) -> str | None:
    """The single-cell spectrum in linear and in log bins, side by side."""
    spectrum = clic["cell_spectrum"]
    if "log" not in spectrum:
        return None
    fig = figure(11.0, 4.0)
    grid = fig.add_gridspec(1, 2, wspace=0.22, left=0.07, right=0.98, top=0.86, bottom=0.14)
    for col, scale in enumerate(("linear", "log")):
        ax = fig.add_subplot(grid[0, col])
        h = spectrum[scale]
        steps(ax, h["edges"], h["ref"], h["gen"])
        ax.set_yscale("log")
        if scale == "log":
            ax.set_xscale("log")
        ax.set_xlabel("cell energy [MeV]")
        ax.set_ylabel("fraction of non-zero cells")
        ax.set_title(f"{scale} bins", fontsize=10)
    figure_legend(fig, labels)
    return save(fig, path)


def profiles_figure(clic: dict[str, Any], labels: Labels, path: Path) -> str:
    """Longitudinal and transverse mean profiles, one row per θ bin."""
    rows = clic["profiles"]["bins"]
    fig = figure(12.0, 0.6 + 2.9 * len(rows))
    grid = fig.add_gridspec(
        len(rows),
        3,
        wspace=0.25,
        hspace=0.45,
        left=0.07,
        right=0.98,
        top=1 - 0.7 / fig.get_figheight(),
        bottom=0.5 / fig.get_figheight(),
    )
    for r, row in enumerate(rows):
        lo, hi = row["theta"]
        for c, (kind, xlabel, ylabel) in enumerate(_PROFILE_AXES):
            ax = fig.add_subplot(grid[r, c])
            ref = np.asarray(row[f"{kind}_ref"])
            steps(ax, np.arange(len(ref) + 1) - 0.5, ref, row[f"{kind}_gen"])
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel(ylabel)
            diff = row.get(f"{kind}_max_relative_difference")
            worst = "" if diff is None else f"   max |Δ|/ref {diff:.0%}"
            ax.set_title(
                f"θ {lo:.0f}–{hi:.0f}°, {row['n_ref']}/{row['n_gen']} events{worst}", fontsize=8.5
            )
    figure_legend(fig, labels)
    return save(fig, path)


def correlation_figure(clic: dict[str, Any], path: Path) -> str:
    """Reference − generated correlation matrix of the shower features, values written in."""
    corr = clic["correlation"]
    names = corr["features"]
    diff = np.asarray(corr["reference"]) - np.asarray(corr["generated"])
    n = len(names)
    fig = figure(7.5, 6.6)
    ax = fig.add_axes((0.17, 0.17, 0.7, 0.78))
    limit = max(float(np.abs(diff).max()), 0.05)
    image = ax.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xticks(range(n), names, rotation=90, fontsize=7.5)
    ax.set_yticks(range(n), names, fontsize=7.5)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{diff[i, j]:.2f}".replace("0.", "."),
                ha="center",
                va="center",
                fontsize=5.5,
                color="#1d232b",
            )
    fig.colorbar(image, ax=ax, fraction=0.045, pad=0.02, label="ρ(reference) − ρ(generated)")
    return save(fig, path)
