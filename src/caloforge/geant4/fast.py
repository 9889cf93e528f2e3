"""Trained models inside a Geant4 run: the fast part of ``simulate --fast MODEL``.

Geant4 tracks the primary and everything upstream of the calorimeter as usual. When an e± or γ
above a threshold crosses the front face (z = 0, from z < 0), a trigger offers it to the model:
if the particle's conditions (energy, momentum, entry point, ...) lie inside the model's training
ranges, its track is killed and its entry recorded; otherwise it stays in
Geant4 (a fallback, counted with its reason). After the chunk of events, the model makes one
shower per recorded entry, in one batch, and adds it to its event's cells. This is what Par04's
``G4VFastSimulationModel`` does, built from what geant4-pybind 0.1.3 exposes: it has no
fast-simulation classes, so the trigger is a Python sensitive detector on the world and the
upstream material, which Geant4 calls on every step in front of the face and never inside the
calorimeter (``benchmarks/hybrid_profile.py`` shows where an event's time goes). The range check
runs on one particle's Python numbers (``particle_conditions``), a few microseconds.

Reproducibility: the noise of the showers of event i comes from a generator seeded by
(run seed, i), drawn in the order the particles crossed the face, so a hybrid run, like a full
one, is the same whatever its workers, chunks, shards and interruptions: Geant4's part exactly,
the model's to float rounding (ONNX Runtime's arithmetic depends slightly on the batch, here the
hand-offs of a chunk of events).

The model's detector must be the simulation's without its upstream material (``Detector
.calorimeter``): a model knows the calorimeter from its face on, and the dead material in front
is Geant4's. A model trained on electrons takes positrons and photons too, as Par04 does with
its electron model: ``--fast-particles`` narrows that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from caloforge.data.showerfile import check_energies
from caloforge.detectors import Detector
from caloforge.errors import CaloforgeError
from caloforge.models.base import derived_conditions
from caloforge.models.common import seeded_generators
from caloforge.seeds import indexed
from caloforge.sources import CONDITIONS, PARTICLES, particle_conditions

__all__ = [
    "FACE_TOLERANCE_MM",
    "FAST_EXTRAS",
    "FAST_PARTICLES",
    "NOISE_STREAM",
    "FastShowers",
    "FastSpec",
    "fast_extras",
    "fast_spec",
    "record_fallback_totals",
]

FAST_PARTICLES = ("e-", "e+", "gamma")
FAST_EXTRAS = ("fast_showers", "fast_energy", "full_showers")
"""Per-event extras of a hybrid file: showers the model made, the kinetic energy it was handed
(MeV), and e±/γ above the threshold that crossed the face but stayed in Geant4 because a
condition was outside the training range; ``full_outside_NAME`` counts those by the first
condition (or derived quantity) NAME that was outside. Per event, so that shards, resumed runs
and merges count each particle once; the file attribute ``fast_fallbacks`` holds the totals."""

BACKENDS = ("onnx", "torch")
NOISE_STREAM = 0xFA57
"""The model noise of event i of a run with seed s comes from ``seeded_generator(s,
NOISE_STREAM, i)``, drawn for its showers in the order the particles crossed the face."""
FACE_TOLERANCE_MM = 1e-6
"""How far from z = 0 a boundary step may end and still be on the face (rounding of the
navigator's intersection; Geant4's own surface tolerance is 1e-9 mm)."""


@dataclass(frozen=True)
class FastSpec:
    """What a worker needs to run the fast part; picklable."""

    model: str
    threshold: float
    particles: tuple[str, ...] = FAST_PARTICLES
    backend: str = "onnx"
    producer: dict = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    """What can be out of range: the model's conditions and derived quantities."""

    def describe(self) -> dict:
        return {
            "model": self.producer,
            "model_dir": self.model,
            "threshold_mev": self.threshold,
            "particles": list(self.particles),
            "backend": self.backend,
            "trigger": "e+-/gamma crossing the front face (z = 0) from upstream",
        }


def fast_spec(
    model_name: str | Path,
    detector: Detector,
    *,
    threshold: float | None = None,
    particles: tuple[str, ...] = FAST_PARTICLES,
    backend: str = "onnx",
) -> FastSpec:
    """Check a model for a hybrid run of ``detector`` (before any Geant4 starts)."""
    from caloforge.models import load_model, resolve_model

    model = load_model(model_name)
    name = model.describe()["name"]
    if model.detector != detector.calorimeter:
        raise CaloforgeError(
            f"model {name} was trained for detector {model.detector.name}, not "
            f"{detector.name}"
            + (" (its calorimeter differs)" if model.detector.name == detector.name else "")
        )
    for condition in model.config.conditions:
        if condition not in CONDITIONS:
            raise CaloforgeError(
                f"--fast: model {name} is conditioned on {condition!r}, which a particle "
                f"entering the calorimeter does not provide (it provides {', '.join(CONDITIONS)})"
            )
    unknown = [p for p in particles if p not in FAST_PARTICLES]
    if unknown or not particles:
        raise CaloforgeError(
            f"--fast-particles must be some of {', '.join(FAST_PARTICLES)}, "
            f"got {','.join(particles)}"
        )
    if backend not in BACKENDS:
        raise CaloforgeError(f"unknown fast backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if threshold is None:
        if "energy" not in model.config.derived_range:
            raise CaloforgeError(
                f"model {name} does not record the energy range it was trained on; "
                "give --fast-threshold"
            )
        threshold = model.config.derived_range["energy"][0]
    if not threshold > 0:
        raise CaloforgeError(f"--fast-threshold must be positive, got {threshold} MeV")
    reasons = tuple(dict.fromkeys([*model.config.conditions, *model.config.derived_range]))
    return FastSpec(
        str(resolve_model(model_name)),
        float(threshold),
        tuple(particles),
        backend,
        model.describe(),
        reasons,
    )


def fast_extras(spec: FastSpec | None) -> tuple[str, ...]:
    """The per-event extras a hybrid run with ``spec`` writes (none for a full run)."""
    if spec is None:
        return ()
    return FAST_EXTRAS + tuple(f"full_outside_{r}" for r in spec.reasons)


def record_fallback_totals(path: Path) -> dict[str, int]:
    """Sum a hybrid file's ``full_outside_*`` over its committed events into its attribute
    ``fast_fallbacks`` (JSON {reason: particles}); returns the totals."""
    import h5py

    with h5py.File(path, "r+") as h5:
        committed = int(h5.attrs.get("n_committed", len(h5["showers"])))
        extra = h5.get("extra", {})
        totals = {
            name.removeprefix("full_outside_"): int(extra[name][:committed].sum())
            for name in extra
            if name.startswith("full_outside_")
        }
        h5.attrs["fast_fallbacks"] = json.dumps(totals)
    return totals


class FastShowers:
    """The fast part in one worker: takes particles at the face, then makes their showers."""

    def __init__(self, spec: FastSpec):
        from caloforge.generation import decoder
        from caloforge.models import load_model

        torch.set_num_threads(1)  # one worker, one core: Geant4 and the model take turns
        self.spec = spec
        self.model = load_model(spec.model)
        self.decode = decoder(self.model, spec.backend, threads=1)
        config = self.model.config
        self.names = config.conditions
        self.ranges = [tuple(config.condition_range[n]) for n in self.names]
        self.derived = dict(config.derived_range)
        self.pdg = {PARTICLES[p].pdg for p in spec.particles}
        self.start(0)

    def start(self, n_events: int) -> None:
        """Before a chunk of ``n_events`` events."""
        self.entries: list[tuple[int, list[float], float]] = []  # (event, conditions, energy)
        self.fast_showers = np.zeros(n_events)
        self.fast_energy = np.zeros(n_events)
        self.outside = {r: np.zeros(n_events) for r in self.spec.reasons}

    def offer(self, event: int, pdg: int, energy: float, position, direction) -> bool:
        """Whether the model takes this particle crossing the face (then its track is killed)."""
        if pdg not in self.pdg or energy < self.spec.threshold:
            return False
        row = particle_conditions(self.names, pdg, energy, position, direction)
        reason = self._outside(row, energy)
        if reason is not None:
            self.outside[reason][event] += 1
            return False
        self.entries.append((event, row, energy))
        self.fast_showers[event] += 1
        self.fast_energy[event] += energy
        return True

    def _outside(self, row: list[float], energy: float) -> str | None:
        for name, value, (low, high) in zip(self.names, row, self.ranges):
            if not low <= value <= high:
                return name
        for name, value in derived_conditions(self.names, np.array(row), energy).items():
            low, high = self.derived.get(name, (-np.inf, np.inf))
            if not low <= value <= high:
                return name
        return None

    def deposit(self, showers: np.ndarray, first_event: int, seed: int) -> dict[str, np.ndarray]:
        """Add the recorded entries' showers to their events' rows; returns the fast extras."""
        if self.entries:
            events = np.array([e for e, _, _ in self.entries])
            conditions = np.array([c for _, c, _ in self.entries], np.float32)
            taken, counts = np.unique(events, return_counts=True)
            keys = indexed(seed, NOISE_STREAM, first_event + taken)
            noise = torch.cat(
                [
                    self.model.noise(int(count), generator)
                    for generator, count in zip(seeded_generators(keys), counts)
                ]
            ).numpy()
            order = np.argsort(events, kind="stable")  # noise is drawn event by event
            made = np.empty((len(events), showers.shape[1]), np.float32)
            made[order] = check_energies(
                self.decode(noise, conditions[order]),
                f"model {self.spec.producer.get('name', self.spec.model)}",
            )
            if len(taken) == len(events):
                showers[events] += made  # one shower per event, the usual case
            else:
                np.add.at(showers, events, made)
        return {
            "fast_showers": self.fast_showers,
            "fast_energy": self.fast_energy,
            "full_showers": sum(self.outside.values(), np.zeros(len(self.fast_showers))),
            **{f"full_outside_{r}": counts for r, counts in self.outside.items()},
        }
