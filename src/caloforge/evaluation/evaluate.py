"""``evaluate``: how faithful generated showers are to reference showers.

The two files must describe the same detector and cover the same condition distribution. Cells
below the readout threshold are zeroed in both, then every high-level feature is compared by
separation power and Wasserstein-1, all of them together by FPD and KPD, and the showers by the
CaloChallenge classifier test on cells (low-level) and on features (high-level). The same
comparisons of E_tot and of the response repeat in bins of energy, angle and particle type.
Everything is seeded: the same files and seed give the same metrics.json.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.data.showerfile import CaloforgeWarning, ShowerFile
from caloforge.detectors import Detector
from caloforge.errors import CaloforgeError
from caloforge.evaluation import distances
from caloforge.evaluation.conditions import compare_conditions, condition_bins
from caloforge.evaluation.observables import (
    apply_threshold,
    cell_energies,
    high_level_features,
)

__all__ = [
    "Evaluation",
    "Sample",
    "compare",
    "evaluate",
    "load_sample",
    "write_metrics",
    "write_metrics_json",
]

P_REFUSE = 1e-3
"""Condition distributions that differ with a corrected KS p-value below this are refused."""
P_WARN = 0.05
MIN_BIN_EVENTS = 20


@dataclass
class Sample:
    """One side of a comparison: events after the threshold, their features and provenance."""

    showers: np.ndarray
    energy: np.ndarray
    conditions: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.showers)


@dataclass
class Evaluation:
    """The metrics and everything a report draws."""

    metrics: dict[str, Any]
    detector: Detector
    reference: Sample
    generated: Sample

    @property
    def features(self) -> list[str]:
        return list(self.reference.features)


def load_sample(path: str | Path, max_events: int | None, threshold: float) -> Sample:
    """Read up to ``max_events`` events of a file and apply the readout threshold."""
    f = ShowerFile(path)
    if len(f) == 0:
        raise CaloforgeError(f"{f.path} holds no events")
    if not f.complete:
        warnings.warn(
            f"{f.path} is incomplete ({len(f)}/{f.n_planned} events)",
            CaloforgeWarning,
            stacklevel=2,
        )
    data = f.read(0, max_events)
    return Sample(
        showers=apply_threshold(data.showers, threshold),
        energy=data.incident_energies[:, 0],
        conditions=data.conditions,
        provenance={
            "path": str(f.path),
            "events_used": len(data),
            "events_in_file": len(f),
            "producer": f.producer,
            "seed": f.seed,
            "source": f.source.name if f.source else None,
            "caloforge_version": f.attrs.get("caloforge_version"),
        },
    )


def _common_detector(gen: ShowerFile, ref: ShowerFile) -> Detector:
    if gen.n_cells != ref.n_cells:
        raise CaloforgeError(
            f"the files have different cell counts: {gen.path} {gen.n_cells}, "
            f"{ref.path} {ref.n_cells}"
        )
    det_gen, det_ref = gen.detector, ref.detector
    if det_gen is not None and det_ref is not None and det_gen != det_ref:
        raise CaloforgeError(
            f"the files are of different detectors: {gen.path} {det_gen.name!r}, "
            f"{ref.path} {det_ref.name!r}"
        )
    detector = det_ref or det_gen
    if detector is None:
        from caloforge.detectors import builtin_detectors, load_detector

        matches = [n for n in builtin_detectors() if load_detector(n).n_cells == ref.n_cells]
        if len(matches) != 1:
            raise CaloforgeError(
                "neither file records its detector; convert one with `caloforge convert "
                "--binning` so that its cells have positions"
            )
        detector = load_detector(matches[0])
    if detector.n_cells != ref.n_cells:
        raise CaloforgeError(
            f"detector {detector.name!r} has {detector.n_cells} cells but the files have "
            f"{ref.n_cells}"
        )
    return detector


def _metric_matrix(features: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.stack([features[n] for n in names], axis=1)


def _high_level_inputs(sample: Sample, names: list[str]) -> np.ndarray:
    """Classifier inputs: log10 of E_inc and of energies (1 keV floor), other features as is."""
    columns = [np.log10(sample.energy)]
    for name in names:
        values = sample.features[name]
        columns.append(np.log10(values + 1e-3) if name.startswith("E_") else values)
    return np.stack(columns, axis=1)


def evaluate(
    generated: str | Path,
    reference: str | Path,
    *,
    threshold: float | None = None,
    seed: int = 0,
    quick: bool = False,
    classifier: bool = True,
    max_events: int | None = None,
    allow_condition_mismatch: bool = False,
    stage: Callable[[str], None] | None = None,
) -> Evaluation:
    """Compare a generated shower file with a reference one.

    Arguments:
        generated: the file to judge.
        reference: the Geant4 (or other trusted) file.
        threshold: readout threshold in MeV; the detector's own when None.
        seed: seed of every random draw (FPD/KPD batches, classifier splits and training).
        quick: small classifier and short training, for tests and quick looks.
        classifier: run the classifier tests (the slowest part).
        max_events: use at most this many events of each file.
        allow_condition_mismatch: warn instead of refusing differing condition distributions.
        stage: called with the name of each stage as it starts (progress display).

    Returns:
        An Evaluation whose ``metrics`` is the content of metrics.json.
    """
    say = stage or (lambda _: None)
    gen_file, ref_file = ShowerFile(generated), ShowerFile(reference)
    detector = _common_detector(gen_file, ref_file)
    if gen_file.condition_names != ref_file.condition_names:
        raise CaloforgeError(
            f"the files have different conditions: {', '.join(gen_file.condition_names)} vs "
            f"{', '.join(ref_file.condition_names)}"
        )
    names = ref_file.condition_names
    threshold = detector.threshold if threshold is None else threshold
    if threshold < 0:
        raise CaloforgeError(f"threshold must not be negative, got {threshold}")
    gen = load_sample(generated, max_events, threshold)
    ref = load_sample(reference, max_events, threshold)
    return compare(
        ref,
        gen,
        detector,
        names,
        threshold=threshold,
        seed=seed,
        quick=quick,
        classifier=classifier,
        allow_condition_mismatch=allow_condition_mismatch,
        stage=say,
    )


def compare(
    ref: Sample,
    gen: Sample,
    detector: Detector,
    names: tuple[str, ...],
    *,
    threshold: float,
    seed: int = 0,
    quick: bool = False,
    classifier: bool = True,
    allow_condition_mismatch: bool = False,
    stage: Callable[[str], None] | None = None,
) -> Evaluation:
    """Compare two samples already in memory (thresholded); see ``evaluate``."""
    say = stage or (lambda _: None)
    notes: list[str] = []
    hint = f" --conditions-from {ref.provenance['path']}" if "path" in ref.provenance else ""
    check = compare_conditions(ref.conditions, gen.conditions, names)
    if check.p_min < P_REFUSE and not allow_condition_mismatch:
        raise CaloforgeError(
            f"the condition distributions differ (KS p = {check.p_values[check.worst]:.2g} "
            f"for {check.worst!r}); generate with{hint or ' the reference conditions'}, or pass "
            "--allow-condition-mismatch"
        )
    if check.p_min < P_WARN:
        message = (
            f"condition distributions may differ (corrected KS p = {check.p_min:.2g}, "
            f"worst {check.worst!r}); differences may come from the conditions, not the model"
        )
        warnings.warn(message, CaloforgeWarning, stacklevel=2)
        notes.append(message)

    for sample in (ref, gen):
        sample.features = high_level_features(
            sample.showers, detector, sample.energy, sample.conditions, names
        )
    feature_names = list(ref.features)
    bins = histogram_bins(len(ref))
    separation = {
        n: distances.separation_power(ref.features[n], gen.features[n], bins) for n in feature_names
    }
    w1 = {n: distances.wasserstein1(ref.features[n], gen.features[n]) for n in feature_names}
    spectrum = _cell_spectrum_separation(ref.showers, gen.showers, bins)

    # FPD, KPD and the high-level classifier use the features that vary in the reference; the
    # spreads repeat the widths.
    varying = [
        n for n in feature_names if ref.features[n].std() > 0 and not n.startswith("spread_")
    ]
    say("FPD and KPD")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # In the reference's standard units: features come in MeV, mm and pure numbers, and
        # KPD's polynomial kernel is not scale-invariant, so raw values let E_tot dominate.
        ref_matrix = _metric_matrix(ref.features, varying)
        centre, scale = ref_matrix.mean(axis=0), ref_matrix.std(axis=0)
        ref_matrix = (ref_matrix - centre) / scale
        gen_matrix = (_metric_matrix(gen.features, varying) - centre) / scale
        fpd, fpd_err = distances.fpd(ref_matrix, gen_matrix, seed=seed)
        kpd, kpd_err = distances.kpd(ref_matrix, gen_matrix, seed=seed)
    notes += sorted({str(w.message) for w in caught})

    results: dict[str, Any] = {}
    if classifier:
        from caloforge.evaluation.classifier import classifier_auc, low_level_inputs

        say("classifier (cells)")
        results["low"] = classifier_auc(
            low_level_inputs(ref.showers, ref.energy),
            low_level_inputs(gen.showers, gen.energy),
            seed=seed,
            quick=quick,
        )
        say("classifier (features)")
        results["high"] = classifier_auc(
            _high_level_inputs(ref, varying),
            _high_level_inputs(gen, varying),
            seed=seed,
            quick=quick,
        )

    say("bins")
    per_bin = _binned(ref, gen, names)
    metrics = {
        "n_generated": len(gen),
        "n_reference": len(ref),
        "classifier_auc_low": results["low"].auc if classifier else None,
        "classifier_auc_high": results["high"].auc if classifier else None,
        "fpd": fpd,
        "fpd_err": fpd_err,
        "kpd": kpd,
        "kpd_err": kpd_err,
        "fpd_kpd_scale": (
            "features standardised by the reference's mean and std; raw values, "
            "CaloChallenge tables quote them x 1e3"
        ),
        "separation_power": separation,
        "w1": w1,
        "cell_spectrum_separation_power": spectrum,
        "observables": feature_names,
        "metric_features": varying,
        "classifier": {k: vars(v) | {"quick": quick} for k, v in results.items()},
        "histogram_bins": bins,
        "threshold_mev": threshold,
        "seed": seed,
        "conditions": {
            "names": list(names),
            "ks_p_values": check.p_values,
            "p_min_corrected": check.p_min,
        },
        "bins": per_bin,
        "notes": notes,
        "detector": detector.name,
        "provenance": {"generated": gen.provenance, "reference": ref.provenance},
    }
    from caloforge import __version__

    metrics["caloforge_version"] = __version__
    return Evaluation(metrics=metrics, detector=detector, reference=ref, generated=gen)


def histogram_bins(n_reference: int) -> int:
    """Bins of the separation-power histograms: √N between 10 and 50.

    CaloChallenge's 50 bins suit its 100 000 showers; with a few hundred, 50 bins hold a few
    events each and the separation power of two samples of the same physics rises to ~0.1.
    """
    return int(np.clip(np.sqrt(n_reference), 10, 50))


def _cell_spectrum_separation(ref: np.ndarray, gen: np.ndarray, bins: int) -> float:
    """Separation power of the non-zero cell energies, in log10, on the reference's bins."""
    a, b = cell_energies(ref), cell_energies(gen)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return distances.separation_power(np.log10(a), np.log10(b), bins)


def _binned(ref: Sample, gen: Sample, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per-bin response, resolution and E_tot separation power."""
    rows = []
    for b in condition_bins(ref.energy, ref.conditions, gen.energy, gen.conditions, names):
        n_ref, n_gen = int(b.ref.sum()), int(b.gen.sum())
        row: dict[str, Any] = {"kind": b.kind, "label": b.label, "n_ref": n_ref, "n_gen": n_gen}
        if min(n_ref, n_gen) >= MIN_BIN_EVENTS:
            for side, sample, mask in (("ref", ref, b.ref), ("gen", gen, b.gen)):
                e_tot = sample.features["E_tot"][mask]
                response = sample.features["E_tot/E_inc"][mask]
                row[f"response_{side}"] = float(response.mean())
                row[f"resolution_{side}"] = float(
                    response.std() / response.mean() if response.mean() > 0 else np.nan
                )
                row[f"E_tot_mean_{side}"] = float(e_tot.mean())
            row["separation_power_E_tot/E_inc"] = distances.separation_power(
                ref.features["E_tot/E_inc"][b.ref], gen.features["E_tot/E_inc"][b.gen], 20
            )
        rows.append(row)
    return rows


def write_metrics(evaluation: Evaluation, out_dir: str | Path) -> Path:
    """Write the evaluation's metrics.json into ``out_dir``."""
    return write_metrics_json(evaluation.metrics, out_dir)


def write_metrics_json(metrics: dict[str, Any], out_dir: str | Path) -> Path:
    """Write metrics.json (NaN and infinities as null) into ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(metrics), indent=2) + "\n")
    tmp.replace(path)
    return path


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
