"""Geant4 geometry and scoring built from a Detector.

The front face of the first layer sits at z = 0 in a world of the detector's world material.
Each single layer is a box of the detector's transverse size holding ``repeat`` sampling layers
(a z replica); each sampling layer holds its slices in order. An active slice of a read-out
layer holds a readout window (the slab itself when the window covers it) divided into cells:

- cartesian: a y replica of rows, each an x replica of cells;
- polar: one placed segment per (α, r) bin, copy number α·n_r + r.

Energy is scored in C++ by primitive scorers, one ``G4MultiFunctionalDetector`` per readout
layer, read once per event from the event's hit maps: a cartesian layer's
``G4PSEnergyDeposit3D`` indexes cells by the (row, column) replica numbers, a polar layer's
``G4PSEnergyDeposit`` by the segment's copy number. Two more scorers sum the energy deposited in
all passive material and in active material outside the readout windows, so every event's
energy balance can be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from caloforge.detectors import CartesianBinning, Detector, Layer

__all__ = ["Scoring", "make_detector_construction"]

GUN_OFFSET_MM = 1.0
"""Primaries start this far upstream of the face (along z), in the world's material."""


@dataclass
class Scoring:
    """Hit-collection names filled once the geometry is constructed."""

    layers: list[str] = field(default_factory=list)
    cell_index_offsets: list[int] = field(default_factory=list)
    passive: str = "passive/edep"
    active_unread: str = "active_unread/edep"


def make_detector_construction(g4, detector: Detector, trigger=None, flight_mm: float = 0.0):
    """A ``G4VUserDetectorConstruction`` for ``detector`` and the Scoring it will fill.

    The world reaches ``flight_mm`` further upstream (and as far sideways), for primaries made
    that far in front of the face (a source's ``flight``).

    ``trigger``, if given, is called with every step that starts in the world or in the upstream
    material (a sensitive detector on those volumes only): Python then runs for the steps in
    front of the calorimeter, never for the steps inside it.
    """
    scoring = Scoring()

    class Construction(g4.G4VUserDetectorConstruction):
        def __init__(self):
            super().__init__()
            # geant4-pybind does not own these: keep every Geant4 object alive from Python.
            self._keep: list = []
            self._readout_lvs: list[tuple[object, object]] = []
            self._passive_lvs: list = []
            self._unread_lvs: list = []
            self._outside_lvs: list = []  # the world and the upstream material

        def _hold(self, *objects):
            self._keep.extend(objects)
            return objects[-1]

        def Construct(self):
            nist = g4.G4NistManager.Instance()
            sx, sy = detector.size
            depth = detector.depth
            world_mat = nist.FindOrBuildMaterial(detector.world_material)
            front = detector.upstream_thickness
            world_solid = g4.G4Box(
                "World",
                (0.6 * sx + flight_mm) * g4.mm,
                (0.6 * sy + flight_mm) * g4.mm,
                (depth + front + 10 * GUN_OFFSET_MM + flight_mm) * g4.mm,
            )
            world_lv = self._hold(world_solid, g4.G4LogicalVolume(world_solid, world_mat, "World"))
            self._outside_lvs.append(world_lv)
            world_pv = self._hold(
                g4.G4PVPlacement(None, g4.G4ThreeVector(), world_lv, "World", None, False, 0)
            )
            z = -front
            for i, piece in enumerate(detector.upstream):
                name = f"upstream{i}"
                solid = g4.G4Box(name, sx / 2 * g4.mm, sy / 2 * g4.mm, piece.thickness / 2 * g4.mm)
                material = nist.FindOrBuildMaterial(piece.material)
                lv = self._hold(solid, g4.G4LogicalVolume(solid, material, name))
                centre = g4.G4ThreeVector(0, 0, (z + piece.thickness / 2) * g4.mm)
                self._hold(g4.G4PVPlacement(None, centre, lv, name, world_lv, False, 0))
                self._outside_lvs.append(lv)
                z += piece.thickness
            readout_index = 0
            for layer in detector.stack:
                lv = self._layer(nist, layer, world_mat, readout_index)
                centre = g4.G4ThreeVector(0, 0, (z + layer.thickness / 2) * g4.mm)
                self._hold(g4.G4PVPlacement(None, centre, lv, layer.name, world_lv, False, 0))
                z += layer.thickness
                readout_index += layer.readout is not None
            return world_pv

        def _layer(self, nist, layer: Layer, world_mat, readout_index: int):
            sx, sy = detector.size
            half = (sx / 2 * g4.mm, sy / 2 * g4.mm)
            t_sampling = layer.sampling_thickness
            envelope = g4.G4Box(layer.name, *half, layer.thickness / 2 * g4.mm)
            envelope_lv = self._hold(envelope, g4.G4LogicalVolume(envelope, world_mat, layer.name))
            sampling = g4.G4Box(f"{layer.name}_sampling", *half, t_sampling / 2 * g4.mm)
            sampling_lv = self._hold(
                sampling, g4.G4LogicalVolume(sampling, world_mat, f"{layer.name}_sampling")
            )
            if layer.repeat > 1:
                self._hold(
                    g4.G4PVReplica(
                        f"{layer.name}_sampling",
                        sampling_lv,
                        envelope_lv,
                        g4.EAxis.kZAxis,
                        layer.repeat,
                        t_sampling * g4.mm,
                    )
                )
            else:
                self._hold(
                    g4.G4PVPlacement(
                        None,
                        g4.G4ThreeVector(),
                        sampling_lv,
                        f"{layer.name}_sampling",
                        envelope_lv,
                        False,
                        0,
                    )
                )
            z = -t_sampling / 2
            for i, piece in enumerate(layer.slices):
                name = f"{layer.name}_slice{i}"
                material = nist.FindOrBuildMaterial(piece.material)
                solid = g4.G4Box(name, *half, piece.thickness / 2 * g4.mm)
                slab_lv = self._hold(solid, g4.G4LogicalVolume(solid, material, name))
                centre = g4.G4ThreeVector(0, 0, (z + piece.thickness / 2) * g4.mm)
                self._hold(g4.G4PVPlacement(None, centre, slab_lv, name, sampling_lv, False, 0))
                z += piece.thickness
                if not piece.active:
                    self._passive_lvs.append(slab_lv)
                    continue
                cells_lv = self._readout(layer, slab_lv, material, piece.thickness)
                self._readout_lvs.append((readout_index, cells_lv))
            return envelope_lv

        def _readout(self, layer: Layer, slab_lv, material, thickness: float):
            """Divide the active slab into cells; returns the cells' logical volumes."""
            readout = layer.readout
            half_t = thickness / 2 * g4.mm
            name = f"{layer.name}_cells"
            ex, ey = readout.extent
            if isinstance(readout, CartesianBinning):
                if math.isclose(ex, detector.size[0]) and math.isclose(ey, detector.size[1]):
                    window_lv = slab_lv
                else:
                    window = g4.G4Box(f"{name}_window", ex / 2 * g4.mm, ey / 2 * g4.mm, half_t)
                    window_lv = self._window(window, material, slab_lv, name)
                row = g4.G4Box(f"{name}_row", ex / 2 * g4.mm, readout.dy / 2 * g4.mm, half_t)
                row_lv = self._hold(row, g4.G4LogicalVolume(row, material, f"{name}_row"))
                self._hold(
                    g4.G4PVReplica(
                        f"{name}_row",
                        row_lv,
                        window_lv,
                        g4.EAxis.kYAxis,
                        readout.ny,
                        readout.dy * g4.mm,
                    )
                )
                cell = g4.G4Box(name, readout.dx / 2 * g4.mm, readout.dy / 2 * g4.mm, half_t)
                cell_lv = self._hold(cell, g4.G4LogicalVolume(cell, material, name))
                self._hold(
                    g4.G4PVReplica(
                        name, cell_lv, row_lv, g4.EAxis.kXAxis, readout.nx, readout.dx * g4.mm
                    )
                )
                return [cell_lv]
            r_edges, a_edges = readout.edges()
            window = g4.G4Tubs(f"{name}_window", 0, r_edges[-1] * g4.mm, half_t, 0, 2 * math.pi)
            window_lv = self._window(window, material, slab_lv, name)
            n_r = len(r_edges) - 1
            width = 2 * math.pi / readout.n_alpha
            cell_lvs = []
            for ir in range(n_r):
                segment = g4.G4Tubs(
                    f"{name}_r{ir}",
                    r_edges[ir] * g4.mm,
                    r_edges[ir + 1] * g4.mm,
                    half_t,
                    -width / 2,
                    width,
                )
                segment_lv = self._hold(
                    segment, g4.G4LogicalVolume(segment, material, f"{name}_r{ir}")
                )
                cell_lvs.append(segment_lv)
                for ia in range(readout.n_alpha):
                    rotation = self._hold(g4.G4RotationMatrix())
                    # G4PVPlacement rotates the frame: a segment centred on α needs rotateZ(-α).
                    rotation.rotateZ(-(a_edges[ia] + width / 2))
                    self._hold(
                        g4.G4PVPlacement(
                            rotation,
                            g4.G4ThreeVector(),
                            segment_lv,
                            name,
                            window_lv,
                            False,
                            ia * n_r + ir,
                        )
                    )
            return cell_lvs

        def _window(self, solid, material, slab_lv, name: str):
            window_lv = self._hold(solid, g4.G4LogicalVolume(solid, material, f"{name}_window"))
            self._hold(
                g4.G4PVPlacement(
                    None, g4.G4ThreeVector(), window_lv, f"{name}_window", slab_lv, False, 0
                )
            )
            self._unread_lvs.append(slab_lv)
            return window_lv

        def ConstructSDandField(self):
            sdm = g4.G4SDManager.GetSDMpointer()
            offsets = detector.layer_offsets
            for index, layer in enumerate(detector.readout_layers):
                name = f"readout{index}"
                mfd = self._hold(g4.G4MultiFunctionalDetector(name))
                sdm.AddNewDetector(mfd)
                if isinstance(layer.readout, CartesianBinning):
                    ny, nx = layer.readout.shape
                    # Index = row * nx + column: i is the always-0 copy of the window's mother.
                    scorer = g4.G4PSEnergyDeposit3D("edep", 1, ny, nx, 2, 1, 0)
                else:
                    scorer = g4.G4PSEnergyDeposit("edep", 0)
                mfd.RegisterPrimitive(self._hold(scorer))
                for readout_index, lvs in self._readout_lvs:
                    if readout_index == index:
                        for lv in lvs:
                            lv.SetSensitiveDetector(mfd)
                scoring.layers.append(f"{name}/edep")
                scoring.cell_index_offsets.append(int(offsets[index]))
            for sd_name, lvs in (
                ("passive", self._passive_lvs),
                ("active_unread", self._unread_lvs),
            ):
                mfd = self._hold(g4.G4MultiFunctionalDetector(sd_name))
                sdm.AddNewDetector(mfd)
                mfd.RegisterPrimitive(self._hold(g4.G4PSEnergyDeposit("edep", 0)))
                for lv in lvs:
                    lv.SetSensitiveDetector(mfd)
            if trigger is not None:
                sd = self._hold(_Trigger("face_trigger"))
                sdm.AddNewDetector(sd)
                for lv in self._outside_lvs:
                    lv.SetSensitiveDetector(sd)

    class _Trigger(g4.G4VSensitiveDetector):
        def ProcessHits(self, step, history):
            trigger(step)
            return True

    return Construction(), scoring
