"""Figures of the NYU validation (``metrics["nyu"]``, :mod:`caloforge.evaluation.nyu`).

The per-particle panels draw from the metrics alone; the unrolled showers (the seed's flattened
view) from the samples. They draw with the report's plotting conventions
(:mod:`caloforge.evaluation.report.plotting`) and know nothing of the page: the section that
shows them is ``templates/nyu.html``, filled by :class:`~caloforge.evaluation.nyu.NyuValidation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm

from caloforge.data.transforms import SpiralUnroll
from caloforge.evaluation.observables import transverse_image
from caloforge.evaluation.report.plotting import (
    GENERATED_COLOUR,
    REFERENCE_COLOUR,
    Labels,
    figure,
    figure_legend,
    save,
    steps,
)

__all__ = ["particle_figure", "unrolled_figure"]

_SLICE_PANELS = (
    ("profile", "mean energy per slice [MeV]", True),
    ("spread", "mean spread σ per slice [mm]", False),
    ("fluctuation", "std / mean of E_slice / E_in", False),
)
UNROLL_CROP = 20
"""The seed's 20 × 20 crop, unrolled to 400 × 25."""


def particle_figure(particle: dict[str, Any], labels: Labels, path: Path) -> str:
    """Per-slice profiles, pixel histogram, E_out/E_in and E_out against E_in of one particle."""
    fig = figure(12.0, 7.2)
    grid = fig.add_gridspec(2, 3, wspace=0.28, hspace=0.42, left=0.07, right=0.98, top=0.9)
    for c, (key, ylabel, log) in enumerate(_SLICE_PANELS):
        ax = fig.add_subplot(grid[0, c])
        ref = np.asarray(particle[key]["ref"], dtype=float)
        steps(ax, np.arange(len(ref) + 1) - 0.5, ref, particle[key]["gen"])
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("slice (layer)")
        ax.set_ylabel(ylabel)
        diff = particle[key]["max_relative_difference"]
        ax.set_title(f"max |Δ|/ref {diff:.0%}" if np.isfinite(diff) else "", fontsize=9)
    pixels = particle["pixels"]
    ax = fig.add_subplot(grid[1, 0])
    if "edges" in pixels:
        steps(ax, pixels["edges"], pixels["ref"], pixels["gen"])
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("pixel energy [MeV]")
    ax.set_ylabel("fraction of non-zero pixels")
    response = particle["response"]
    ax = fig.add_subplot(grid[1, 1])
    steps(ax, response["edges"], response["hist_ref"], response["hist_gen"])
    ax.set_xlabel("E_out / E_in")
    ax.set_ylabel("fraction of showers")
    ax.set_title(
        f"σ/μ {response['resolution_ref']:.3f} / {response['resolution_gen']:.3f}", fontsize=9
    )
    ax = fig.add_subplot(grid[1, 2])
    for side, colour in (("ref", REFERENCE_COLOUR), ("gen", GENERATED_COLOUR)):
        e_in, e_out = (np.asarray(v) for v in response[f"scatter_{side}"])
        ax.plot(e_in / 1e3, e_out / 1e3, ".", color=colour, markersize=1.5, alpha=0.5)
    ax.set_xlabel("E_in [GeV]")
    ax.set_ylabel("E_out [GeV]")
    figure_legend(fig, labels)
    return save(fig, path)


def unrolled_figure(evaluation, particle_codes: list[int], labels: Labels, path: Path) -> str:
    """The seed's flattened view: each slice's 20 × 20 crop unrolled along the spiral, 400 × 25
    (the core on the left), the mean over events and one event, reference against generated,
    per particle. The single events have the same particle and the nearest energy."""
    layers = len(evaluation.detector.readout_layers)
    ny, nx = transverse_image(evaluation.detector).shape
    unroll = SpiralUnroll([layers, ny, nx], min(UNROLL_CROP, ny, nx))
    names = evaluation.metrics["conditions"]["names"]
    column = names.index("particle")
    ref, gen = evaluation.reference, evaluation.generated
    panels = []
    for code in particle_codes:
        r_mask = ref.conditions[:, column] == code
        g_rows = np.flatnonzero(gen.conditions[:, column] == code)
        if not r_mask.any() or not len(g_rows):
            continue
        g = g_rows[0]
        r_rows = np.flatnonzero(r_mask)
        r = r_rows[np.argmin(np.abs(ref.energy[r_rows] - gen.energy[g]))]
        panels += [
            (f"PDG {code}: reference mean", unroll.forward(ref.showers[r_mask]).mean(axis=0)),
            (f"PDG {code}: generated mean", unroll.forward(gen.showers[g_rows]).mean(axis=0)),
            (
                f"one reference event, {ref.energy[r] / 1e3:.0f} GeV",
                unroll.forward(ref.showers[[r]])[0],
            ),
            (
                f"one generated event, {gen.energy[g] / 1e3:.0f} GeV",
                unroll.forward(gen.showers[[g]])[0],
            ),
        ]
    fig = figure(12.0, 0.5 + 1.3 * len(panels))
    positive = np.concatenate([p[p > 0] for _, p in panels] or [np.ones(1)])
    norm = LogNorm(vmin=max(float(np.quantile(positive, 0.01)), 1e-6), vmax=float(positive.max()))
    grid = fig.add_gridspec(len(panels), 1, hspace=0.6, left=0.05, right=0.92, top=0.97)
    for i, (title, image) in enumerate(panels):
        ax = fig.add_subplot(grid[i, 0])
        shown = np.ma.masked_less_equal(image.reshape(unroll.image_shape), 0)
        mappable = ax.imshow(shown, norm=norm, aspect="auto", cmap="viridis", interpolation="none")
        ax.set_title(title, fontsize=8.5, loc="left")
        ax.set_ylabel("slice", fontsize=8)
        ax.tick_params(labelsize=7)
    ax.set_xlabel("spiral position (centre first)")
    fig.colorbar(mappable, ax=fig.axes, fraction=0.02, pad=0.01, label="energy [MeV]")
    return save(fig, path)
