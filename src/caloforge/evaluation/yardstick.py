"""The evaluation's own scale, per detector: what its headline numbers read for Geant4 against
Geant4 and for known distortions of Geant4, and where an evaluation falls on it.

A number such as FPD ×10³ = 85 means little alone. Measured once per detector by
``benchmarks/evaluation_calibration.py --write`` and shipped beside the detectors
(``evaluation/yardsticks/NAME.json``), the yardstick turns it into a reading: "between every
cell ×1.05 (43) and 20 % of each cell to its neighbours (75)". The points are two independent
Geant4 samples of the same source (the floor) and copies of the second one distorted by
``distortions.DISTORTIONS``, evaluated with the same protocol and classifier as a model.

Each headline number gets a level:

- ``floor``: within the spread of Geant4 against Geant4 (up to the midpoint between the floor
  and the mildest distortion): the metric does not tell the samples apart;
- ``mild``: below the mildest distortion;
- ``between``: between two distortions;
- ``beyond``: past every distortion measured.

Departure from CaloChallenge: it quotes its metrics without such a scale; placing each number
among distortions of known size is this project's, so that a reader can judge without knowing
the estimators.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from caloforge.evaluation.schema import Metrics, finite, migrate

__all__ = [
    "HEADLINE",
    "Point",
    "Reading",
    "Yardstick",
    "headline",
    "load_yardstick",
    "read",
    "verdict",
]

HEADLINE = {
    "auc_cells": "classifier AUC · cells",
    "auc_features": "classifier AUC · features",
    "fpd_x1e3": "FPD ×10³",
    "largest_separation_power": "largest separation power",
}
"""The numbers a yardstick places, by key, with the label the report prints."""


class Point(BaseModel):
    """One pair of samples on the scale and its headline numbers."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="what the second sample is, e.g. 'every cell ×1.05'")
    values: dict[str, float] = Field(description="headline numbers by key of HEADLINE")


class Yardstick(BaseModel):
    """A detector's scale: the floor first, then the distortions."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    detector: str
    n_showers: int = Field(gt=0, description="showers in each sample of every pair")
    measured: str = Field(description="files, classifier, seed and the command that made it")
    floor: Point
    distortions: list[Point]


@dataclass(frozen=True)
class Reading:
    """Where one headline number falls on its detector's scale."""

    key: str
    value: float
    level: str
    sentence: str


def load_yardstick(detector: str) -> Yardstick | None:
    """The shipped yardstick of a detector by name, or None where none was measured."""
    path = resources.files("caloforge.evaluation") / "yardsticks" / f"{detector}.json"
    if not path.is_file():
        return None
    return Yardstick.model_validate_json(path.read_text())


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """An evaluation's headline numbers by key of HEADLINE (those that were computed)."""
    m = Metrics.model_validate(migrate(metrics))
    worst = m.largest_separation_power
    values = {
        "auc_cells": m.auc_cells,
        "auc_features": m.auc_features,
        "fpd_x1e3": m.fpd_x1e3,
        "largest_separation_power": None if worst is None else worst[1],
    }
    return {k: float(v) for k, v in values.items() if finite(v)}


def read(metrics: dict[str, Any], yardstick: Yardstick) -> list[Reading]:
    """Each headline number of ``metrics`` placed on ``yardstick``, in HEADLINE's order."""
    readings = []
    for key, value in headline(metrics).items():
        floor = yardstick.floor.values.get(key)
        points = sorted(
            ((p.values[key], p.label) for p in yardstick.distortions if key in p.values),
            key=lambda point: point[0],
        )
        if floor is None or not points:
            continue
        readings.append(_place(key, value, floor, points))
    return readings


def verdict(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """What metrics.json records under ``verdict``: each headline number read on the detector's
    yardstick, what the yardstick was measured on, and where this evaluation differs from it (a
    smaller sample, the quick classifier, another protocol). None where the detector has none."""
    yardstick = load_yardstick(str(metrics.get("detector")))
    if yardstick is None:
        return None
    caveats = []
    n = min(metrics.get("n_reference") or 0, metrics.get("n_generated") or 0)
    if n < yardstick.n_showers / 2:
        caveats.append(
            f"{n} showers against the scale's {yardstick.n_showers}: FPD's floor and the "
            "classifiers' power depend on the sample size, so the reading is rough"
        )
    classifier = metrics.get("classifier") or {}
    if any(r.get("settings") == "quick" for r in classifier.values()):
        caveats.append("the quick classifier, weaker than the scale's: its AUCs read low")
    if metrics.get("protocol", "caloforge") != "caloforge":
        caveats.append(f"protocol {metrics.get('protocol')}, not the scale's caloforge")
    return {
        "measured": yardstick.measured,
        "caveats": caveats,
        "readings": [vars(r) for r in read(metrics, yardstick)],
    }


def _place(key: str, value: float, floor: float, points: list[tuple[float, str]]) -> Reading:
    name, shown = HEADLINE[key], _number(key, value)
    mildest, mild_label = points[0]
    if value <= (floor + mildest) / 2:
        level = "floor"
        sentence = (
            f"{name} {shown}: as Geant4 against Geant4 ({_number(key, floor)}) within the "
            f"scale's resolution; the mildest distortion, {mild_label}, reads "
            f"{_number(key, mildest)}."
        )
    elif value <= mildest:
        level = "mild"
        sentence = (
            f"{name} {shown}: between Geant4 against Geant4 ({_number(key, floor)}) and "
            f"{mild_label} ({_number(key, mildest)})."
        )
    elif value <= points[-1][0]:
        level = "between"
        below = max((p for p in points if p[0] < value), key=lambda p: p[0])
        above = min((p for p in points if p[0] >= value), key=lambda p: p[0])
        sentence = (
            f"{name} {shown}: between {below[1]} ({_number(key, below[0])}) and "
            f"{above[1]} ({_number(key, above[0])})."
        )
    else:
        level = "beyond"
        worst, worst_label = points[-1]
        sentence = (
            f"{name} {shown}: beyond every distortion measured, the largest being "
            f"{worst_label} ({_number(key, worst)})."
        )
    return Reading(key, value, level, sentence)


def _number(key: str, value: float) -> str:
    if key == "fpd_x1e3":
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.3f}"
