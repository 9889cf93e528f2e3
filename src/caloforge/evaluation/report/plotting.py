"""The plotting conventions every figure of the evaluation shares.

One style (mplhep's CMS style scaled down for grids of small panels), one meaning per colour
(the reference blue and filled, the generated sample red points), one legend naming both
samples after their producers, and one way to save: a PNG without software or date stamp, so
that the same plot gives the same bytes. Figures are made without pyplot, owned by nobody and
freed with their last reference.

The report's figures (:mod:`caloforge.evaluation.report.figures`) and the study validations'
(``clic_figures``, ``nyu_figures``) draw with these helpers and nothing of the page.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter, NullLocator

from caloforge.files import atomic_write

__all__ = [
    "DPI",
    "GENERATED_COLOUR",
    "REFERENCE_COLOUR",
    "STYLE",
    "Labels",
    "colourbar",
    "figure",
    "figure_legend",
    "generated_points",
    "legend_handles",
    "log_scale",
    "sample_labels",
    "save",
    "steps",
    "style",
]

REFERENCE_COLOUR = "#5790fc"
GENERATED_COLOUR = "#e42536"

DPI = 100

STYLE: dict[str, Any] = {
    **mplhep.style.CMS,
    "font.size": 9,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 9,
    "axes.linewidth": 0.8,
    "xtick.major.size": 3.5,
    "ytick.major.size": 3.5,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "xtick.major.pad": 2.5,
    "ytick.major.pad": 2.5,
    "xtick.minor.visible": False,
    "ytick.minor.visible": False,
    "lines.linewidth": 1.2,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.formatter.limits": (-3, 4),
    "axes.formatter.use_mathtext": False,
}
"""mplhep's CMS style, scaled down for grids of small panels; minor ticks more than double the
drawing time of a grid of many panels and add nothing at this size."""


@contextmanager
def style() -> Iterator[None]:
    """Draw the figures made inside in :data:`STYLE`; the global settings are left alone."""
    with matplotlib.rc_context(STYLE):
        yield


@dataclass(frozen=True)
class Labels:
    """Legend names of the two samples, from their producers."""

    reference: str
    generated: str


def _producer_label(producer: dict[str, Any], path: str) -> str:
    kind = producer.get("kind")
    if kind == "geant4":
        return "Geant4"
    if producer.get("name"):
        version = producer.get("version")
        return f"{producer['name']} {version}" if version else str(producer["name"])
    if kind == "converted" and producer.get("format"):
        return f"{producer['format']} file"
    return Path(path).stem if path else ""


def sample_labels(provenance: dict[str, Any]) -> Labels:
    """Legend names: Geant4 or the model's name, else the file name; never the same twice.

    Arguments:
        provenance: ``metrics["provenance"]``, with the ``reference`` and ``generated`` files.

    Example:
        >>> sample_labels({"reference": {"producer": {"kind": "geant4"}},
        ...                "generated": {"producer": {"name": "flow", "version": "0.1"}}})
        Labels(reference='Geant4', generated='flow 0.1')
    """
    names = []
    for side in ("reference", "generated"):
        entry = provenance.get(side) or {}
        names.append(_producer_label(entry.get("producer") or {}, entry.get("path", "")) or side)
    if names[0] == names[1]:
        names = [f"{names[0]} (reference)", f"{names[1]} (generated)"]
    return Labels(*names)


def figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches drawn by Agg and owned by nobody: freed with
    its last reference, no pyplot."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> str:
    """Save a PNG without software or time stamps, so that the same plot gives the same bytes.

    Returns:
        The file's name, as the page refers to it.
    """
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return path.name


def steps(ax: Axes, edges: Any, ref: Any, gen: Any) -> None:
    """A reference histogram filled, the generated one as points at the bin centres."""
    edges, ref, gen = np.asarray(edges), np.asarray(ref), np.asarray(gen)
    ax.stairs(ref, edges, fill=True, color=REFERENCE_COLOUR, alpha=0.35)
    ax.stairs(ref, edges, color=REFERENCE_COLOUR)
    centres = (edges[1:] + edges[:-1]) / 2
    ax.plot(centres, gen, "o", color=GENERATED_COLOUR, markersize=2.5)


def generated_points(ax: Axes, x: Any, y: Any, error: Any, **style: Any) -> Any:
    """The generated sample's values as red points with error bars; ``style`` as of
    ``Axes.errorbar`` (marker size, error line width)."""
    return ax.errorbar(x, y, yerr=error, fmt="o", color=GENERATED_COLOUR, **style)


def legend_handles(labels: Labels) -> list[Any]:
    """The two samples' legend entries: a filled blue patch and a red point."""
    return [
        Patch(
            facecolor=REFERENCE_COLOUR,
            alpha=0.4,
            edgecolor=REFERENCE_COLOUR,
            label=labels.reference,
        ),
        Line2D(
            [],
            [],
            color=GENERATED_COLOUR,
            marker="o",
            markersize=4,
            linestyle="",
            label=labels.generated,
        ),
    ]


def figure_legend(fig: Figure, labels: Labels, top_inches: float = 0.2) -> None:
    """One legend of both samples for the whole figure, centred ``top_inches`` below its top."""
    height = fig.get_figheight()
    fig.legend(
        handles=legend_handles(labels),
        loc="center",
        bbox_to_anchor=(0.5, 1 - top_inches / height),
        ncol=2,
        frameon=False,
    )


def log_scale(axes: Sequence[Axes], axis: str = "x", *, small: bool, plain: bool = False) -> None:
    """Log scale with a few labelled decades (or 1, 2, 5 per decade written plainly with
    ``plain``); minor ticks unlabelled, or none on small panels.

    Axes that share the axis share its locators, so one call serves a panel and its ratio.
    """
    for ax in axes:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = getattr(axes[0], f"{axis}axis")
    if plain:
        target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=12))
        target.set_major_formatter(FormatStrFormatter("%g"))
    else:
        target.set_major_locator(LogLocator(numticks=4 if small else 8))
    target.set_minor_locator(NullLocator() if small else LogLocator(subs="auto"))
    target.set_minor_formatter(NullFormatter())


def colourbar(fig: Figure, mappable: Any, ax: Axes, title: str) -> Any:
    """A colour bar beside ``ax`` and as tall as it once its aspect is applied, titled above
    (a label at its side would crowd the next panel)."""
    ax.apply_aspect()
    box = ax.get_position()
    width = fig.get_figwidth()
    # A polar axes' angle labels reach beyond its box.
    gap = 0.3 if ax.name == "polar" else 0.1
    cax = fig.add_axes((box.x1 + gap / width, box.y0, 0.13 / width, box.height))
    bar = fig.colorbar(mappable, cax=cax)
    bar.ax.set_title(title, fontsize=7.5, pad=4)
    bar.ax.tick_params(labelsize=7)
    return bar
