"""The report page: each section's figures drawn and its template's data prepared.

Python draws the figures and turns the metrics into plain data (formatted numbers, rows of
tables, file names); the Jinja2 templates of ``evaluation/templates/`` make all of the HTML,
with autoescape on: ``page.html`` the skeleton (``report.css`` inlined, the navigation, one
section element per :class:`Section`), one template per section, and ``macros.html`` the
figures and tables they share. Each study validation of
:data:`~caloforge.evaluation.validations.VALIDATIONS` whose key is in the metrics brings its
template and its data, and gets a section and a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from caloforge.errors import checked
from caloforge.evaluation.evaluate import MIN_BIN_EVENTS, Evaluation
from caloforge.evaluation.observables import FAR_CELLS
from caloforge.evaluation.report.features import (
    family_names,
    feature_groups,
    ordered_metric_features,
)
from caloforge.evaluation.report.figures import (
    bins_figure,
    correlation_figure,
    features_figure,
    images_figure,
    layer_profile_figure,
    response_figure,
    spectrum_figure,
)
from caloforge.evaluation.report.formatting import fixed, sig, with_error, worst_features
from caloforge.evaluation.report.plotting import Labels, sample_labels, style
from caloforge.evaluation.report.summary import breakdown_rows, cells_auc, quick_label
from caloforge.evaluation.validations import VALIDATIONS, Validation
from caloforge.files import atomic_write_text

__all__ = ["TEMPLATES", "Section", "render", "verdict_section", "write_report"]

WORST_FEATURES = 5

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("caloforge.evaluation", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
"""Every part of the page is a template of ``evaluation/templates/``."""


def render(template: str, **context: Any) -> Markup:
    """A template of ``evaluation/templates/`` rendered with ``context``, escaped as it went."""
    return Markup(TEMPLATES.get_template(template).render(**context))


@dataclass(frozen=True)
class Section:
    """One section of the page: its id, its link in the navigation, its heading, its HTML."""

    key: str
    nav: str
    title: str
    body: Markup


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
    labels = sample_labels(metrics.get("provenance", {}))
    sections = [verdict_section(metrics, labels)]
    with style():
        sections += [
            _images_section(evaluation, labels, out_dir),
            _features_section(evaluation, labels, out_dir),
            _spectrum_section(evaluation, labels, out_dir),
            _response_section(evaluation, labels, out_dir),
            _correlation_section(evaluation, labels, out_dir),
            _bins_section(evaluation, labels, out_dir),
        ]
        sections += [
            _validation_section(validation, evaluation, labels, out_dir)
            for validation in VALIDATIONS
            if validation.KEY in metrics
        ]
    if "by" in metrics:
        sections.append(_breakdown_section(metrics["by"]))
    sections.append(_provenance_section(metrics))
    provenance = metrics.get("provenance") or {}
    page = render(
        "page.html",
        title=f"caloforge evaluation · {metrics.get('detector', '')}",
        labels=labels,
        reference_path=(provenance.get("reference") or {}).get("path", ""),
        generated_path=(provenance.get("generated") or {}).get("path", ""),
        sections=sections,
    )
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path


def _far_cells(metrics: dict[str, Any]) -> dict[str, str] | None:
    """The far cells' spectrum, where it was measured (a one-layer cartesian readout)."""
    if "far_cell_spectrum_separation_power" not in metrics:
        return None
    return {
        "distance": f"{FAR_CELLS:g}",
        "separation_power": sig(metrics["far_cell_spectrum_separation_power"]),
    }


def verdict_section(metrics: dict[str, Any], labels: Labels) -> Section:
    """The verdict: the readings on the detector's scale, the headline numbers as cards, the
    features of largest separation power and the notes."""
    classifier = metrics.get("classifier") or {}
    ran = bool(classifier)
    auc_hint = "0.5 = indistinguishable, 1 = separable" if ran else "classifier not run"
    quick = quick_label(metrics)
    cells_hint = auc_hint
    if ran:
        cells_hint = (
            f"the larger of network{quick} {fixed(metrics.get('auc_cells_network'), 3)} and "
            f"boosted trees {fixed(metrics.get('auc_cells_trees'), 3)}; {auc_hint}"
        )
    cards = [
        ("classifier AUC · cells", fixed(cells_auc(metrics), 3), cells_hint),
        (f"classifier AUC · features{quick}", fixed(metrics.get("auc_features"), 3), auc_hint),
        (
            "FPD ×10³",
            with_error(metrics.get("fpd_x1e3"), metrics.get("fpd_x1e3_err")),
            "Fréchet distance of features; 0 = same",
        ),
        (
            "KPD ×10³",
            with_error(metrics.get("kpd_x1e3"), metrics.get("kpd_x1e3_err")),
            "kernel distance of features; 0 = same",
        ),
        (
            "events",
            f"{metrics.get('n_reference')} / {metrics.get('n_generated')}",
            "reference / generated",
        ),
        (
            "threshold",
            f"{sig(metrics.get('threshold_mev'))} MeV",
            f"{metrics.get('energy_unit', 'visible MeV')}; cells below are zeroed in both",
        ),
    ]
    w1 = metrics.get("w1") or {}
    reading = metrics.get("verdict") or {}
    body = render(
        "verdict.html",
        readings=reading.get("readings", []),
        measured=reading.get("measured", ""),
        caveats=reading.get("caveats", []),
        detector=metrics.get("detector", ""),
        cards=[{"label": label, "value": value, "hint": hint} for label, value, hint in cards],
        classifier_ran=ran,
        quick=bool(quick),
        worst=[
            (name, sig(sp), sig(w1.get(name)))
            for name, sp in worst_features(metrics, WORST_FEATURES)
        ],
        histogram_bins=metrics.get("histogram_bins", 50),
        cell_spectrum=sig(metrics.get("cell_spectrum_separation_power")),
        far=_far_cells(metrics),
        notes=metrics.get("notes") or [],
    )
    return Section("verdict", "Verdict", "Verdict", body)


def _images_section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> Section:
    image, chosen = images_figure(evaluation, labels, out_dir / "shower_images.png")
    n_layers = len(evaluation.detector.readout_layers)
    body = render(
        "images.html",
        image=image,
        every_layer=len(chosen) == n_layers,
        shown=len(chosen),
        n_layers=n_layers,
    )
    return Section("images", "Average showers", "Average showers", body)


def _features_section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> Section:
    layer_profiles = None
    if len(evaluation.detector.readout_layers) > 1:
        layer_profiles = layer_profile_figure(evaluation, labels, out_dir / "layer_profiles.png")
    powers = evaluation.metrics.get("separation_power", {})
    w1 = evaluation.metrics.get("w1", {})
    shown = [
        {
            "title": group.title,
            "image": features_figure(
                evaluation, group.rows, labels, out_dir / f"features_{group.key}.png"
            ),
            "families": ", ".join(family_names(group.features)),
            "rows": [(n, sig(powers.get(n)), sig(w1.get(n))) for n in group.features],
        }
        for group in feature_groups(evaluation.features)
    ]
    body = render(
        "features.html",
        n_features=len(evaluation.features),
        labels=labels,
        layer_profiles=layer_profiles,
        groups=shown,
    )
    return Section("features", "Features", "Features", body)


def _spectrum_section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> Section:
    body = render(
        "spectrum.html",
        image=spectrum_figure(evaluation, labels, out_dir / "cell_spectrum.png"),
        histogram_bins=evaluation.metrics.get("histogram_bins", 50),
        far=_far_cells(evaluation.metrics),
    )
    return Section("spectrum", "Cell spectrum", "Cell energy spectrum", body)


def _response_section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> Section:
    body = render(
        "response.html",
        image=response_figure(evaluation, labels, out_dir / "response.png"),
        min_events=MIN_BIN_EVENTS,
    )
    return Section("response", "Response", "Response and resolution", body)


def _correlation_section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> Section:
    names = ordered_metric_features(evaluation.metrics.get("metric_features") or [])
    context: dict[str, Any] = {"image": None}
    if len(names) >= 2:
        image, (value, first, second), mean_abs = correlation_figure(
            evaluation, names, labels, out_dir / "correlations.png"
        )
        context = {
            "image": image,
            "n_features": len(names),
            "largest": {"difference": f"{value:+.2f}", "first": first, "second": second},
            "mean_abs": f"{mean_abs:.3f}",
        }
    body = render("correlations.html", **context)
    return Section("correlations", "Correlations", "Correlations", body)


def _bins_section(evaluation: Evaluation, labels: Labels, out_dir: Path) -> Section:
    metrics = evaluation.metrics
    rows = [
        (
            row.get("kind", ""),
            row.get("label", ""),
            str(row.get("n_ref", "")),
            str(row.get("n_gen", "")),
            fixed(row.get("response_ref"), 4),
            fixed(row.get("response_gen"), 4),
            fixed(row.get("resolution_ref"), 4),
            fixed(row.get("resolution_gen"), 4),
            sig(row.get("separation_power_E_tot/E_inc")),
        )
        for row in metrics.get("bins") or []
    ]
    conditions = metrics.get("conditions") or {}
    p_values = conditions.get("ks_p_values") or {}
    body = render(
        "bins.html",
        image=bins_figure(evaluation, labels, out_dir / "bins.png"),
        rows=rows,
        min_events=MIN_BIN_EVENTS,
        p_values=[(name, sig(p)) for name, p in p_values.items()],
        p_min=sig(conditions.get("p_min_corrected")),
    )
    return Section("bins", "Bins and conditions", "Per-bin comparison and conditions", body)


def _validation_section(
    validation: Validation, evaluation: Evaluation, labels: Labels, out_dir: Path
) -> Section:
    body = render(validation.TEMPLATE, **validation.section(evaluation, labels, out_dir))
    return Section(validation.KEY, validation.TITLE, validation.TITLE, body)


def _breakdown_section(by: dict[str, Any]) -> Section:
    header, *rows = breakdown_rows(by)
    condition = by["condition"]
    body = render(
        "breakdown.html", condition=condition, header=header, rows=rows, min_events=MIN_BIN_EVENTS
    )
    return Section("breakdown", f"Per {condition}", f"Per value of {condition}", body)


def _producer_text(producer: Any) -> str:
    if not producer:
        return "(not recorded)"
    if isinstance(producer, dict):
        return ", ".join(f"{k}: {v}" for k, v in producer.items())
    return str(producer)


def _provenance_section(metrics: dict[str, Any]) -> Section:
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
    evaluation = [
        ("detector", str(metrics.get("detector"))),
        ("evaluation seed", str(metrics.get("seed"))),
        ("threshold", f"{sig(metrics.get('threshold_mev'))} MeV"),
        ("caloforge version", str(metrics.get("caloforge_version", "(not recorded)"))),
    ]
    for level, result in (metrics.get("classifier") or {}).items():
        evaluation.append(
            (
                f"classifier ({level})",
                f"AUC {fixed(result.get('auc'), 4)}, JSD {sig(result.get('jsd'))}, "
                f"train/val/test {result.get('n_train')}/{result.get('n_val')}/"
                f"{result.get('n_test')}, best epoch {result.get('best_epoch')} of "
                f"{result.get('epochs')}, {result.get('settings', 'protocol')} settings",
            )
        )
    body = render("provenance.html", files=files, evaluation=evaluation)
    return Section("provenance", "Provenance", "Provenance", body)
