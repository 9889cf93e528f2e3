"""``evaluate``: how faithful generated showers are to reference showers.

The two files must describe the same detector, hold energies in the same unit and cover the same
condition distribution. Cells below the readout threshold are zeroed in both, then every
high-level feature is compared by separation power and Wasserstein-1, all of them together by FPD
and KPD, and the showers by the CaloChallenge classifier test on cells (low-level) and on
features (high-level), with a second opinion on the cells from gradient-boosted trees. The
spectrum of the cell energies is compared by separation power, on a one-layer cartesian readout
that of the cells far from the shower's centroid too. The same comparisons of E_tot and of the
response repeat in bins of energy, angle and particle type. On the detectors and conditions of a
seed study, that study's own comparison runs too (``caloforge.evaluation.validations``).
Everything is seeded: the same files and seed give the same metrics.json.

Two protocols. ``caloforge`` (the default) uses the project's estimators: separation powers on
√N bins at the reference's quantiles with under- and overflow counted, FPD and KPD on features
standardised by the reference and drawn without replacement, so that they do not depend on the
features' units, ranges or the sample size. ``calochallenge`` reproduces CaloChallenge's own
numbers (``caloforge.evaluation.calochallenge``). The classifier follows CaloChallenge's
protocol in both.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.data.showerfile import CALIBRATED, CaloforgeWarning, EnergyUnit, ShowerFile
from caloforge.detectors import Detector
from caloforge.errors import CaloforgeError, checked
from caloforge.evaluation import distances
from caloforge.evaluation.conditions import (
    MAX_ENERGY_POINTS,
    compare_conditions,
    condition_bins,
)
from caloforge.evaluation.observables import (
    apply_threshold,
    cell_energies,
    far_cell_energies,
    high_level_features,
    one_layer_image,
    response_and_resolution,
)
from caloforge.evaluation.schema import SCHEMA_VERSION
from caloforge.evaluation.validations import VALIDATIONS
from caloforge.evaluation.yardstick import verdict
from caloforge.files import atomic_write_text

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
CHUNK_CELLS = 1 << 24
"""Cells per chunk of events (64 MB of float32): 258 events of clic-ecal's 65 025 cells."""
RESPONSE_RATIO_WARN = 2.0
"""Median E_tot/E_inc of the two files differing by more than this factor is warned about:
usually a unit mismatch, not a model."""
PROTOCOLS = ("caloforge", "calochallenge")
_SHARED_KEYS = (
    "schema_version",
    "provenance",
    "caloforge_version",
    "detector",
    "seed",
    "conditions",
    "protocol",
)
"""Keys of metrics.json that a breakdown's rows would only repeat."""


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

    def per_event(
        self, function: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """``function(showers, energy, conditions)`` of every event, computed in chunks of
        events (:func:`in_chunks`): what the study validations measure their samples with."""
        return in_chunks(function, self)


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


def chunk_events(n_cells: int) -> int:
    """Events per chunk when reading or measuring showers: CHUNK_CELLS cells at most."""
    return max(1, CHUNK_CELLS // n_cells)


def in_chunks(
    function: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]],
    sample: Sample,
) -> dict[str, np.ndarray]:
    """``function(showers, energy, conditions)`` over chunks of events, arrays concatenated:
    the temporaries of per-event observables stay the size of a chunk."""
    step = chunk_events(sample.showers.shape[1])
    parts = [
        function(*(x[i : i + step] for x in (sample.showers, sample.energy, sample.conditions)))
        for i in range(0, len(sample), step)
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def load_sample(
    path: str | Path, max_events: int | None, threshold: float, scale: float = 1.0
) -> Sample:
    """Read up to ``max_events`` events of a file, multiply the cells by ``scale`` and apply
    the readout threshold (in the scaled unit)."""
    f = ShowerFile(path)
    if len(f) == 0:
        raise CaloforgeError(f"{f.path} holds no events")
    if not f.complete:
        warnings.warn(
            f"{f.path} is incomplete ({len(f)}/{f.n_planned} events)",
            CaloforgeWarning,
            stacklevel=2,
        )
    n = len(f) if max_events is None else min(len(f), max_events)
    showers = np.empty((n, f.n_cells), dtype=np.float32)
    energy, conditions = [], []
    for start in range(0, n, chunk_events(f.n_cells)):  # no second copy of all cells
        data = f.read(start, min(n, start + chunk_events(f.n_cells)))
        cells = data.showers if scale == 1.0 else data.showers * np.float32(scale)
        showers[start : start + len(data)] = apply_threshold(cells, threshold)
        energy.append(data.incident_energies[:, 0])
        conditions.append(data.conditions)
    return Sample(
        showers=showers,
        energy=np.concatenate(energy),
        conditions=np.concatenate(conditions),
        provenance={
            "path": str(f.path),
            "events_used": n,
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


def _common_unit(gen: ShowerFile, ref: ShowerFile, detector: Detector) -> EnergyUnit:
    """The files' energy unit; refuses two that differ.

    A file that does not state its unit (a foreign file) is taken, for a detector with a
    sampling fraction, to follow CaloChallenge's convention (calibrated by that fraction, as
    its dataset 2 and 3 files are); otherwise to be in the other file's unit, or visible MeV.
    """

    convention = (
        None if detector.sampling_fraction is None
        else EnergyUnit(CALIBRATED, detector.sampling_fraction)
    )  # fmt: skip
    gen_unit, ref_unit = gen.energy_unit or convention, ref.energy_unit or convention
    if gen_unit is not None and ref_unit is not None and gen_unit != ref_unit:
        assumed = ""
        if None in (gen.energy_unit, ref.energy_unit):
            assumed = " (a file that states no unit is taken as CaloChallenge's)"
        raise CaloforgeError(
            f"the files hold energies in different units: {gen.path} {gen_unit}, {ref.path} "
            f"{ref_unit}{assumed}; convert one (caloforge convert --from/--to calochallenge)"
        )
    return ref_unit or gen_unit or EnergyUnit()


@checked
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
    protocol: str = "caloforge",
    by: str | None = None,
    stage: Callable[[str], None] | None = None,
) -> Evaluation:
    """Compare a generated shower file with a reference one.

    Arguments:
        generated: the file to judge.
        reference: the Geant4 (or other trusted) file.
        threshold: readout threshold in visible MeV; the detector's own when None.
        seed: seed of every random draw (FPD/KPD batches, classifier splits and training).
        quick: the quick classifier (``classifier.QUICK``) instead of CaloChallenge's.
        classifier: run the classifier tests (the slowest part).
        max_events: use at most this many events of each file.
        allow_condition_mismatch: warn instead of refusing differing condition distributions.
        protocol: ``caloforge`` (the project's estimators) or ``calochallenge`` (its own).
        by: a discrete condition (``energy`` for the ATLAS source's nine energies): every
            metric is computed again for each of its values, under ``by`` in the metrics.
        stage: called with the name of each stage as it starts (progress display).

    Returns:
        An Evaluation whose ``metrics`` is the content of metrics.json.
    """
    say = stage or (lambda _: None)
    if protocol not in PROTOCOLS:
        raise CaloforgeError(f"unknown protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")
    gen_file, ref_file = ShowerFile(generated), ShowerFile(reference)
    detector = _common_detector(gen_file, ref_file)
    if gen_file.condition_names != ref_file.condition_names:
        raise CaloforgeError(
            f"the files have different conditions: {', '.join(gen_file.condition_names)} vs "
            f"{', '.join(ref_file.condition_names)}"
        )
    names = ref_file.condition_names
    unit = _common_unit(gen_file, ref_file, detector)
    visible_threshold = detector.threshold if threshold is None else threshold
    if visible_threshold < 0:
        raise CaloforgeError(f"threshold must not be negative, got {visible_threshold}")
    scale = 1.0
    if protocol == "calochallenge":
        from caloforge.evaluation.calochallenge import check_geometry

        check_geometry(detector)
        if unit.kind != CALIBRATED:
            if detector.sampling_fraction is None:
                raise CaloforgeError(
                    f"the calochallenge protocol needs calibrated energies, and detector "
                    f"{detector.name!r} has no sampling fraction to calibrate with"
                )
            unit, scale = (
                EnergyUnit(CALIBRATED, detector.sampling_fraction),
                (1.0 / detector.sampling_fraction),
            )
    threshold = unit.threshold(visible_threshold)
    gen = load_sample(generated, max_events, threshold, scale)
    ref = load_sample(reference, max_events, threshold, scale)
    values = None if by is None else _discrete_values(ref, names, by, ref_file.path)
    options = dict(
        threshold=threshold,
        unit=unit,
        seed=seed,
        quick=quick,
        classifier=classifier,
        allow_condition_mismatch=allow_condition_mismatch,
        protocol=protocol,
    )
    result = compare(ref, gen, detector, names, stage=say, **options)
    if values is not None:
        result.metrics["by"] = _breakdown(ref, gen, detector, names, by, values, options, say)
    if (reading := verdict(result.metrics)) is not None:
        result.metrics["verdict"] = reading
    return result


def _condition_column(sample: Sample, names: tuple[str, ...], name: str) -> np.ndarray:
    return sample.energy if name == "energy" else sample.conditions[:, names.index(name)]


def _discrete_values(ref: Sample, names: tuple[str, ...], by: str, path) -> np.ndarray:
    """The values of the discrete condition ``by`` in the reference; refuses others."""
    if by != "energy" and by not in names:
        raise CaloforgeError(
            f"--by {by}: {path} has no condition {by!r}; its conditions are {', '.join(names)}"
        )
    values = np.unique(_condition_column(ref, names, by))
    if len(values) >= MAX_ENERGY_POINTS:
        raise CaloforgeError(
            f"--by {by}: {path} has {len(values)} distinct values of {by}, not a discrete "
            f"condition (fewer than {MAX_ENERGY_POINTS}, such as the atlas source's energies)"
        )
    return values


def _breakdown(ref, gen, detector, names, by, values, options, say) -> dict[str, Any]:
    """Every metric again for the events of each value of ``by``."""
    rows = []
    for value in values:
        masks = [np.isclose(_condition_column(s, names, by), value, rtol=1e-6) for s in (ref, gen)]
        counts = [int(m.sum()) for m in masks]
        row: dict[str, Any] = {"value": float(value), "n_ref": counts[0], "n_gen": counts[1]}
        if min(counts) >= MIN_BIN_EVENTS:
            say(f"{by} = {value:g}")
            subsets = [
                Sample(s.showers[m], s.energy[m], s.conditions[m], s.provenance)
                for s, m in zip((ref, gen), masks, strict=True)
            ]
            metrics = compare(*subsets, detector, names, **options).metrics
            row["metrics"] = {k: v for k, v in metrics.items() if k not in _SHARED_KEYS}
            for side, sample in zip(("ref", "gen"), subsets, strict=True):
                response = sample.features["E_tot/E_inc"]
                row[f"response_{side}"], row[f"resolution_{side}"] = response_and_resolution(
                    response
                )
        rows.append(row)
    return {"condition": by, "values": rows}


def compare(
    ref: Sample,
    gen: Sample,
    detector: Detector,
    names: tuple[str, ...],
    *,
    threshold: float,
    unit: EnergyUnit | None = None,
    seed: int = 0,
    quick: bool = False,
    classifier: bool = True,
    allow_condition_mismatch: bool = False,
    protocol: str = "caloforge",
    stage: Callable[[str], None] | None = None,
) -> Evaluation:
    """Compare two samples already in memory (thresholded, in ``unit``); see ``evaluate``."""
    say = stage or (lambda _: None)
    unit = unit or EnergyUnit()
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
        sample.features = in_chunks(
            lambda s, e, c: high_level_features(s, detector, e, c, names), sample
        )
    responses = [float(np.median(s.features["E_tot/E_inc"])) for s in (ref, gen)]
    if min(responses) <= 0 or max(responses) / min(responses) > RESPONSE_RATIO_WARN:
        message = (
            f"the median E_tot/E_inc differ by more than a factor {RESPONSE_RATIO_WARN:g} "
            f"(reference {responses[0]:.3g}, generated {responses[1]:.3g}): are the files in "
            "the same energy unit?"
        )
        warnings.warn(message, CaloforgeWarning, stacklevel=2)
        notes.append(message)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measure = _calochallenge_metrics if protocol == "calochallenge" else _caloforge_metrics
        part = measure(ref, gen, detector, threshold, seed, say)
    notes += sorted({str(w.message) for w in caught})

    results: dict[str, Any] = {}
    trees = None
    if classifier:
        from caloforge.evaluation.classifier import PROTOCOL, QUICK, boosted_auc, classifier_auc

        settings = QUICK if quick else PROTOCOL
        for level, label in (("low", "cells"), ("high", "features")):
            say(f"classifier ({label}{', quick' if quick else ''})")
            results[level] = classifier_auc(*part.inputs[level], seed=seed, settings=settings)
        say("boosted trees (cells)")
        trees = boosted_auc(*part.inputs["low"], seed=seed)

    say("bins")
    per_bin = _binned(ref, gen, names)
    seed_validation = {}
    for validation in VALIDATIONS:
        if validation.applies(detector, names):
            say(validation.TITLE)
            seed_validation[validation.KEY] = validation.measure(
                ref, gen, detector, names, threshold, seed
            )
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "n_generated": len(gen),
        "n_reference": len(ref),
        "auc_cells_network": results["low"].auc if classifier else None,
        "auc_cells_trees": trees,
        "auc_features": results["high"].auc if classifier else None,
        "fpd_x1e3": 1e3 * part.fpd[0],
        "fpd_x1e3_err": 1e3 * part.fpd[1],
        "kpd_x1e3": 1e3 * part.kpd[0],
        "kpd_x1e3_err": 1e3 * part.kpd[1],
        "fpd_kpd_scale": part.fpd_kpd_scale,
        "protocol": protocol,
        "separation_power": part.separation,
        "w1": part.w1,
        "cell_spectrum_separation_power": part.spectrum,
        **(
            {}
            if part.far_spectrum is None
            else {"far_cell_spectrum_separation_power": part.far_spectrum}
        ),
        "observables": list(ref.features),
        "metric_features": part.metric_features,
        "classifier": {k: vars(v) for k, v in results.items()},
        "histogram_bins": part.bins,
        "threshold_mev": threshold,
        "energy_unit": str(unit),
        "median_response": {"reference": responses[0], "generated": responses[1]},
        "seed": seed,
        "conditions": {
            "names": list(names),
            "ks_p_values": check.p_values,
            "p_min_corrected": check.p_min,
        },
        "bins": per_bin,
        **seed_validation,
        "notes": notes,
        "detector": detector.name,
        "provenance": {"generated": gen.provenance, "reference": ref.provenance},
    }
    from caloforge import __version__

    metrics["caloforge_version"] = __version__
    return Evaluation(metrics=metrics, detector=detector, reference=ref, generated=gen)


@dataclass
class _ProtocolMetrics:
    """What a protocol measures: histogram distances, FPD/KPD, and the classifier inputs."""

    separation: dict[str, float]
    w1: dict[str, float]
    spectrum: float
    fpd: tuple[float, float]
    kpd: tuple[float, float]
    fpd_kpd_scale: str
    metric_features: list[str]
    bins: int | str
    inputs: dict[str, tuple[np.ndarray, np.ndarray]]
    far_spectrum: float | None = None


def _caloforge_metrics(ref, gen, detector, threshold, seed, say) -> _ProtocolMetrics:
    from caloforge.evaluation.classifier import low_level_inputs

    feature_names = list(ref.features)
    bins = histogram_bins(len(ref))
    separation = {
        n: distances.separation_power(ref.features[n], gen.features[n], bins) for n in feature_names
    }
    w1 = {n: distances.wasserstein1(ref.features[n], gen.features[n]) for n in feature_names}
    spectrum = _spectrum_separation(cell_energies(ref.showers), cell_energies(gen.showers), bins)
    far_spectrum = None
    if one_layer_image(detector) is not None:
        far = [
            in_chunks(lambda s, e, c: {"far": far_cell_energies(s, detector)}, x)["far"]
            for x in (ref, gen)
        ]
        far_spectrum = _spectrum_separation(*far, bins)
    # FPD, KPD and the high-level classifier use the features that vary in the reference; the
    # spreads repeat the widths.
    varying = [
        n for n in feature_names if ref.features[n].std() > 0 and not n.startswith("spread_")
    ]
    say("FPD and KPD")
    # In the reference's standard units: features come in MeV, mm and pure numbers, and
    # KPD's polynomial kernel is not scale-invariant, so raw values let E_tot dominate.
    ref_matrix, gen_matrix = _standardised(
        _metric_matrix(ref.features, varying), _metric_matrix(gen.features, varying)
    )
    # Cells / E_inc in units of the reference's response, so that the classifier, which does
    # not standardise, sees inputs of the same size whatever the energy unit.
    response = float(np.median(ref.features["E_tot/E_inc"])) or 1.0
    return _ProtocolMetrics(
        separation=separation,
        w1=w1,
        spectrum=spectrum,
        far_spectrum=far_spectrum,
        fpd=distances.fpd(ref_matrix, gen_matrix, seed=seed),
        kpd=distances.kpd(ref_matrix, gen_matrix, seed=seed),
        fpd_kpd_scale=(
            "features standardised by the reference's mean and std, drawn without "
            "replacement; ×10³ as CaloChallenge's tables quote them"
        ),
        metric_features=varying,
        bins=bins,
        inputs={
            "low": (
                low_level_inputs(ref.showers, ref.energy, 1.0 / response),
                low_level_inputs(gen.showers, gen.energy, 1.0 / response),
            ),
            "high": _standardised(
                _high_level_inputs(ref, varying), _high_level_inputs(gen, varying)
            ),
        },
    )


def _calochallenge_metrics(ref, gen, detector, threshold, seed, say) -> _ProtocolMetrics:
    from caloforge.evaluation import calochallenge as cc
    from caloforge.evaluation.classifier import low_level_inputs

    features = [cc.high_level_features(s.showers, s.energy, detector) for s in (ref, gen)]
    edges = {n: cc.histogram_edges(n, features[0][n], threshold) for n in features[0]}
    separation = {
        n: distances.separation_power(features[0][n], features[1][n], e, drop_outside=True)
        for n, e in edges.items()
        if e is not None
    }
    w1 = {n: distances.wasserstein1(features[0][n], features[1][n]) for n in features[0]}
    ref_cells, gen_cells = cell_energies(ref.showers), cell_energies(gen.showers)
    spectrum = distances.separation_power(
        ref_cells, gen_cells, cc.cell_spectrum_edges(ref_cells, threshold), drop_outside=True
    )
    say("FPD and KPD")
    matrices = [cc.feature_matrix(f, s.energy) for f, s in zip(features, (ref, gen), strict=True)]
    return _ProtocolMetrics(
        separation=separation,
        w1=w1,
        spectrum=spectrum,
        fpd=distances.fpd(*matrices, seed=seed, **cc.FPD_OPTIONS),
        kpd=distances.kpd(*matrices, seed=seed, **cc.KPD_OPTIONS),
        fpd_kpd_scale=(
            "CaloChallenge's: its feature array scaled by the reference's max |value|, jetnet's "
            "draws with replacement (FPD 10 000-50 000, KPD batches of 10 000); ×10³ as "
            "CaloChallenge's tables quote them"
        ),
        metric_features=list(features[0]),
        bins="CaloChallenge's fixed ranges",
        inputs={
            "low": tuple(low_level_inputs(s.showers, s.energy) for s in (ref, gen)),
            "high": tuple(matrices),
        },
    )


def _standardised(ref: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices in the reference's standard units (constant columns left centred)."""
    centre, scale = ref.mean(axis=0), ref.std(axis=0)
    scale[scale == 0] = 1.0
    return (ref - centre) / scale, (gen - centre) / scale


def histogram_bins(n_reference: int) -> int:
    """Bins of the separation-power histograms: √N between 10 and 50.

    CaloChallenge's 50 bins suit its 100 000 showers; with a few hundred, 50 bins hold a few
    events each and the separation power of two samples of the same physics rises to ~0.1.
    """
    return int(np.clip(np.sqrt(n_reference), 10, 50))


def _spectrum_separation(ref: np.ndarray, gen: np.ndarray, bins: int) -> float:
    """Separation power of two spectra of non-zero cell energies, in log10, on the reference's
    bins; NaN when either holds fewer than two cells."""
    if len(ref) < 2 or len(gen) < 2:
        return float("nan")
    return distances.separation_power(np.log10(ref), np.log10(gen), bins)


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
                row[f"response_{side}"], row[f"resolution_{side}"] = response_and_resolution(
                    response
                )
                row[f"E_tot_mean_{side}"] = float(e_tot.mean())
            row["separation_power_E_tot/E_inc"] = distances.separation_power(
                ref.features["E_tot/E_inc"][b.ref], gen.features["E_tot/E_inc"][b.gen], 20
            )
        rows.append(row)
    return rows


@checked
def write_metrics(evaluation: Evaluation, out_dir: str | Path) -> Path:
    """Write the evaluation's metrics.json into ``out_dir``."""
    return write_metrics_json(evaluation.metrics, out_dir)


def write_metrics_json(metrics: dict[str, Any], out_dir: str | Path) -> Path:
    """Write metrics.json (NaN and infinities as null) into ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    atomic_write_text(path, json.dumps(_json_safe(metrics), indent=2) + "\n")
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
