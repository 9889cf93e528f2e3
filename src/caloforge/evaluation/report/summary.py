"""The headline numbers of an evaluation as rows of text, for the terminal and the page.

These read ``metrics.json`` alone (or ``Evaluation.metrics``), so they serve a report written
long ago as well as one just made, and import no plotting.
"""

from __future__ import annotations

from typing import Any

from caloforge.evaluation.observables import FAR_CELLS
from caloforge.evaluation.report.formatting import fixed, sig, with_error, worst_features
from caloforge.evaluation.schema import Metrics, migrate

__all__ = ["breakdown_rows", "cells_auc", "quick_label", "summary_rows"]


def quick_label(metrics: dict[str, Any]) -> str:
    """Where the quick classifier made the AUCs, which understate differences: " (quick)"."""
    classifier = metrics.get("classifier") or {}
    return " (quick)" if any(r.get("settings") == "quick" for r in classifier.values()) else ""


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
        worst = worst_features(m, 1)
        rows.append(
            (
                f"{row['value']:g}",
                events,
                f"{fixed(m.get('auc_cells_network'), 3)} / {fixed(m.get('auc_cells_trees'), 3)}",
                fixed(m.get("auc_features"), 3),
                with_error(m.get("fpd_x1e3"), m.get("fpd_x1e3_err")),
                f"{worst[0][0]}: {sig(worst[0][1])}" if worst else "n/a",
                f"{sig(row['response_ref'])} / {sig(row['response_gen'])}",
                f"{sig(row['resolution_ref'])} / {sig(row['resolution_gen'])}",
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
    quick = quick_label(metrics)
    rows = [
        (
            "events (reference / generated)",
            f"{m.n_reference} / {m.n_generated}",
        ),
        (f"classifier AUC, cells{quick}", fixed(m.auc_cells_network, 3)),
        (
            "classifier AUC, cells, boosted trees",
            fixed(m.auc_cells_trees, 3),
        ),
        (f"classifier AUC, features{quick}", fixed(m.auc_features, 3)),
        ("FPD ×10³", with_error(m.fpd_x1e3, m.fpd_x1e3_err)),
        ("KPD ×10³", with_error(m.kpd_x1e3, m.kpd_x1e3_err)),
        (
            "largest separation power",
            f"{worst[0]}: {sig(worst[1])}" if worst else "n/a",
        ),
        ("cell spectrum separation power", sig(metrics.get("cell_spectrum_separation_power"))),
    ]
    if "far_cell_spectrum_separation_power" in metrics:
        rows.append((
            f"far cell spectrum separation power (r ≥ {FAR_CELLS:g} cells)",
            sig(metrics["far_cell_spectrum_separation_power"]),
        ))  # fmt: skip
    conditions = metrics.get("conditions") or {}
    if conditions.get("ks_p_values"):
        rows.append(("conditions KS p (corrected, smallest)", sig(conditions["p_min_corrected"])))
    return rows


def cells_auc(metrics: dict[str, Any]) -> float | None:
    """The cells AUC that fidelity is judged by (:attr:`Metrics.auc_cells`): the larger of the
    network's and the boosted trees', each a lower bound; None when neither was computed.

    Example:
        >>> cells_auc({"auc_cells_network": 0.61, "auc_cells_trees": 0.72})
        0.72
    """
    return Metrics.model_validate(migrate(metrics)).auc_cells
