"""The HTML report of ``caloforge evaluate``: plots and tables for a physicist to read.

``write_report`` turns an :class:`~caloforge.evaluation.evaluate.Evaluation` into
``report.html`` and the PNG files it shows, all in one folder, so the page opens offline: no
scripts, no network resources, inline CSS, images by relative path. In order, it shows

- the verdict: classifier AUCs (on the cells, the larger of the network's and the boosted
  trees'), FPD and KPD ×10³ (as CaloChallenge quotes them), the event counts, the threshold,
  the five features with the largest separation power and the notes;
- average shower images per layer, reference and generated side by side with their ratio
  (cartesian layers as images in mm, polar ones on polar axes);
- a histogram with a generated/reference ratio panel of every feature, titled with its
  separation power and W1, grouped by kind, and for several layers the mean per layer;
- the cell energy spectrum (3DGAN, NYU), the response E_tot/E_inc against E_inc (3DGAN,
  ATLAS), the correlation matrices of the metric features and their difference (3DGAN);
- the per-bin table, the condition KS p-values and the provenance of both files;
- on 3D-image detectors conditioned on E and θ, the 3DGAN seed's validation
  (``caloforge.evaluation.clic``, figures in ``clic_figures``, page in ``templates/clic.html``);
- on 3D-image detectors with photons and π⁰, the NYU seed's validation and the γ/π⁰
  separability (``caloforge.evaluation.nyu``, ``nyu_figures``, ``templates/nyu.html``).

The same colours mean the same sample everywhere: reference blue and filled, generated red
points. The same Evaluation gives byte-identical files: PNGs carry no software or date stamp.

References:
    | CaloChallenge 2022: a community challenge for fast calorimeter simulation
    | (Krause et al., 2024) https://arxiv.org/abs/2410.21611
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FormatStrFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

from caloforge.detectors import CartesianBinning, Detector
from caloforge.errors import checked
from caloforge.evaluation.conditions import MAX_ENERGY_POINTS, condition_bins
from caloforge.evaluation.evaluate import MIN_BIN_EVENTS, Evaluation, Sample
from caloforge.evaluation.observables import FAR_CELLS, RINGS, cell_energies, correlation_matrix
from caloforge.evaluation.schema import Metrics, migrate
from caloforge.files import atomic_write, atomic_write_text

__all__ = ["cells_auc", "summary_rows", "write_report"]

REFERENCE_COLOUR = "#5790fc"
GENERATED_COLOUR = "#e42536"

DPI = 100
PANEL_SIZE = (2.1, 2.35)
"""Inches of one histogram panel with its ratio panel, title included."""
MAX_PANELS = 60
"""Histogram panels per PNG: six columns of ten rows, about 1310 × 2400 pixels."""
MAX_COLUMNS = 6
MAX_IMAGE_LAYERS = 6
DISPLAY_BINS = 40
RATIO_RANGE = (0.5, 1.5)
WORST_FEATURES = 5

# CMS style of mplhep, scaled down for grids of small panels; minor ticks more than double the
# drawing time of a grid of many panels and add nothing at this size.
_STYLE = {
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

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  color: #1d232b; background: #f4f6f8; margin: 0; }
main { max-width: 1340px; margin: 0 auto; padding: 18px 24px 48px; }
header.top { background: #1f2a36; color: #f4f6f8; }
header.top div { max-width: 1340px; margin: 0 auto; padding: 18px 24px; }
header.top h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header.top p { margin: 2px 0; color: #c8d1da; }
nav { margin-top: 10px; font-size: 13.5px; }
nav a { color: #9cc2ff; margin-right: 14px; text-decoration: none; }
h2 { font-size: 20px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d5dbe1; }
h3 { font-size: 16px; margin: 22px 0 6px; }
p.note { color: #4a5563; margin: 4px 0 10px; max-width: 1100px; }
.chip { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
  margin: 0 5px 0 2px; vertical-align: -1px; }
.ref { background: #5790fc; }
.gen { background: #e42536; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { background: #fff; border: 1px solid #d5dbe1; border-radius: 6px; padding: 10px 14px;
  min-width: 150px; flex: 1 1 150px; }
.card .label { font-size: 12.5px; color: #5b6673; text-transform: uppercase;
  letter-spacing: .03em; }
.card .value { font-size: 25px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .hint { font-size: 12.5px; color: #5b6673; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.howto { background: #f3f6f9; border: 1px solid #d5dbe1; border-radius: 6px; padding: 8px 14px;
  max-width: 1100px; }
.readings ul { list-style: none; padding-left: 0; margin: 6px 0; }
.readings li { margin: 4px 0; }
.readings .dot { display: inline-block; width: 11px; height: 11px; border-radius: 50%;
  margin-right: 8px; vertical-align: middle; }
.level-floor .dot { background: #2e9d4a; }
.level-mild .dot { background: #d9c22e; }
.level-between .dot { background: #e8891d; }
.level-beyond .dot { background: #c9302c; }
.notes { background: #fff7e0; border: 1px solid #e8cf80; border-radius: 6px;
  padding: 8px 14px; margin: 12px 0; }
.notes ul { margin: 4px 0; padding-left: 20px; }
table { border-collapse: collapse; background: #fff; font-size: 13.5px; margin: 6px 0 12px;
  font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5dbe1; padding: 3px 9px; text-align: right; }
th { background: #e9edf1; font-weight: 600; }
td.text, th.text { text-align: left; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; text-align: left; word-break: break-all; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; display: block; background: #fff;
  border: 1px solid #d5dbe1; }
figcaption { color: #4a5563; font-size: 13.5px; margin-top: 4px; max-width: 1100px; }
.groups { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; }
.group { max-width: 100%; }
details { margin: 4px 0 14px; }
summary { cursor: pointer; color: #2b5aa8; }
"""


@dataclass(frozen=True)
class _Labels:
    """Legend names of the two samples, from their producers."""

    reference: str
    generated: str


@dataclass(frozen=True)
class _Group:
    """A section of feature histograms and the rows of panels that show it."""

    key: str
    title: str
    features: list[str]
    rows: list[list[str]]


@checked
def write_report(evaluation: Evaluation, out_dir: str | Path) -> Path:
    """Write ``report.html`` and the PNG files it shows into ``out_dir``.

    Arguments:
        evaluation: the result of :func:`~caloforge.evaluation.evaluate.evaluate`.
        out_dir: the folder, created if missing; files of the same names are replaced.

    Returns:
        The path of ``report.html``.

    Example:
        >>> from caloforge.evaluation.evaluate import evaluate
        >>> path = write_report(evaluate("gen.h5", "ref.h5"), "evaluation")  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluation.metrics
    labels = _sample_labels(metrics.get("provenance", {}))
    groups = _feature_groups(evaluation.features)
    sections: list[str] = [_verdict_html(metrics, labels)]
    with matplotlib.rc_context(_STYLE):
        sections.append(_images_section(evaluation, labels, out_dir))
        sections.append(_features_section(evaluation, groups, labels, out_dir))
        sections.append(_spectrum_section(evaluation, labels, out_dir))
        sections.append(_response_section(evaluation, labels, out_dir))
        sections.append(_correlation_section(evaluation, labels, out_dir))
        sections.append(_bins_section(evaluation, labels, out_dir))
        if "clic" in metrics:
            sections.append(_clic_section(metrics["clic"], labels, out_dir))
        if "nyu" in metrics:
            sections.append(_nyu_section(evaluation, labels, out_dir))
    if "by" in metrics:
        sections.append(_breakdown_section(metrics["by"]))
    sections.append(_provenance_section(metrics))
    page = _page(metrics, labels, sections)
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path


def _quick_label(metrics: dict[str, Any]) -> str:
    """Where the quick classifier made the AUCs, which understate differences: " (quick)"."""
    classifier = metrics.get("classifier") or {}
    return " (quick)" if any(r.get("settings") == "quick" for r in classifier.values()) else ""


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("caloforge.evaluation", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
"""New sections of the page are Jinja2 templates (``evaluation/templates/``)."""


def _breakdown_section(by: dict[str, Any]) -> str:
    header, *rows = breakdown_rows(by)
    return _TEMPLATES.get_template("breakdown.html").render(
        condition=by["condition"], header=header, rows=rows, min_events=MIN_BIN_EVENTS
    )


def _clic_section(clic: dict[str, Any], labels: _Labels, out_dir: Path) -> str:
    from caloforge.evaluation import clic_figures

    rows = []
    for name, value in (
        ("E_tot/E_p per E_p bin (mean)", clic["response"]["max_relative_difference"]),
        ("cell spectrum (log bins)", clic["cell_spectrum"].get("max_relative_difference")),
        ("profiles per θ bin", clic["profiles"]["max_relative_difference"]),
    ):
        rows.append((name, f"{value:.1%}" if _finite(value) else "–",
                     "yes" if _finite(value) and value <= 0.1 else "no"))  # fmt: skip
    delta = clic["correlation"]["max_abs_difference"]
    rows.append(("correlation matrix, max |Δρ|", _sig(delta), "–"))
    figures = []
    spectrum = clic_figures.spectrum_figure(clic, labels, out_dir / "clic_spectrum.png")
    if spectrum:
        figures.append({"name": spectrum, "alt": "cell spectrum",
                        "caption": "Single-cell spectrum, linear and log bins."})  # fmt: skip
    figures.append({
        "name": clic_figures.profiles_figure(clic, labels, out_dir / "clic_profiles.png"),
        "alt": "profiles",
        "caption": "Mean longitudinal and transverse profiles in bins of θ (the primary is "
        "tilted in x): reference filled, generated points.",
    })  # fmt: skip
    figures.append({
        "name": clic_figures.correlation_figure(clic, out_dir / "clic_correlation.png"),
        "alt": "correlation difference",
        "caption": "Reference minus generated correlation of the seed's shower features.",
    })  # fmt: skip
    return _TEMPLATES.get_template("clic.html").render(rows=rows, figures=figures)


_NYU_SLICE_KEYS = ("profile", "spread", "fluctuation")


def _nyu_section(evaluation: Evaluation, labels: _Labels, out_dir: Path) -> str:
    from caloforge.evaluation import nyu_figures

    nyu = evaluation.metrics["nyu"]

    def percent(value: Any) -> str:
        return f"{value:.0%}" if _finite(value) else "–"

    rows, figures = [], []
    for code, p in nyu["particles"].items():
        r = p["response"]
        rows.append((
            p["name"], f"{p['n_ref']} / {p['n_gen']}",
            f"{_sig(r['mean_ref'])} / {_sig(r['mean_gen'])}",
            f"{_sig(r['resolution_ref'])} / {_sig(r['resolution_gen'])}",
            *(percent(p[k]["max_relative_difference"]) for k in _NYU_SLICE_KEYS),
            percent(p["pixels"].get("max_relative_difference")),
        ))  # fmt: skip
        figures.append({
            "name": nyu_figures.particle_figure(p, labels, out_dir / f"nyu_{code}.png"),
            "alt": f"NYU validation, {p['name']}",
            "caption": f"{p['name']}: mean energy, spread and fluctuation per slice; pixel "
            "intensities; E_out/E_in; E_out against E_in (reference filled, generated points).",
        })  # fmt: skip
    codes = [int(code) for code in nyu["particles"]]
    unrolled = nyu_figures.unrolled_figure(evaluation, codes, labels, out_dir / "nyu_unrolled.png")
    figures.append({
        "name": unrolled,
        "alt": "unrolled showers",
        "caption": "Showers unrolled as in the seed: each slice's 20 × 20 centre read along a "
        "spiral from the centre out (400 positions, left to right) against the slice (top to "
        "bottom); the mean over events and one event of each sample.",
    })  # fmt: skip
    separability = None
    if "bins" in nyu.get("separability", {}):
        sep = nyu["separability"]
        table = []
        for row in [sep["overall"], *sep["bins"]]:
            lo, hi = (e / 1e3 for e in row["energy_mev"])
            table.append((
                "all" if row is sep["overall"] else f"{lo:.0f}–{hi:.0f}",
                f"{row['n_ref']} / {row['n_gen']}", _sig(row["auc_ref"]), _sig(row["auc_gen"]),
            ))  # fmt: skip
        note = (
            f"A gradient-boosted classifier trained on {sep['n_train']} reference showers to tell "
            "γ from π⁰, scored on the other reference half and on the generated showers: a "
            "faithful model keeps Geant4's AUC."
        )
        separability = {"rows": table, "note": note}
    return _TEMPLATES.get_template("nyu.html").render(
        rows=rows, figures=figures, separability=separability
    )


def breakdown_rows(by: dict[str, Any]) -> list[tuple[str, ...]]:
    """A header and one row per value of a ``--by`` breakdown (``metrics["by"]``): events,
    AUCs (cells: network / boosted trees), FPD ×10³, the largest separation power, and response
    and resolution of both.

    Example:
        >>> rows = breakdown_rows({"condition": "energy", "values": [
        ...     {"value": 1024.0, "n_ref": 5, "n_gen": 5}]})
        >>> rows[1][:2]
        ('1024', '5 / 5')
    """
    header = (
        by["condition"],
        "events (ref / gen)",
        "AUC cells (network / trees)",
        "AUC features",
        "FPD ×10³",
        "largest separation power",
        "response ref / gen",
        "resolution ref / gen",
    )
    rows: list[tuple[str, ...]] = [header]
    for row in by["values"]:
        m = row.get("metrics")
        events = f"{row['n_ref']} / {row['n_gen']}"
        if m is None:
            rows.append((f"{row['value']:g}", events, "too few events", *[""] * 5))
            continue
        worst = _worst_features(m, 1)
        rows.append(
            (
                f"{row['value']:g}",
                events,
                f"{_fixed(m.get('auc_cells_network'), 3)} / {_fixed(m.get('auc_cells_trees'), 3)}",
                _fixed(m.get("auc_features"), 3),
                _with_error(m.get("fpd_x1e3"), m.get("fpd_x1e3_err")),
                f"{worst[0][0]}: {_sig(worst[0][1])}" if worst else "n/a",
                f"{_sig(row['response_ref'])} / {_sig(row['response_gen'])}",
                f"{_sig(row['resolution_ref'])} / {_sig(row['resolution_gen'])}",
            )
        )
    return rows


def summary_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers of an evaluation as (label, value) rows for a terminal table.

    Arguments:
        metrics: the metrics.json content (``Evaluation.metrics`` or the file read back,
            where NaN is null).

    Returns:
        Rows in reading order; a metric that was not computed reads ``n/a``.

    Example:
        >>> rows = summary_rows({"n_reference": 1000, "n_generated": 900, "fpd_x1e3": 1.23,
        ...                      "fpd_x1e3_err": 0.4, "separation_power": {"E_tot": 0.02}})
        >>> rows[0], rows[4]
        (('events (reference / generated)', '1000 / 900'), ('FPD ×10³', '1.23 ± 0.40'))
    """
    m = Metrics.model_validate(migrate(metrics))
    worst = m.largest_separation_power
    quick = _quick_label(metrics)
    rows = [
        (
            "events (reference / generated)",
            f"{m.n_reference} / {m.n_generated}",
        ),
        (f"classifier AUC, cells{quick}", _fixed(m.auc_cells_network, 3)),
        (
            "classifier AUC, cells, boosted trees",
            _fixed(m.auc_cells_trees, 3),
        ),
        (f"classifier AUC, features{quick}", _fixed(m.auc_features, 3)),
        ("FPD ×10³", _with_error(m.fpd_x1e3, m.fpd_x1e3_err)),
        ("KPD ×10³", _with_error(m.kpd_x1e3, m.kpd_x1e3_err)),
        (
            "largest separation power",
            f"{worst[0]}: {_sig(worst[1])}" if worst else "n/a",
        ),
        ("cell spectrum separation power", _sig(metrics.get("cell_spectrum_separation_power"))),
    ]
    if "far_cell_spectrum_separation_power" in metrics:
        rows.append((
            f"far cell spectrum separation power (r ≥ {FAR_CELLS:g} cells)",
            _sig(metrics["far_cell_spectrum_separation_power"]),
        ))  # fmt: skip
    conditions = metrics.get("conditions") or {}
    if conditions.get("ks_p_values"):
        rows.append(("conditions KS p (corrected, smallest)", _sig(conditions["p_min_corrected"])))
    return rows


def cells_auc(metrics: dict[str, Any]) -> float | None:
    """The cells AUC that fidelity is judged by (:attr:`Metrics.auc_cells`): the larger of the
    network's and the boosted trees', each a lower bound; None when neither was computed.

    Example:
        >>> cells_auc({"auc_cells_network": 0.61, "auc_cells_trees": 0.72})
        0.72
    """
    return Metrics.model_validate(migrate(metrics)).auc_cells


# ---------------------------------------------------------------------------------------------
# Number formatting


def _finite(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def _sig(value: Any, digits: int = 3) -> str:
    """``digits`` significant digits, or n/a for a missing or non-finite value."""
    if not _finite(value):
        return "n/a"
    return f"{float(value):.{digits}g}"


def _fixed(value: Any, decimals: int) -> str:
    return f"{float(value):.{decimals}f}" if _finite(value) else "n/a"


def _with_error(value: Any, error: Any) -> str:
    """``value ± error``, rounded to the error's second significant digit."""
    if not _finite(value):
        return "n/a"
    value = float(value)
    if not _finite(error) or float(error) <= 0:
        return _sig(value)
    error = float(error)
    decimals = max(0, 1 - math.floor(math.log10(error)))
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def _worst_features(metrics: dict[str, Any], n: int) -> list[tuple[str, float]]:
    """The ``n`` features of largest separation power, ties in name order."""
    powers = metrics.get("separation_power") or {}
    finite = [(name, float(v)) for name, v in powers.items() if _finite(v)]
    return sorted(finite, key=lambda item: (-item[1], item[0]))[:n]


# ---------------------------------------------------------------------------------------------
# Samples, features and their grouping


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


def _sample_labels(provenance: dict[str, Any]) -> _Labels:
    """Legend names: Geant4 or the model's name, else the file name; never the same twice."""
    names = []
    for side in ("reference", "generated"):
        entry = provenance.get(side) or {}
        names.append(_producer_label(entry.get("producer") or {}, entry.get("path", "")) or side)
    if names[0] == names[1]:
        names = [f"{names[0]} (reference)", f"{names[1]} (generated)"]
    return _Labels(*names)


def _split_name(name: str) -> tuple[str, int | None]:
    """(family, layer) of a per-layer feature such as ``width_x_12``; (name, None) otherwise."""
    match = _LAYER_FEATURE.match(name)
    if match is None:
        return name, None
    return match["family"], int(match["layer"])


def _is_energy(name: str) -> bool:
    family, _ = _split_name(name)
    return family.startswith("E_") and "/" not in family


def _unit(name: str) -> str:
    family, _ = _split_name(name)
    if family.startswith("sparsity"):
        return "fraction of cells"
    return _UNITS.get(family, "")


def _feature_groups(names: Sequence[str]) -> list[_Group]:
    """Features by kind, each family (a feature over every layer) in layer order.

    Families of one feature (E_tot, or any feature of a one-layer detector) share rows; a
    family over several layers starts a row of its own, so that one column of a grid is one
    layer. A group of more than ``MAX_PANELS`` panels is split between families into several
    figures.
    """
    families: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        family, layer = _split_name(name)
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
                groups.append(_Group(key, title, features, grid))
            else:
                part = ", ".join(_family_names(features))
                groups.append(_Group(f"{key}_{i + 1}", f"{title}: {part}", features, grid))
    return groups


# ---------------------------------------------------------------------------------------------
# Figures


def _figure(width: float, height: float) -> Figure:
    """A figure drawn by Agg and owned by nobody: freed with its last reference, no pyplot."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> str:
    """Save a PNG without software or time stamps, so that the same plot gives the same bytes."""
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return path.name


def _steps(ax, edges, ref, gen) -> None:
    """A reference histogram filled, the generated one as points at the bin centres."""
    edges, ref, gen = np.asarray(edges), np.asarray(ref), np.asarray(gen)
    ax.stairs(ref, edges, fill=True, color=REFERENCE_COLOUR, alpha=0.35)
    ax.stairs(ref, edges, color=REFERENCE_COLOUR)
    centres = (edges[1:] + edges[:-1]) / 2
    ax.plot(centres, gen, "o", color=GENERATED_COLOUR, markersize=2.5)


def _legend_handles(labels: _Labels) -> list[Any]:
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


def _figure_legend(fig: Figure, labels: _Labels, top_inches: float = 0.2) -> None:
    height = fig.get_figheight()
    fig.legend(
        handles=_legend_handles(labels),
        loc="center",
        bbox_to_anchor=(0.5, 1 - top_inches / height),
        ncol=2,
        frameon=False,
    )


def _fractions(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _display_edges(ref: np.ndarray, gen: np.ndarray, log: bool) -> np.ndarray:
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


def _log_scale(axes: Sequence[Axes], axis: str = "x", *, small: bool, plain: bool = False) -> None:
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


def _ratio_panel(
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
    rax.errorbar(
        centres[inside],
        ratio[inside],
        yerr=error[inside],
        fmt="o",
        color=GENERATED_COLOUR,
        markersize=2.2,
        elinewidth=0.8,
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


def _histogram_panel(ax: Axes, rax: Axes, ref: np.ndarray, gen: np.ndarray, *, log: bool) -> None:
    """Reference filled, generated as points, normalised to unit sum, with a ratio panel."""
    edges = _display_edges(ref, gen, log)
    log = log and edges[0] > 0
    if log:
        _log_scale([ax, rax], small=True)
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
    h_ref = _fractions(ref, edges)
    h_gen = _fractions(gen, edges)
    mplhep.histplot(
        h_ref[0], edges, ax=ax, histtype="fill", color=REFERENCE_COLOUR, alpha=0.35, flow=None
    )
    mplhep.histplot(
        h_ref[0], edges, ax=ax, histtype="step", color=REFERENCE_COLOUR, linewidth=1.0, flow=None
    )
    mplhep.histplot(
        h_gen[0],
        edges,
        ax=ax,
        histtype="errorbar",
        yerr=h_gen[1],
        color=GENERATED_COLOUR,
        markersize=2.2,
        elinewidth=0.8,
        flow=None,
    )
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.25 * max(float(h_ref[0].max()), float(h_gen[0].max()), 1e-12))
    _ratio_panel(rax, edges, h_ref, h_gen)
    ax.tick_params(which="both", labelbottom=False)
    ax.set_xlabel("")
    ax.set_ylabel("")
    if not log:
        rax.xaxis.set_major_locator(MaxNLocator(4))
    # The lowest label would touch the ratio panel's top one.
    ax.yaxis.set_major_locator(MaxNLocator(4, prune="lower"))


@dataclass(frozen=True)
class _Panel:
    """One histogram of a grid: its title, both samples' values and how to bin them."""

    title: str
    ref: np.ndarray
    gen: np.ndarray
    log: bool
    unit: str


def _histogram_grid(rows: list[list[_Panel]], labels: _Labels, path: Path) -> str:
    """A grid of histograms with ratio panels, one row of the grid per row of panels."""
    ncols, nrows = max(map(len, rows)), len(rows)
    width, height = PANEL_SIZE[0] * ncols + 0.5, PANEL_SIZE[1] * nrows + 0.45
    fig = _figure(width, height)
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
            _histogram_panel(ax, rax, panel.ref, panel.gen, log=panel.log)
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
    _figure_legend(fig, labels)
    return _save(fig, path)


def _features_figure(
    evaluation: Evaluation, rows: list[list[str]], labels: _Labels, path: Path
) -> str:
    """Histograms of features, each titled with its separation power and W1."""
    powers = evaluation.metrics.get("separation_power", {})
    w1 = evaluation.metrics.get("w1", {})
    ref, gen = evaluation.reference.features, evaluation.generated.features
    panels = [
        [
            _Panel(
                f"{name}\nSP {_sig(powers.get(name))}   W1 {_sig(w1.get(name))}",
                ref[name],
                gen[name],
                _is_energy(name),
                _unit(name),
            )
            for name in row
        ]
        for row in rows
    ]
    return _histogram_grid(panels, labels, path)


def _bins_figure(evaluation: Evaluation, labels: _Labels, path: Path) -> str | None:
    """E_tot / E_inc in each condition bin (ATLAS's energy points, angle ranges, particles),
    titled with the bin's separation power from metrics.json; None when no bin is filled."""
    ref, gen = evaluation.reference, evaluation.generated
    names = tuple((evaluation.metrics.get("conditions") or {}).get("names") or ())
    rows_by_label = {
        (row.get("kind"), row.get("label")): row for row in evaluation.metrics.get("bins") or []
    }
    kinds: dict[str, list[_Panel]] = {}
    for b in condition_bins(ref.energy, ref.conditions, gen.energy, gen.conditions, names):
        if min(int(b.ref.sum()), int(b.gen.sum())) < MIN_BIN_EVENTS:
            continue
        sp = rows_by_label.get((b.kind, b.label), {}).get("separation_power_E_tot/E_inc")
        kinds.setdefault(b.kind, []).append(
            _Panel(
                f"{b.label}\nSP {_sig(sp)}",
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


def _layer_profile_figure(evaluation: Evaluation, labels: _Labels, path: Path) -> str:
    """Means per layer of energy, spread and sparsity, and each family's separation power."""
    n_layers = len(evaluation.detector.readout_layers)
    layers = np.arange(n_layers)
    ref, gen = evaluation.reference.features, evaluation.generated.features
    width, height = 13.0, 4.0
    fig = _figure(width, height)
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
        ax.errorbar(
            layers,
            means[1],
            yerr=errors[1],
            fmt="o",
            color=GENERATED_COLOUR,
            markersize=2.5,
            elinewidth=0.8,
        )
        if log and (means[0] > 0).any():
            _log_scale([ax], "y", small=False)
        ax.set_title(title, fontsize=9)
        ax.tick_params(which="both", labelbottom=False)
        _ratio_panel(rax, edges, (means[0], errors[0]), (means[1], errors[1]))
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
    _figure_legend(fig, labels)
    return _save(fig, path)


def _image_layers(mean_energy: np.ndarray) -> list[int]:
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


def _images_figure(evaluation: Evaluation, labels: _Labels, path: Path) -> tuple[str, list[int]]:
    """Average showers of the chosen layers: reference, generated and their ratio per row."""
    detector = evaluation.detector
    ref_images = _mean_images(evaluation.reference, detector)
    gen_images = _mean_images(evaluation.generated, detector)
    chosen = _image_layers(np.array([image.sum() for image in ref_images]))
    depths = detector.layer_depths()
    total = max(float(sum(image.sum() for image in ref_images)), 1e-300)
    row_height, width, left = 3.0, 12.6, 1.5
    height = row_height * len(chosen) + 0.55
    fig = _figure(width, height)
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
        _colourbar(fig, mesh, ax, "MeV")
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
        bar = _colourbar(fig, mesh, ax, "gen/ref")
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
    return _save(fig, path), chosen


def _colourbar(fig: Figure, mappable: Any, ax: Axes, title: str) -> Any:
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


def _spectrum_figure(evaluation: Evaluation, labels: _Labels, path: Path) -> str:
    """Every non-zero cell's energy, log-binned, with a ratio panel."""
    ref = cell_energies(evaluation.reference.showers).astype(np.float64)
    gen = cell_energies(evaluation.generated.showers).astype(np.float64)
    width, height = 7.0, 5.0
    fig = _figure(width, height)
    grid = fig.add_gridspec(
        2,
        1,
        height_ratios=(3, 1.1),
        hspace=0.06,
        left=0.12,
        right=0.97,
        top=1 - 0.5 / height,
        bottom=0.11,
    )
    ax = fig.add_subplot(grid[0])
    rax = fig.add_subplot(grid[1], sharex=ax)
    both = np.concatenate([ref, gen])
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        edges = np.geomspace(lo, max(hi, 2 * lo) * 1.0001, 61)
        _log_scale([ax, rax], small=False)
        h_ref, h_gen = _fractions(ref, edges), _fractions(gen, edges)
        mplhep.histplot(
            h_ref[0], edges, ax=ax, histtype="fill", color=REFERENCE_COLOUR, alpha=0.35, flow=None
        )
        mplhep.histplot(h_ref[0], edges, ax=ax, histtype="step", color=REFERENCE_COLOUR, flow=None)
        mplhep.histplot(
            h_gen[0],
            edges,
            ax=ax,
            histtype="errorbar",
            yerr=h_gen[1],
            color=GENERATED_COLOUR,
            markersize=3,
            flow=None,
        )
        _log_scale([ax], "y", small=False)
        ax.set_xlim(edges[0], edges[-1])
        _ratio_panel(rax, edges, h_ref, h_gen)
        threshold = evaluation.metrics.get("threshold_mev")
        if _finite(threshold) and threshold > 0:
            ax.axvline(threshold, color="#4a5563", linestyle="--", linewidth=0.9)
    ax.tick_params(which="both", labelbottom=False)
    ax.set_xlabel("")
    ax.set_ylabel("fraction of non-zero cells")
    rax.set_xlabel("cell energy [MeV]")
    rax.set_ylabel("gen/ref", fontsize=8)
    sp = evaluation.metrics.get("cell_spectrum_separation_power")
    ax.set_title(f"cell energy spectrum   SP {_sig(sp)}", fontsize=10)
    _figure_legend(fig, labels, 0.17)
    return _save(fig, path)


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


def _response_figure(evaluation: Evaluation, labels: _Labels, path: Path) -> str:
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
    width, height = 13.0, 5.0
    fig = _figure(width, height)
    grid = fig.add_gridspec(
        2,
        2,
        height_ratios=(3, 1.1),
        hspace=0.06,
        wspace=0.22,
        left=0.07,
        right=0.985,
        top=1 - 0.55 / height,
        bottom=0.11,
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
        ax.errorbar(
            x,
            g[:, value],
            yerr=g[:, band],
            fmt="o",
            color=GENERATED_COLOUR,
            markersize=3.5,
            elinewidth=0.9,
            capsize=2,
        )
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
        rax.errorbar(
            x[finite],
            ratio[finite],
            yerr=ratio_err[finite],
            fmt="o",
            color=GENERATED_COLOUR,
            markersize=3.5,
            elinewidth=0.9,
        )
        spread = float(np.max(np.abs(ratio[finite] - 1))) if finite.any() else 0.0
        half = min(max(0.05, 1.3 * spread), 0.5)
        rax.set_ylim(1 - half, 1 + half)
        rax.set_ylabel("gen/ref", fontsize=8)
        rax.set_xlabel("E_inc [GeV]")
        if log:
            _log_scale([ax, rax], small=False, plain=True)
    _figure_legend(fig, labels, 0.18)
    return _save(fig, path)


def _ordered_metric_features(names: Sequence[str]) -> list[str]:
    """Metric features by group, family and layer, so that each family is one block."""
    ordered = [n for group in _feature_groups(names) for n in group.features]
    return [n for n in ordered if n in set(names)]


def _correlation_figure(
    evaluation: Evaluation, names: list[str], labels: _Labels, path: Path
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
    fig = _figure(width, height)
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
            _colourbar(fig, image, ax, "ρ" if col == 1 else "Δρ")
    return _save(fig, path), worst, mean_abs


def _correlation_ticks(names: list[str], labelled: bool) -> tuple[list[float], list[str], list]:
    """Every name when few; else one label per block and the block boundaries, where a block
    is a family over layers or a run of single features (whose labels would overlap)."""
    if labelled:
        return list(range(len(names))), names, []
    families = [_split_name(n)[0] for n in names]
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


# ---------------------------------------------------------------------------------------------
# HTML


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(name: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{_esc(name)}" alt="{_esc(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """An HTML table; the first ``text_columns`` columns left-aligned. Cells are escaped."""

    def cell(tag: str, i: int, value: str) -> str:
        cls = ' class="text"' if i < text_columns else ""
        return f"<{tag}{cls}>{_esc(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_value_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """A table whose first column names each row; values left-aligned in a monospace font."""
    head = (
        "<thead><tr>"
        + "".join(f'<th class="text">{_esc(h)}</th>' for h in header)
        + "</tr></thead>"
        if header
        else ""
    )
    body = "".join(
        f'<tr><th class="text">{_esc(key)}</th>'
        + "".join(f'<td class="mono">{_esc(v)}</td>' for v in values)
        + "</tr>"
        for key, *values in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _card(label: str, value: str, hint: str) -> str:
    return (
        f'<div class="card"><div class="label">{_esc(label)}</div>'
        f'<div class="value">{_esc(value)}</div><div class="hint">{_esc(hint)}</div></div>'
    )


def _verdict_html(metrics: dict[str, Any], labels: _Labels) -> str:
    classifier = metrics.get("classifier") or {}
    ran = bool(classifier)
    auc_hint = "0.5 = indistinguishable, 1 = separable" if ran else "classifier not run"
    threshold = metrics.get("threshold_mev")
    quick = _quick_label(metrics)
    cells_hint = auc_hint
    if ran:
        cells_hint = (
            f"the larger of network{quick} {_fixed(metrics.get('auc_cells_network'), 3)} and "
            f"boosted trees {_fixed(metrics.get('auc_cells_trees'), 3)}; {auc_hint}"
        )
    cards = [
        _card("classifier AUC · cells", _fixed(cells_auc(metrics), 3), cells_hint),
        _card(
            f"classifier AUC · features{quick}",
            _fixed(metrics.get("auc_features"), 3),
            auc_hint,
        ),
        _card(
            "FPD ×10³",
            _with_error(metrics.get("fpd_x1e3"), metrics.get("fpd_x1e3_err")),
            "Fréchet distance of features; 0 = same",
        ),
        _card(
            "KPD ×10³",
            _with_error(metrics.get("kpd_x1e3"), metrics.get("kpd_x1e3_err")),
            "kernel distance of features; 0 = same",
        ),
        _card(
            "events",
            f"{metrics.get('n_reference')} / {metrics.get('n_generated')}",
            "reference / generated",
        ),
        _card(
            "threshold",
            f"{_sig(threshold)} MeV",
            f"{metrics.get('energy_unit', 'visible MeV')}; cells below are zeroed in both",
        ),
    ]
    context = (
        "For scale: Geant4 against Geant4 gives AUC 0.50; in CaloChallenge 2022 (dataset 2) the "
        "cell-level AUCs of the entries ranged from 0.53 to 0.94."
    )
    if ran:
        context += (
            " On the cells, two classifiers judge: CaloChallenge's network and gradient-boosted "
            "trees, which see a difference in a few cells as readily as in many; each is a lower "
            "bound on how separable the showers are, so the larger counts."
        )
    if quick:
        context += (
            " This evaluation used the quick classifier (small network, short training), which "
            "separates less well: its AUCs understate the differences."
        )
    worst = _worst_features(metrics, WORST_FEATURES)
    w1 = metrics.get("w1") or {}
    worst_table = _table(
        ("feature", "separation power", "W1 / σ_ref"),
        [(name, _sig(sp), _sig(w1.get(name))) for name, sp in worst],
    )
    far = ""
    if "far_cell_spectrum_separation_power" in metrics:
        far = (
            f"; the cells at {FAR_CELLS:g} cells or more from their shower's centroid alone: SP "
            f"{_sig(metrics['far_cell_spectrum_separation_power'])}"
        )
    notes = metrics.get("notes") or []
    notes_html = (
        '<div class="notes"><strong>Notes</strong><ul>'
        + "".join(f"<li>{_esc(note)}</li>" for note in notes)
        + "</ul></div>"
        if notes
        else ""
    )
    reading = metrics.get("verdict") or {}
    scale = _TEMPLATES.get_template("reading.html").render(
        readings=reading.get("readings", []),
        measured=reading.get("measured", ""),
        caveats=reading.get("caveats", []),
        detector=metrics.get("detector", ""),
    )
    return (
        '<section id="verdict"><h2>Verdict</h2>'
        f"{scale}"
        f'<div class="cards">{"".join(cards)}</div>'
        f'<p class="note">{_esc(context)}</p>'
        '<div class="row"><div><h3>Largest separation powers</h3>'
        f"{worst_table}"
        '<p class="note">Separation power ½ Σ (h₁ − h₂)² / (h₁ + h₂) on '
        f"{_esc(str(metrics.get('histogram_bins', 50)))} bins at the "
        "reference's quantiles: 0 = identical, 1 = disjoint. W1 in units of the reference's "
        f"standard deviation. Cell spectrum: SP "
        f"{_esc(_sig(metrics.get('cell_spectrum_separation_power')))}{_esc(far)}.</p></div></div>"
        f"{notes_html}</section>"
    )


def _images_section(evaluation: Evaluation, labels: _Labels, out_dir: Path) -> str:
    name, chosen = _images_figure(evaluation, labels, out_dir / "shower_images.png")
    n_layers = len(evaluation.detector.readout_layers)
    if len(chosen) == n_layers:
        which = "every readout layer"
    else:
        which = (
            f"{len(chosen)} of the {n_layers} readout layers: the one with the most energy and "
            "those where the reference's cumulative mean energy reaches 5, 25, 50, 75 and 95 %"
        )
    caption = (
        f"Mean energy per cell over all events, {which}; log colour scale shared by both "
        "samples in a row, cells never hit in grey. Right: generated / reference of the means."
    )
    return (
        '<section id="images"><h2>Average showers</h2>'
        + _img(name, "average shower images per layer", _esc(caption))
        + "</section>"
    )


def _features_section(
    evaluation: Evaluation, groups: list[_Group], labels: _Labels, out_dir: Path
) -> str:
    metrics = evaluation.metrics
    parts = [
        '<section id="features"><h2>Features</h2>'
        f'<p class="note">{len(evaluation.features)} features. Each panel: '
        f'<span class="chip ref"></span>{_esc(labels.reference)} filled, '
        f'<span class="chip gen"></span>{_esc(labels.generated)} as points, both normalised '
        "to unit sum; below, generated / reference with the reference's statistical error as "
        "a band, values beyond 0.5–1.5 as triangles. Bins span the 0.1–99.9 % quantiles of "
        "both samples (the rest is put into the edge bins); energies over more than a decade "
        "are log-binned, their fractions at 0 (reference / generated) written in the panel. "
        "SP and W1 are those of metrics.json.</p>"
    ]
    if len(evaluation.detector.readout_layers) > 1:
        name = _layer_profile_figure(evaluation, labels, out_dir / "layer_profiles.png")
        parts.append("<h3>Per layer</h3>")
        parts.append(
            _img(
                name,
                "mean energy, spread and sparsity per layer",
                "Means over events per readout layer (longitudinal profile, NYU energy spread, "
                "sparsity) with the ratio generated / reference, and the separation power of "
                "each per-layer feature.",
            )
        )
    powers, w1 = metrics.get("separation_power", {}), metrics.get("w1", {})
    parts.append('<div class="groups">')
    for group in groups:
        name = _features_figure(
            evaluation, group.rows, labels, out_dir / f"features_{group.key}.png"
        )
        rows = [(n, _sig(powers.get(n)), _sig(w1.get(n))) for n in group.features]
        parts.append(
            f'<div class="group"><h3>{_esc(group.title)}</h3>'
            + _img(name, group.title, _esc(", ".join(_family_names(group.features))))
            + f"<details><summary>Separation power and W1 of these {len(rows)} features"
            "</summary>"
            + _table(("feature", "separation power", "W1 / σ_ref"), rows)
            + "</details></div>"
        )
    parts.append("</div></section>")
    return "".join(parts)


def _family_names(features: Sequence[str]) -> list[str]:
    """Short description of a figure's features: each family once, with its layer range."""
    families: dict[str, list[int]] = {}
    for name in features:
        family, layer = _split_name(name)
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


def _figure_section(section_id: str, title: str, image: str, caption: str) -> str:
    """A section holding one figure and its caption."""
    return (
        f'<section id="{section_id}"><h2>{_esc(title)}</h2>'
        + _img(image, title.lower(), _esc(caption))
        + "</section>"
    )


def _spectrum_section(evaluation: Evaluation, labels: _Labels, out_dir: Path) -> str:
    name = _spectrum_figure(evaluation, labels, out_dir / "cell_spectrum.png")
    bins = evaluation.metrics.get("histogram_bins", 50)
    caption = (
        "Energy of every non-zero cell of every event (3DGAN, NYU pixel-intensity plot); the "
        f"dashed line is the threshold. SP is on {bins} reference-quantile bins of log10 E."
    )
    if "far_cell_spectrum_separation_power" in evaluation.metrics:
        caption += (
            f" The cells at {FAR_CELLS:g} cells or more from their shower's energy-weighted "
            f"centroid alone: SP {_sig(evaluation.metrics['far_cell_spectrum_separation_power'])}."
        )
    return _figure_section("spectrum", "Cell energy spectrum", name, caption)


def _response_section(evaluation: Evaluation, labels: _Labels, out_dir: Path) -> str:
    name = _response_figure(evaluation, labels, out_dir / "response.png")
    caption = (
        "E_tot / E_inc per incident energy (3DGAN's E_tot/E_p against E_p, ATLAS's energy "
        f"points): the reference as a band of ± one standard deviation, points with fewer than "
        f"{MIN_BIN_EVENTS} events left out. Ratio errors are statistical."
    )
    return _figure_section("response", "Response and resolution", name, caption)


def _correlation_section(evaluation: Evaluation, labels: _Labels, out_dir: Path) -> str:
    names = _ordered_metric_features(evaluation.metrics.get("metric_features") or [])
    if len(names) < 2:
        return (
            '<section id="correlations"><h2>Correlations</h2>'
            '<p class="note">Fewer than two metric features vary: no matrix.</p></section>'
        )
    name, (value, a, b), mean_abs = _correlation_figure(
        evaluation, names, labels, out_dir / "correlations.png"
    )
    caption = (
        f"Pearson correlations of the {len(names)} metric features (those used by FPD, KPD and "
        f"the feature classifier), grouped by family and layer. Largest difference "
        f"{value:+.2f} between {a} and {b}; mean |difference| {mean_abs:.3f}. The difference "
        "uses a symmetric colour range of its own."
    )
    return (
        '<section id="correlations"><h2>Correlations</h2>'
        + _img(name, "correlation matrices", _esc(caption))
        + "</section>"
    )


def _bins_section(evaluation: Evaluation, labels: _Labels, out_dir: Path) -> str:
    metrics = evaluation.metrics
    name = _bins_figure(evaluation, labels, out_dir / "bins.png")
    figure = (
        _img(
            name,
            "E_tot / E_inc per condition bin",
            "E_tot / E_inc in each bin of the conditions (fixed energy points as in the ATLAS "
            "study, ranges of equal reference population otherwise), with the separation power "
            f"of the table below; bins with fewer than {MIN_BIN_EVENTS} events are left out.",
        )
        if name
        else ""
    )
    rows = []
    for row in metrics.get("bins") or []:
        rows.append(
            (
                row.get("kind", ""),
                row.get("label", ""),
                str(row.get("n_ref", "")),
                str(row.get("n_gen", "")),
                _fixed(row.get("response_ref"), 4),
                _fixed(row.get("response_gen"), 4),
                _fixed(row.get("resolution_ref"), 4),
                _fixed(row.get("resolution_gen"), 4),
                _sig(row.get("separation_power_E_tot/E_inc")),
            )
        )
    bins = (
        _table(
            (
                "kind",
                "bin",
                "n ref",
                "n gen",
                "response ref",
                "response gen",
                "resolution ref",
                "resolution gen",
                "SP E_tot/E_inc",
            ),
            rows,
            text_columns=2,
        )
        if rows
        else '<p class="note">No condition bins.</p>'
    )
    conditions = metrics.get("conditions") or {}
    p_values = conditions.get("ks_p_values") or {}
    ks = _table(("condition", "KS p-value"), [(k, _sig(v)) for k, v in p_values.items()])
    return (
        '<section id="bins"><h2>Per-bin comparison and conditions</h2>'
        f"{figure}{bins}"
        '<p class="note">Response = mean E_tot / E_inc, resolution = its standard deviation / '
        f"mean; n/a where a bin holds fewer than {MIN_BIN_EVENTS} events of either sample.</p>"
        "<h3>Condition distributions</h3>"
        f"{ks}"
        '<p class="note">Two-sample Kolmogorov–Smirnov test per condition; smallest p '
        f"Bonferroni-corrected: {_esc(_sig(conditions.get('p_min_corrected')))}. A small p "
        "means the samples were generated for different conditions, so differences above may "
        "come from the conditions rather than the model.</p></section>"
    )


def _producer_text(producer: Any) -> str:
    if not producer:
        return "(not recorded)"
    if isinstance(producer, dict):
        return ", ".join(f"{k}: {v}" for k, v in producer.items())
    return str(producer)


def _provenance_section(metrics: dict[str, Any]) -> str:
    provenance = metrics.get("provenance") or {}
    ref, gen = provenance.get("reference") or {}, provenance.get("generated") or {}

    def value(entry: dict[str, Any], key: str) -> str:
        v = entry.get(key)
        return "(not recorded)" if v is None or v == "" else str(v)

    files = [
        ("path", value(ref, "path"), value(gen, "path")),
        ("producer", _producer_text(ref.get("producer")), _producer_text(gen.get("producer"))),
        ("seed", value(ref, "seed"), value(gen, "seed")),
        ("source", value(ref, "source"), value(gen, "source")),
        ("caloforge version", value(ref, "caloforge_version"), value(gen, "caloforge_version")),
        (
            "events used / in file",
            f"{value(ref, 'events_used')} / {value(ref, 'events_in_file')}",
            f"{value(gen, 'events_used')} / {value(gen, 'events_in_file')}",
        ),
    ]
    classifier = metrics.get("classifier") or {}
    evaluation_rows = [
        ("detector", str(metrics.get("detector"))),
        ("evaluation seed", str(metrics.get("seed"))),
        ("threshold", f"{_sig(metrics.get('threshold_mev'))} MeV"),
        ("caloforge version", str(metrics.get("caloforge_version", "(not recorded)"))),
    ]
    for level, result in classifier.items():
        evaluation_rows.append(
            (
                f"classifier ({level})",
                f"AUC {_fixed(result.get('auc'), 4)}, JSD {_sig(result.get('jsd'))}, "
                f"train/val/test {result.get('n_train')}/{result.get('n_val')}/"
                f"{result.get('n_test')}, best epoch {result.get('best_epoch')} of "
                f"{result.get('epochs')}, {result.get('settings', 'protocol')} settings",
            )
        )
    return (
        '<section id="provenance"><h2>Provenance</h2>'
        f"{_key_value_table(('', 'reference', 'generated'), files)}<h3>Evaluation</h3>"
        f"{_key_value_table(None, evaluation_rows)}</section>"
    )


def _page(metrics: dict[str, Any], labels: _Labels, sections: list[str]) -> str:
    provenance = metrics.get("provenance") or {}
    ref_path = (provenance.get("reference") or {}).get("path", "")
    gen_path = (provenance.get("generated") or {}).get("path", "")
    nav = "".join(
        f'<a href="#{key}">{title}</a>'
        for key, title in (
            ("verdict", "Verdict"),
            ("images", "Average showers"),
            ("features", "Features"),
            ("spectrum", "Cell spectrum"),
            ("response", "Response"),
            ("correlations", "Correlations"),
            ("bins", "Bins and conditions"),
            *([("clic", "3DGAN validation")] if "clic" in metrics else []),
            *([("nyu", "NYU validation")] if "nyu" in metrics else []),
            *([("breakdown", f"Per {metrics['by']['condition']}")] if "by" in metrics else []),
            ("provenance", "Provenance"),
        )
    )
    title = f"caloforge evaluation · {metrics.get('detector', '')}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><div><h1>{_esc(title)}</h1>'
        f'<p><span class="chip gen"></span>generated: <strong>{_esc(labels.generated)}</strong>'
        f" — {_esc(gen_path)}</p>"
        f'<p><span class="chip ref"></span>reference: <strong>{_esc(labels.reference)}</strong>'
        f" — {_esc(ref_path)}</p>"
        f"<nav>{nav}</nav></div></header><main>" + "".join(sections) + "</main></body></html>\n"
    )
