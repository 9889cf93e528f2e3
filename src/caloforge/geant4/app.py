"""One Geant4 application per process: geometry, physics, a particle gun and the readout.

Only worker processes build it (see ``caloforge.geant4.run``): Geant4 allows one run manager
per process, and importing geant4_pybind must follow ``caloforge.geant4.datasets``' setup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from caloforge.detectors import Detector
from caloforge.geant4.datasets import Geant4Data, import_geant4
from caloforge.geant4.fast import FACE_TOLERANCE_MM, FastShowers, FastSpec
from caloforge.geant4.geometry import GUN_OFFSET_MM, make_detector_construction
from caloforge.sources import Primaries

__all__ = ["FaceHandler", "Geant4App"]

FaceHandler = Callable[[int, int, float, tuple, tuple], bool]
"""Called for each particle crossing the calorimeter's face with (event, PDG code, kinetic
energy in MeV, position in mm, direction); returns whether to kill its track there."""


class Geant4App:
    """Geant4 set up for ``detector``; ``run`` simulates primaries and returns cell energies."""

    def __init__(
        self,
        detector: Detector,
        data: Geant4Data,
        physics: str,
        cut_mm: float,
        fast: FastSpec | None = None,
        face: FaceHandler | None = None,
        flight_mm: float = 0.0,
    ):
        """``fast``: a hybrid run, the model taking the particles it covers at the face.
        ``face``: a handler of the particles crossing the face (not with ``fast``).
        ``flight_mm``: primaries start this much further upstream (a source's ``flight``)."""
        from caloforge.geant4 import physics as em

        g4 = self.g4 = import_geant4(data)
        self.detector = detector
        self.run_manager = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.Serial)
        self.fast = FastShowers(fast) if fast is not None else None
        handler = self.fast.offer if self.fast is not None else face
        trigger = None if handler is None else _make_trigger(g4, self, handler)
        self.construction, self.scoring = make_detector_construction(
            g4, detector, trigger, flight_mm
        )
        self.run_manager.SetUserInitialization(self.construction)
        self.physics_list = em.make_physics_list(g4, physics)
        self.run_manager.SetUserInitialization(self.physics_list)
        # Geant4 wants the physics list in place before any user action is made.
        self._gun = _make_gun_action(g4, GUN_OFFSET_MM + detector.upstream_thickness + flight_mm)
        self._events = _make_event_action(g4, self)
        self.run_manager.SetUserAction(self._gun)
        self.run_manager.SetUserAction(self._events)
        em.prepare_run(g4, data, cut_mm)
        self.run_manager.Initialize()
        sdm = g4.G4SDManager.GetSDMpointer()
        self.layer_ids = [sdm.GetCollectionID(name) for name in self.scoring.layers]
        self.passive_id = sdm.GetCollectionID(self.scoring.passive)
        self.unread_id = sdm.GetCollectionID(self.scoring.active_unread)
        self.showers = np.zeros((0, detector.n_cells), np.float32)
        self.active = np.zeros(0)
        self.passive = np.zeros(0)

    def run(
        self,
        primaries: Primaries,
        seeds: Sequence[int],
        first_event: int = 0,
        seed: int = 0,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Simulate one event per primary, reseeding Geant4 with ``seeds[k]`` before event k
        (``caloforge.geant4.run.event_seeds``).

        Returns showers (n, n_cells) float32 MeV and the per-event extras: active and passive
        energy, and in a hybrid run the fast extras (``caloforge.geant4.fast``), whose model
        noise depends on (``seed``, ``first_event`` + k).
        """
        n = len(primaries)
        self.showers = np.zeros((n, self.detector.n_cells), np.float32)
        self.active = np.zeros(n)
        self.passive = np.zeros(n)
        self._gun.load(primaries, seeds)
        if self.fast is not None:
            self.fast.start(n)
        self.run_manager.BeamOn(n)
        extras = {"energy_active": self.active, "energy_passive": self.passive}
        if self.fast is not None:
            extras |= self.fast.deposit(self.showers, first_event, seed)
        return self.showers, extras

    def record(self, k: int, hce) -> None:
        """Read event k's hit maps into row k."""
        row = self.showers[k]
        visible = 0.0
        for collection, offset in zip(self.layer_ids, self.scoring.cell_index_offsets):
            hits = hce.GetHC(collection)
            if hits.entries():  # none in an event the model took whole
                for index, edep in hits:
                    row[offset + index] += edep
                    visible += edep
        self.active[k] = visible + _total(hce.GetHC(self.unread_id))
        self.passive[k] = _total(hce.GetHC(self.passive_id))


def _total(hits) -> float:
    """The energy in a hit map (MeV)."""
    return sum(edep for _, edep in hits) if hits.entries() else 0.0


def _make_gun_action(g4, offset_mm: float):
    """Primaries start ``offset_mm`` in front of the face (along z), aimed at their entry point."""
    table = g4.G4ParticleTable.GetParticleTable()

    class Gun(g4.G4VUserPrimaryGeneratorAction):
        def __init__(self):
            super().__init__()
            self.gun = g4.G4ParticleGun(1)
            self.event = 0
            self.definitions: dict[int, object] = {}
            self.shots: list[tuple] = []  # per event: seed, particle, energy, position, direction

        def load(self, primaries: Primaries, seeds: Sequence[int]) -> None:
            """Everything an event's GeneratePrimaries sets, as Python numbers and Geant4
            objects made once per chunk: Geant4 calls it once per event, from C++."""
            for code in set(primaries.pdg.tolist()) - set(self.definitions):
                self.definitions[code] = table.FindParticle(int(code))
            d = primaries.direction
            start = (primaries.position - d * (offset_mm / d[:, 2:3])) * g4.mm
            self.shots = [
                (
                    event_seed,
                    self.definitions[code],
                    energy * g4.MeV,
                    g4.G4ThreeVector(*position),
                    g4.G4ThreeVector(*direction),
                )
                for event_seed, code, energy, position, direction in zip(
                    seeds,
                    primaries.pdg.tolist(),
                    primaries.energy.tolist(),
                    start.tolist(),
                    d.tolist(),
                )
            ]

        def GeneratePrimaries(self, event):
            k = self.event = event.GetEventID()
            seed, definition, energy, position, direction = self.shots[k]
            # Reseeding here, the first thing an event does, makes it a function of its seed.
            g4.HepRandom.setTheSeed(seed)
            self.gun.SetParticleDefinition(definition)
            self.gun.SetParticleEnergy(energy)
            self.gun.SetParticlePosition(position)
            self.gun.SetParticleMomentumDirection(direction)
            self.gun.GeneratePrimaryVertex(event)

    return Gun()


def _make_event_action(g4, app: Geant4App):
    class Events(g4.G4UserEventAction):
        def EndOfEventAction(self, event):
            app.record(event.GetEventID(), event.GetHCofThisEvent())

    return Events()


def _make_trigger(g4, app: Geant4App, handler: FaceHandler):
    """The trigger called for the steps in front of the calorimeter: hands each particle
    crossing the front face to ``handler`` (a hybrid's model), and kills the track it takes."""
    boundary = g4.G4StepStatus.fGeomBoundary
    kill = g4.G4TrackStatus.fStopAndKill

    def trigger(step) -> None:
        post = step.GetPostStepPoint()
        if post.GetStepStatus() != boundary:
            return
        where = post.GetPosition()
        # The face is the plane z = 0; a step ending on it from z < 0 enters the calorimeter.
        if abs(where.z) > FACE_TOLERANCE_MM or step.GetPreStepPoint().GetPosition().z >= 0:
            return
        track = step.GetTrack()
        d = post.GetMomentumDirection()
        taken = handler(
            app._gun.event,
            track.GetDefinition().GetPDGEncoding(),
            post.GetKineticEnergy(),
            (where.x, where.y, 0.0),
            (d.x, d.y, d.z),
        )
        if taken:
            track.SetTrackStatus(kill)

    return trigger
