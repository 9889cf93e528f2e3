"""metrics.json, versioned: the headline numbers under the names and in the units the report and
the terminal print them, and the reading of files written before the names changed.

Version 2 (this one): ``auc_cells_network``, ``auc_cells_trees``, ``auc_features``, FPD and KPD
×10³ as CaloChallenge quotes them (``fpd_x1e3``, ``fpd_x1e3_err``, ``kpd_x1e3``,
``kpd_x1e3_err``), and ``schema_version``. Version 1 (no ``schema_version``) said
``classifier_auc_low``, ``classifier_auc_low_trees`` and ``classifier_auc_high`` and held FPD
and KPD unscaled; :func:`read_metrics` reads it as version 2. Everything else an evaluation
records (separation powers, per-bin tables, the study validations, provenance) passes through
as it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from caloforge.errors import CaloforgeError

__all__ = ["SCHEMA_VERSION", "Metrics", "finite", "migrate", "read_metrics"]

SCHEMA_VERSION = 2

_RENAMED = {
    "classifier_auc_low": "auc_cells_network",
    "classifier_auc_low_trees": "auc_cells_trees",
    "classifier_auc_high": "auc_features",
}
_SCALED = {
    "fpd": "fpd_x1e3",
    "fpd_err": "fpd_x1e3_err",
    "kpd": "kpd_x1e3",
    "kpd_err": "kpd_x1e3_err",
}


class Metrics(BaseModel):
    """The headline of metrics.json; the rest of the file is kept as extra fields."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    detector: str | None = None
    n_reference: int | None = None
    n_generated: int | None = None
    protocol: str = "caloforge"
    auc_cells_network: float | None = Field(
        None, description="CaloChallenge's classifier (or the quick one) on the cells"
    )
    auc_cells_trees: float | None = Field(None, description="boosted trees on the same cells")
    auc_features: float | None = Field(None, description="the classifier on the features")
    fpd_x1e3: float | None = Field(None, description="Fréchet physics distance ×10³")
    fpd_x1e3_err: float | None = None
    kpd_x1e3: float | None = Field(None, description="kernel physics distance ×10³")
    kpd_x1e3_err: float | None = None
    separation_power: dict[str, float | None] = Field(default_factory=dict)

    @property
    def auc_cells(self) -> float | None:
        """The cells AUC fidelity is judged by: the larger of the network's and the trees', each
        a lower bound on how well the cells tell the samples apart."""
        values = [v for v in (self.auc_cells_network, self.auc_cells_trees) if finite(v)]
        return max(values) if values else None

    @property
    def largest_separation_power(self) -> tuple[str, float] | None:
        """The observable the samples differ most in, and its separation power."""
        powers = {k: v for k, v in self.separation_power.items() if finite(v)}
        if not powers:
            return None
        name = min(powers, key=lambda k: (-powers[k], k))  # ties in name order
        return name, powers[name]


def migrate(metrics: dict[str, Any]) -> dict[str, Any]:
    """A metrics dict of any version as version 2 (a version-2 dict is returned unchanged); the
    per-value breakdown under ``by`` is migrated with it."""
    version = metrics.get("schema_version", 1)
    if version == SCHEMA_VERSION:
        return metrics
    if version != 1:
        raise CaloforgeError(
            f"metrics of schema version {version}; this caloforge reads 1 and {SCHEMA_VERSION}"
        )
    out = {"schema_version": SCHEMA_VERSION}
    for key, value in metrics.items():
        if key in _RENAMED:
            out[_RENAMED[key]] = value
        elif key in _SCALED:
            out[_SCALED[key]] = None if value is None else 1e3 * value
        elif key == "fpd_kpd_scale" and isinstance(value, str):
            out[key] = value.replace(
                "raw values, CaloChallenge tables quote them x 1e3",
                "×10³ as CaloChallenge's tables quote them",
            )
        else:
            out[key] = value
    if isinstance(out.get("by"), dict):
        for row in out["by"].get("values", []):
            if "metrics" in row:
                row["metrics"] = {
                    k: v for k, v in migrate(row["metrics"]).items() if k != "schema_version"
                }
    return out


def read_metrics(path: str | Path) -> Metrics:
    """A metrics.json file, of any version, as :class:`Metrics`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CaloforgeError(f"cannot read metrics {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CaloforgeError(f"{path} is not a metrics file (not a JSON object)")
    return Metrics.model_validate(migrate(data))


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (None, NaN and strings are not)."""
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))
