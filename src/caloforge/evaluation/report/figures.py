"""The report's figures, each drawn from an Evaluation into one PNG.

Average shower images per layer (reference, generated and their ratio; cartesian layers as
images in mm, polar ones on polar axes), the histograms of the features and of E_tot/E_inc per
condition bin, the means per layer, the cell energy spectrum, the response and resolution
against E_inc, and the correlation matrices of the metric features. Each function returns the
file's name (as the page refers to it) with whatever its caption needs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from caloforge.detectors import CartesianBinning, Detector
from caloforge.evaluation.conditions import MAX_ENERGY_POINTS, condition_bins
from caloforge.evaluation.evaluate import MIN_BIN_EVENTS, Evaluation, Sample
from caloforge.evaluation.observables import cell_energies, correlation_matrix
from caloforge.evaluation.report.features import MAX_COLUMNS, is_energy, split_name, unit
from caloforge.evaluation.report.formatting import finite, sig
from caloforge.evaluation.report.histograms import (
    RATIO_RANGE,
    Panel,
    draw_fractions,
    fractions,
    histogram_panel,
    ratio_panel,
)
from caloforge.evaluation.report.plotting import (
    GENERATED_COLOUR,
    REFERENCE_COLOUR,
    Labels,
    colourbar,
    figure,
    figure_legend,
    generated_points,
    log_scale,
    save,
)

__all__ = [
    "MAX_IMAGE_LAYERS",
    "bins_figure",
    "correlation_figure",
    "features_figure",
    "image_layers",
    "images_figure",
    "layer_profile_figure",
    "response_figure",
    "spectrum_figure",
]

MAX_IMAGE_LAYERS = 6
PANEL_SIZE = (2.1, 2.35)
"""Inches of one histogram panel with its ratio panel, title included."""


def _ratio_layout(width: float, height: float, columns: int, **spacing: Any) -> tuple[Figure, Any]:
    """A figure of ``columns`` panels side by side, each above its ratio panel, and its grid
    (row 0 the panels, row 1 the ratios); ``spacing`` as of ``Figure.add_gridspec``."""
    fig = figure(width, height)
    return fig, fig.add_gridspec(2, columns, height_ratios=(3, 1.1), hspace=0.06, **spacing)


def _histogram_grid(rows: list[list[Panel]], labels: Labels, path: Path) -> str:
    """A grid of histograms with ratio panels, one row of the grid per row of panels."""
    ncols, nrows = max(map(len, rows)), len(rows)
    width, height = PANEL_SIZE[0] * ncols + 0.5, PANEL_SIZE[1] * nrows + 0.45
    fig = figure(width, height)
    grid = fig.add_gridspec(
        nrows,
        ncols,
        left=0.6 / width,
        right=1 - 0.12 / width,
        top=1 - 0.75 / height,
        bottom=0.42 / height,
        wspace=0.32,
        hspace=0.5,
    )
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            inner = grid[i, j].subgridspec(2, 1, height_ratios=(3, 1.15), hspace=0.06)
            ax = fig.add_subplot(inner[0])
            rax = fig.add_subplot(inner[1], sharex=ax)
            histogram_panel(ax, rax, panel.ref, panel.gen, log=panel.log)
            # Placed by hand: set_title would measure every panel's tick labels to avoid them.
            ax.text(
                0.5,
                1.04,
                panel.title,
                transform=ax.transAxes,
                fontsize=8.5,
                ha="center",
                va="bottom",
                linespacing=1.25,
            )
            rax.set_xlabel(panel.unit, fontsize=7.5, labelpad=1)
            if j == 0:
                ax.set_ylabel("fraction", fontsize=7.5)
                rax.set_ylabel("gen/ref", fontsize=7.5)
    figure_legend(fig, labels)
    return save(fig, path)


def features_figure(
    evaluation: Evaluation, rows: list[list[str]], labels: Labels, path: Path
) -> str:
    """Histograms of features, each titled with its separation power and W1."""
    powers = evaluation.metrics.get("separation_power", {})
    w1 = evaluation.metrics.get("w1", {})
    ref, gen = evaluation.reference.features, evaluation.generated.features
    panels = [
        [
            Panel(
                f"{name}\nSP {sig(powers.get(name))}   W1 {sig(w1.get(name))}",
                ref[name],
                gen[name],
                is_energy(name),
                unit(name),
            )
            for name in row
        ]
        for row in rows
    ]
    return _histogram_grid(panels, labels, path)


def bins_figure(evaluation: Evaluation, labels: Labels, path: Path) -> str | None:
    """E_tot / E_inc in each condition bin (ATLAS's energy points, angle ranges, particles),
    titled with the bin's separation power from metrics.json; None when no bin is filled."""
    ref, gen = evaluation.reference, evaluation.generated
    names = tuple((evaluation.metrics.get("conditions") or {}).get("names") or ())
    rows_by_label = {
        (row.get("kind"), row.get("label")): row for row in evaluation.metrics.get("bins") or []
    }
    kinds: dict[str, list[Panel]] = {}
    for b in condition_bins(ref.energy, ref.conditions, gen.energy, gen.conditions, names):
        if min(int(b.ref.sum()), int(b.gen.sum())) < MIN_BIN_EVENTS:
            continue
        sp = rows_by_label.get((b.kind, b.label), {}).get("separation_power_E_tot/E_inc")
        kinds.setdefault(b.kind, []).append(
            Panel(
                f"{b.label}\nSP {sig(sp)}",
                ref.features["E_tot/E_inc"][b.ref],
                gen.features["E_tot/E_inc"][b.gen],
                False,
                "E_tot / E_inc",
            )
        )
    rows = [
        panels[i : i + MAX_COLUMNS]
        for panels in kinds.values()
        for i in range(0, len(panels), MAX_COLUMNS)
    ]
    return _histogram_grid(rows, labels, path) if rows else None


def layer_profile_figure(evaluation: Evaluation, labels: Labels, path: Path) -> str:
    """Means per layer of energy, spread and sparsity, and each family's separation power."""
    n_layers = len(evaluation.detector.readout_layers)
    layers = np.arange(n_layers)
    ref, gen = evaluation.reference.features, evaluation.generated.features
    width, height = 13.0, 4.0
    fig = figure(width, height)
    grid = fig.add_gridspec(
        1, 4, left=0.065, right=0.9, top=1 - 0.75 / height, bottom=0.52 / height, wspace=0.3
    )
    for k, (family, title, log) in enumerate(
        (
            ("E_layer", "mean energy [MeV]", True),
            ("spread", "mean spread [mm]", False),
            ("sparsity", "mean sparsity", False),
        )
    ):
        names = [f"{family}_{i}" for i in layers]
        inner = grid[0, k].subgridspec(2, 1, height_ratios=(3, 1.15), hspace=0.06)
        ax = fig.add_subplot(inner[0])
        rax = fig.add_subplot(inner[1], sharex=ax)
        means = [np.array([f[n].mean() for n in names]) for f in (ref, gen)]
        errors = [np.array([f[n].std() / math.sqrt(len(f[n])) for n in names]) for f in (ref, gen)]
        edges = np.arange(n_layers + 1) - 0.5
        ax.stairs(means[0], edges, fill=True, color=REFERENCE_COLOUR, alpha=0.35)
        ax.stairs(means[0], edges, color=REFERENCE_COLOUR, linewidth=1.0)
        generated_points(ax, layers, means[1], errors[1], markersize=2.5, elinewidth=0.8)
        if log and (means[0] > 0).any():
            log_scale([ax], "y", small=False)
        ax.set_title(title, fontsize=9)
        ax.tick_params(which="both", labelbottom=False)
        ratio_panel(rax, edges, (means[0], errors[0]), (means[1], errors[1]))
        rax.set_xlabel("readout layer", fontsize=8)
        rax.set_ylabel("gen/ref", fontsize=7.5)
        rax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    ax = fig.add_subplot(grid[0, 3])
    powers = evaluation.metrics.get("separation_power", {})
    palette = ("#1b1b1b", "#964a8b", "#2a9d8f", "#9c9ca1", "#f89c20", "#7a21dd", "#6b8e23")
    families = ("E_layer", "centre_x", "centre_y", "width_x", "width_y", "spread", "sparsity")
    table = np.array(
        [[powers.get(f"{family}_{i}", np.nan) for i in layers] for family in families], dtype=float
    )
    positive = table[np.isfinite(table) & (table > 0)]
    # Zeros (empty layers in both samples) sit at the bottom edge rather than off the log axis.
    floor = float(positive.min()) / 2 if positive.size else 1e-4
    for colour, family, values in zip(palette, families, table):
        ax.plot(
            layers,
            np.clip(values, floor, None),
            marker="o",
            markersize=2.5,
            linewidth=1.0,
            color=colour,
            label=family,
        )
    ax.set_yscale("log")
    ax.set_title("separation power per layer", fontsize=9)
    ax.set_xlabel("readout layer", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    # Outside the axes: the lines fill it from edge to edge.
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), handlelength=1.4)
    figure_legend(fig, labels)
    return save(fig, path)


def image_layers(mean_energy: np.ndarray) -> list[int]:
    """All layers when few; else the maximum and where the cumulative energy reaches 5, 25, 50,
    75 and 95 %, which spans the shower from its start to its tail."""
    n = len(mean_energy)
    if n <= MAX_IMAGE_LAYERS:
        return list(range(n))
    total = float(mean_energy.sum())
    if total <= 0:
        return sorted(set(np.linspace(0, n - 1, MAX_IMAGE_LAYERS).round().astype(int).tolist()))
    cumulative = np.cumsum(mean_energy) / total
    picks = {int(np.searchsorted(cumulative, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
    picks.add(int(np.argmax(mean_energy)))
    return sorted(min(p, n - 1) for p in picks)


def _mean_images(sample: Sample, detector: Detector) -> list[np.ndarray]:
    mean = sample.showers.mean(axis=0, dtype=np.float64)[None]
    return [layer[0] for layer in detector.split_layers(mean)]


def _draw_layer(fig: Figure, spec: Any, binning: Any, image: np.ndarray, **style: Any) -> Any:
    """One layer's image on its own geometry: mm on cartesian axes, or a polar mesh."""
    if isinstance(binning, CartesianBinning):
        ax = fig.add_subplot(spec)
        x_edges, y_edges = binning.edges()
        mesh = ax.pcolormesh(x_edges, y_edges, image, **style)
        ax.set_aspect("equal")
        ax.set_xlabel("x [mm]", fontsize=8, labelpad=1)
        ax.set_ylabel("y [mm]", fontsize=8, labelpad=1)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.tick_params(which="both", top=False, right=False)
        return ax, mesh
    ax = fig.add_subplot(spec, projection="polar")
    r_edges, alpha_edges = binning.edges()
    mesh = ax.pcolormesh(alpha_edges, r_edges, image.T, **style)
    radius = float(r_edges[-1])
    ax.set_ylim(0, radius)
    ax.set_yticks([radius / 2, radius], ["", f"{radius:.3g} mm"])
    ax.set_rlabel_position(67.5)
    ax.set_xticks(np.radians([0, 90, 180, 270]), ["0°", "90°", "180°", "270°"])
    ax.tick_params(labelsize=6.5, pad=1)
    ax.grid(linewidth=0.4, alpha=0.5, color="#ffffff")
    return ax, mesh


def images_figure(evaluation: Evaluation, labels: Labels, path: Path) -> tuple[str, list[int]]:
    """Average showers of the chosen layers: reference, generated and their ratio per row."""
    detector = evaluation.detector
    ref_images = _mean_images(evaluation.reference, detector)
    gen_images = _mean_images(evaluation.generated, detector)
    chosen = image_layers(np.array([image.sum() for image in ref_images]))
    depths = detector.layer_depths()
    total = max(float(sum(image.sum() for image in ref_images)), 1e-300)
    row_height, width, left = 3.0, 12.6, 1.5
    height = row_height * len(chosen) + 0.55
    fig = figure(width, height)
    grid = fig.add_gridspec(
        len(chosen),
        3,
        left=left / width,
        right=1 - 0.85 / width,
        top=1 - 0.45 / height,
        bottom=0.3 / height,
        wspace=0.42,
        hspace=0.3,
    )
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e9ed")
    ratio_cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#e6e9ed")
    for row, index in enumerate(chosen):
        readout = detector.readout_layers[index].readout
        ref_image, gen_image = ref_images[index], gen_images[index]
        top = max(float(ref_image.max()), float(gen_image.max()))
        positive = np.concatenate([ref_image[ref_image > 0], gen_image[gen_image > 0]])
        bottom = max(float(positive.min()), top * 1e-5) if positive.size else top * 1e-5
        norm = LogNorm(vmin=bottom, vmax=top) if top > 0 else Normalize(0, 1)
        for col, image in enumerate((ref_image, gen_image)):
            ax, mesh = _draw_layer(
                fig,
                grid[row, col],
                readout,
                np.ma.masked_less_equal(image, 0),
                cmap=cmap,
                norm=norm,
            )
        colourbar(fig, mesh, ax, "MeV")
        ratio = np.ma.masked_where(
            (ref_image <= 0) | (gen_image <= 0), gen_image / np.where(ref_image > 0, ref_image, 1)
        )
        ax, mesh = _draw_layer(
            fig,
            grid[row, 2],
            readout,
            ratio,
            cmap=ratio_cmap,
            norm=LogNorm(vmin=RATIO_RANGE[0], vmax=1 / RATIO_RANGE[0]),
        )
        bar = colourbar(fig, mesh, ax, "gen/ref")
        bar.set_ticks([0.5, 0.7, 1.0, 1.4, 2.0], labels=["0.5", "0.7", "1", "1.4", "2"])
        bar.ax.yaxis.set_minor_locator(NullLocator())
        name = detector.readout_layers[index].name
        # Layers expanded from a count are named layer0, layer1, ...: no news in that.
        name = "" if re.fullmatch(r"layer_?\d*", name) else f"{name}\n"
        box = grid[row, 0].get_position(fig)
        fig.text(
            0.25 / width,
            (box.y0 + box.y1) / 2,
            f"layer {index}\n{name}"
            f"{depths['t_front'][index]:.1f}–{depths['t_back'][index]:.1f} $X_0$\n"
            f"{ref_image.sum() / total:.1%} of E",
            fontsize=9,
            va="center",
            ha="left",
            linespacing=1.6,
        )
    for col, (title, colour) in enumerate(
        (
            (labels.reference, REFERENCE_COLOUR),
            (labels.generated, GENERATED_COLOUR),
            ("generated / reference", "#1d232b"),
        )
    ):
        box = grid[0, col].get_position(fig)
        fig.text(
            (box.x0 + box.x1) / 2,
            1 - 0.22 / height,
            title,
            fontsize=10,
            fontweight="bold",
            color=colour,
            ha="center",
            va="center",
        )
    return save(fig, path), chosen


def spectrum_figure(evaluation: Evaluation, labels: Labels, path: Path) -> str:
    """Every non-zero cell's energy, log-binned, with a ratio panel."""
    ref = cell_energies(evaluation.reference.showers).astype(np.float64)
    gen = cell_energies(evaluation.generated.showers).astype(np.float64)
    height = 5.0
    fig, grid = _ratio_layout(
        7.0, height, 1, left=0.12, right=0.97, top=1 - 0.5 / height, bottom=0.11
    )
    ax = fig.add_subplot(grid[0])
    rax = fig.add_subplot(grid[1], sharex=ax)
    both = np.concatenate([ref, gen])
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        edges = np.geomspace(lo, max(hi, 2 * lo) * 1.0001, 61)
        log_scale([ax, rax], small=False)
        h_ref, h_gen = fractions(ref, edges), fractions(gen, edges)
        draw_fractions(ax, edges, h_ref, h_gen, points={"markersize": 3})
        log_scale([ax], "y", small=False)
        ax.set_xlim(edges[0], edges[-1])
        ratio_panel(rax, edges, h_ref, h_gen)
        threshold = evaluation.metrics.get("threshold_mev")
        if finite(threshold) and threshold > 0:
            ax.axvline(threshold, color="#4a5563", linestyle="--", linewidth=0.9)
    ax.tick_params(which="both", labelbottom=False)
    ax.set_xlabel("")
    ax.set_ylabel("fraction of non-zero cells")
    rax.set_xlabel("cell energy [MeV]")
    rax.set_ylabel("gen/ref", fontsize=8)
    sp = evaluation.metrics.get("cell_spectrum_separation_power")
    ax.set_title(f"cell energy spectrum   SP {sig(sp)}", fontsize=10)
    figure_legend(fig, labels, 0.17)
    return save(fig, path)


def _response_points(
    ref_energy: np.ndarray, gen_energy: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """E_inc of each point and the events of each sample in it: the fixed energies when the
    reference has few, else ten bins (log-spaced over a wide range) from the reference."""
    points = np.unique(ref_energy)
    if len(points) < MAX_ENERGY_POINTS:
        masks = [
            [np.isclose(energy, e, rtol=1e-6) for e in points]
            for energy in (ref_energy, gen_energy)
        ]
        return points, masks[0], masks[1]
    lo, hi = float(ref_energy.min()), float(ref_energy.max())
    wide = lo > 0 and hi / lo > 3
    edges = np.geomspace(lo, hi, 11) if wide else np.linspace(lo, hi, 11)
    centres = np.sqrt(edges[1:] * edges[:-1]) if wide else (edges[1:] + edges[:-1]) / 2
    masks = []
    for energy in (ref_energy, gen_energy):
        index = np.clip(np.searchsorted(edges, energy, side="right") - 1, 0, len(centres) - 1)
        inside = (energy >= lo) & (energy <= hi)
        masks.append([inside & (index == i) for i in range(len(centres))])
    return centres, masks[0], masks[1]


def response_figure(evaluation: Evaluation, labels: Labels, path: Path) -> str:
    """Mean ± std of E_tot/E_inc and the resolution std/mean against E_inc, with ratios."""
    ref, gen = evaluation.reference, evaluation.generated
    centres, ref_masks, gen_masks = _response_points(ref.energy, gen.energy)
    stats = []
    for sample, masks in ((ref, ref_masks), (gen, gen_masks)):
        response = sample.features["E_tot/E_inc"]
        rows = []
        for mask in masks:
            values = response[mask]
            if len(values) >= MIN_BIN_EVENTS and values.mean() > 0:
                mean, std = float(values.mean()), float(values.std())
                rows.append(
                    (
                        mean,
                        std,
                        std / math.sqrt(len(values)),
                        std / mean,
                        std / mean / math.sqrt(2 * len(values)),
                    )
                )
            else:
                rows.append((np.nan,) * 5)
        stats.append(np.array(rows).reshape(-1, 5))
    x = centres / 1e3
    height = 5.0
    fig, grid = _ratio_layout(
        13.0, height, 2, wspace=0.22, left=0.07, right=0.985, top=1 - 0.55 / height, bottom=0.11
    )
    # With too few events per bin every point is missing, and an empty axis cannot be log.
    has_points = any(np.isfinite(side[:, 0]).any() for side in stats)
    log = has_points and x.min() > 0 and x.max() / x.min() > 3
    for col, (title, value, band, error) in enumerate(
        (("response: mean E_tot / E_inc ± std", 0, 1, 2), ("resolution std / mean", 3, 4, 4))
    ):
        ax = fig.add_subplot(grid[0, col])
        rax = fig.add_subplot(grid[1, col], sharex=ax)
        r, g = stats
        ax.fill_between(
            x,
            r[:, value] - r[:, band],
            r[:, value] + r[:, band],
            color=REFERENCE_COLOUR,
            alpha=0.3,
            linewidth=0,
        )
        ax.plot(x, r[:, value], color=REFERENCE_COLOUR, marker="s", markersize=3)
        generated_points(ax, x, g[:, value], g[:, band], markersize=3.5, elinewidth=0.9, capsize=2)
        ax.set_title(title, fontsize=10)
        ax.tick_params(which="both", labelbottom=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = g[:, value] / r[:, value]
            ratio_err = g[:, error] / r[:, value]
            ref_err = r[:, error] / r[:, value]
        finite = np.isfinite(ratio)
        rax.fill_between(
            x, 1 - ref_err, 1 + ref_err, color=REFERENCE_COLOUR, alpha=0.3, linewidth=0
        )
        rax.axhline(1.0, color=REFERENCE_COLOUR, linewidth=0.9)
        generated_points(
            rax, x[finite], ratio[finite], ratio_err[finite], markersize=3.5, elinewidth=0.9
        )
        spread = float(np.max(np.abs(ratio[finite] - 1))) if finite.any() else 0.0
        half = min(max(0.05, 1.3 * spread), 0.5)
        rax.set_ylim(1 - half, 1 + half)
        rax.set_ylabel("gen/ref", fontsize=8)
        rax.set_xlabel("E_inc [GeV]")
        if log:
            log_scale([ax, rax], small=False, plain=True)
    figure_legend(fig, labels, 0.18)
    return save(fig, path)


def correlation_figure(
    evaluation: Evaluation, names: list[str], labels: Labels, path: Path
) -> tuple[str, tuple[float, str, str], float]:
    """Correlation matrices of both samples and generated − reference."""
    ref = correlation_matrix({n: evaluation.reference.features[n] for n in names})
    gen = correlation_matrix({n: evaluation.generated.features[n] for n in names})
    diff = gen - ref
    n = len(names)
    i, j = np.unravel_index(int(np.argmax(np.abs(diff))), diff.shape)
    worst = (float(diff[i, j]), names[i], names[j])
    mean_abs = float(np.abs(diff[np.triu_indices(n, 1)]).mean()) if n > 1 else 0.0
    labelled = n <= 40
    width, height = 13.0, 4.9 if labelled else 4.3
    fig = figure(width, height)
    grid = fig.add_gridspec(
        1,
        3,
        wspace=0.28,
        left=1.3 / width if labelled else 1.0 / width,
        right=1 - 0.6 / width,
        top=1 - 0.4 / height,
        bottom=1.35 / height if labelled else 0.15 / height,
    )
    limit = max(float(np.abs(diff).max()), 0.05)
    ticks, tick_labels, boundaries = _correlation_ticks(names, labelled)
    for col, (matrix, title, colour, norm) in enumerate(
        (
            (ref, labels.reference, REFERENCE_COLOUR, Normalize(-1, 1)),
            (gen, labels.generated, GENERATED_COLOUR, Normalize(-1, 1)),
            (diff, "generated − reference", "#1d232b", Normalize(-limit, limit)),
        )
    ):
        ax = fig.add_subplot(grid[0, col])
        image = ax.imshow(matrix, cmap="RdBu_r", norm=norm, interpolation="nearest")
        ax.set_title(title, fontsize=10, color=colour, fontweight="bold")
        # Blocks are labelled on the y axis only: the matrices are symmetric.
        ax.set_xticks(ticks, tick_labels if labelled else [], rotation=90, fontsize=6.5)
        ax.set_yticks(ticks, tick_labels if col == 0 else [], fontsize=6.5 if labelled else 8)
        ax.tick_params(length=0 if not labelled else 2, top=False, right=False)
        for b in boundaries:
            ax.axhline(b, color="#1d232b", linewidth=0.4)
            ax.axvline(b, color="#1d232b", linewidth=0.4)
        if col in (1, 2):
            colourbar(fig, image, ax, "ρ" if col == 1 else "Δρ")
    return save(fig, path), worst, mean_abs


def _correlation_ticks(names: list[str], labelled: bool) -> tuple[list[float], list[str], list]:
    """Every name when few; else one label per block and the block boundaries, where a block
    is a family over layers or a run of single features (whose labels would overlap)."""
    if labelled:
        return list(range(len(names))), names, []
    families = [split_name(n)[0] for n in names]
    sizes = {f: families.count(f) for f in families}
    blocks: list[tuple[int, list[str]]] = []
    for i, family in enumerate(families):
        single = sizes[family] == 1
        if blocks and (family in blocks[-1][1] or (single and sizes[blocks[-1][1][-1]] == 1)):
            if family not in blocks[-1][1]:
                blocks[-1][1].append(family)
            continue
        blocks.append((i, [family]))
    starts = [start for start, _ in blocks]
    ends = [*starts[1:], len(names)]
    ticks = [(a + b - 1) / 2 for a, b in zip(starts, ends)]
    return ticks, [", ".join(f) for _, f in blocks], [a - 0.5 for a in starts[1:]]
