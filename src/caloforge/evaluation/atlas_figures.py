"""The figure of the ATLAS validation (``metrics["atlas"]``, :mod:`caloforge.evaluation.atlas`).

It draws from the metrics alone, so a report can be redrawn from metrics.json, with the report's
plotting conventions (:mod:`caloforge.evaluation.report.plotting`) and nothing of the page: the
section that shows it is ``templates/atlas.html``, filled by
:func:`caloforge.evaluation.atlas.section`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caloforge.evaluation.report.plotting import (
    GENERATED_COLOUR,
    REFERENCE_COLOUR,
    Labels,
    figure,
    figure_legend,
    save,
)

__all__ = ["energies_figure"]


def energies_figure(atlas: dict[str, Any], labels: Labels, path: Path) -> str | None:
    """Response, resolution and each shape's separation power against the energy; None when
    no energy holds enough events of both samples."""
    rows = [r for r in atlas["energies"] if "separation_power" in r]
    if not rows:
        return None
    x = list(range(len(rows)))
    fig = figure(12.0, 3.8)
    grid = fig.add_gridspec(1, 3, wspace=0.28, left=0.06, right=0.84, top=0.86, bottom=0.24)
    for col, (key, ylabel) in enumerate(
        (("response", "mean E_tot/E_inc"), ("resolution", "σ/μ of E_tot/E_inc"))
    ):
        ax = fig.add_subplot(grid[0, col])
        ax.plot(x, [r[f"{key}_ref"] for r in rows], "-", color=REFERENCE_COLOUR)
        ax.plot(x, [r[f"{key}_gen"] for r in rows], "o", color=GENERATED_COLOUR, markersize=3)
        ax.set_ylabel(ylabel)
    ax = fig.add_subplot(grid[0, 2])
    for shape in rows[0]["separation_power"]:
        ax.plot(x, [r["separation_power"][shape] for r in rows], "-o", markersize=2, label=shape)
    ax.set_ylabel("separation power within the energy")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in fig.axes:
        ax.set_xticks(x, [r["label"].removeprefix("E = ") for r in rows], rotation=45)
        ax.set_xlabel("incident energy")
    figure_legend(fig, labels)
    return save(fig, path)
