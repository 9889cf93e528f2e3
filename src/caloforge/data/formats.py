"""Readers for the shower files of other projects, and their conversion to caloforge files.

Each reader validates a foreign file when it is opened (keys, shapes, event counts, the cell count
against the detector), then streams it as ``ShowerBatch``es in caloforge order and units: cells
layer-major, then y then x (or α then r), energies in MeV, lengths in mm, angles in degrees.
HDF5 files are read slice by slice, so a file larger than memory converts; ``.npz`` archives are
loaded whole, as numpy can only read their members whole.

| format | file | detector | conditions |
|---|---|---|---|
| ``calochallenge`` | HDF5 ``incident_energies``, ``showers`` | from the binning XML | energy |
| ``calogan`` | HDF5 ``energy``, ``layer_0..2``, ``overflow`` | ``calogan_detector()`` | energy |
| ``lhcb-npz`` | ``.npz`` ``EnergyDeposit``, ``Particle*`` | ``lhcb-ecal`` | px, py, pz, x, y |
| ``3dgan`` | HDF5 ``ECAL``, ``energy``, ``theta`` | ``clic-ecal`` | energy, theta |

Readers land in caloforge's unit, visible MeV (``EnergyUnit``). Where the authors' code does not
fix the unit of the cell energies, the reader's class docstring says what was chosen, and
``energy_scale`` (visible MeV per unit of the file's cells) overrides it.

``to_calochallenge`` writes the other way: a caloforge file in CaloChallenge's layout and units,
for CaloChallenge's own ``evaluate.py``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np
import yaml

from caloforge.data.showerfile import (
    CALIBRATED,
    VISIBLE,
    EnergyUnit,
    ShowerBatch,
    ShowerFile,
    ShowerWriter,
    check_energies,
    open_h5,
    refuse_same_file,
)
from caloforge.detectors import Detector, detector_from_yaml, load_detector
from caloforge.errors import CaloforgeError
from caloforge.sources import PARTICLES

__all__ = [
    "FORMATS",
    "CaloChallengeReader",
    "CaloGANReader",
    "ForeignReader",
    "LHCbNpzReader",
    "ThreeDGANReader",
    "calogan_detector",
    "convert",
    "detector_from_calochallenge_xml",
    "open_foreign",
    "to_calochallenge",
]

_MEV_PER_GEV = 1000.0
_MM_PER_CM = 10.0


class ForeignReader(ABC):
    """A foreign shower file, read in caloforge order and units.

    Opening validates the file; ``iter_batches`` streams it. Subclasses set the format name, the
    condition names, the default ``energy_scale`` and implement ``_read``.

    Arguments:
        path: the foreign file.
        energy_scale: MeV per unit of the file's cell energies; None takes the format's default.
    """

    format: ClassVar[str]
    condition_names: ClassVar[tuple[str, ...]]
    needed: ClassVar[tuple[str, ...]]
    default_energy_scale: ClassVar[float] = 1.0

    def __init__(self, path: str | Path, *, energy_scale: float | None = None):
        self.path = Path(path)
        scale = self.default_energy_scale if energy_scale is None else float(energy_scale)
        if not (math.isfinite(scale) and scale > 0):
            raise CaloforgeError(f"energy scale must be a positive number, got {energy_scale}")
        self.energy_scale = scale
        self.unit = EnergyUnit()
        """The unit of the showers this reader yields: visible MeV unless a subclass says."""
        self.extra_names: tuple[str, ...] = ()
        self.detector: Detector
        self.n_events: int

    def __len__(self) -> int:
        return self.n_events

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, events={self.n_events})"

    @abstractmethod
    def _read(
        self, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Events ``start`` to ``stop``: showers (n, cells) in caloforge order but file units,
        incident energies in MeV, conditions in caloforge units, extras."""

    def iter_batches(self, batch_size: int) -> Iterator[ShowerBatch]:
        """Stream the file in batches of ``batch_size`` events (the last may be smaller).

        NaN or infinite cell energies, incident energies or conditions raise; negative cell
        energies are clipped to 0 with a warning (see ``check_energies``).
        """
        if batch_size <= 0:
            raise CaloforgeError(f"batch size must be positive, got {batch_size}")
        for start in range(0, self.n_events, batch_size):
            stop = min(start + batch_size, self.n_events)
            showers, energies, conditions, extras = self._read(start, stop)
            showers = np.asarray(showers, dtype=np.float32) * np.float32(self.energy_scale)
            showers = check_energies(showers, str(self.path), start)
            names = ("incident energy", *self.condition_names)
            for name, values in zip(names, np.column_stack([energies, conditions]).T):
                bad = ~np.isfinite(values)
                if bad.any():
                    event = start + int(np.argmax(bad))
                    raise CaloforgeError(
                        f"{self.path} has NaN or infinite {name} (first in event {event})"
                    )
            yield ShowerBatch(showers, energies, conditions, extras)


def _require_datasets(h5: h5py.File, path: Path, fmt: str, needed: tuple[str, ...]) -> None:
    for key in needed:
        if key not in h5 or not isinstance(h5[key], h5py.Dataset):
            raise CaloforgeError(
                f"{path} has no {key!r} dataset; a {fmt} file needs {', '.join(needed)}"
            )


def _check_shape(
    path: Path, key: str, shape: tuple[int, ...], *expected: tuple[int | None, ...]
) -> None:
    """Refuse a shape that matches none of ``expected`` (None: any length)."""
    for option in expected:
        if len(shape) == len(option) and all(e is None or s == e for s, e in zip(shape, option)):
            return
    wanted = " or ".join(
        "(" + ", ".join("N" if e is None else str(e) for e in option) + ")" for option in expected
    )
    raise CaloforgeError(f"{path}: {key!r} has shape {tuple(shape)}, expected {wanted}")


def _same_length(path: Path, lengths: Mapping[str, int]) -> int:
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise CaloforgeError(f"{path}: datasets disagree on the number of events ({counts})")
    return next(iter(lengths.values()))


def _check_cells(path: Path, n_cells: int, detector: Detector, what: str) -> None:
    if n_cells != detector.n_cells:
        raise CaloforgeError(
            f"{path} has {n_cells} cells per shower but {what} has {detector.n_cells}"
        )


# --- CaloChallenge -------------------------------------------------------------------------------


def detector_from_calochallenge_xml(
    path_or_text: str | Path, particle: str | None = None
) -> Detector:
    """A readout-only polar detector from a CaloChallenge binning XML.

    The XML is ``<Bins>`` holding one ``<Bin pid=".." name="..">`` per particle, each a list of
    ``<Layer id=".." r_edges="r0,r1,.." n_bin_alpha=".."/>`` (radii in mm, angular bins evenly
    spaced from -π to π). Layers whose ``r_edges`` has a single value have no voxels and are
    skipped, as CaloChallenge's XMLHandler does; the others keep their id in their name
    (``layer12``). A binning equal to the built-in ``par04`` readout gives ``par04`` itself,
    which also knows its materials.

    Arguments:
        path_or_text: path of the XML file, or the XML text itself.
        particle: which ``<Bin>`` to read, by name or PDG id; needed only when there are several.

    Returns:
        The detector, whose cells are ordered as CaloChallenge's voxels.

    References:
        CaloChallenge 2022, github.com/CaloChallenge/homepage: ``code/XMLHandler.py`` and
        ``code/binning_dataset_*.xml``; Krause et al., arXiv:2410.21611.

    Example:
        >>> xml = '''<Bins><Bin pid="22" name="photon">
        ...   <Layer id="0" r_edges="0,5,10" n_bin_alpha="1"/>
        ...   <Layer id="1" r_edges="0" n_bin_alpha="1"/>
        ...   <Layer id="2" r_edges="0,2,4,8" n_bin_alpha="10"/>
        ... </Bin></Bins>'''
        >>> det = detector_from_calochallenge_xml(xml)
        >>> [layer.name for layer in det.readout_layers], det.n_cells
        (['layer0', 'layer2'], 32)
    """
    text, origin = _xml_text(path_or_text)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CaloforgeError(f"{origin} is not valid XML: {exc}") from None
    bins = [root] if root.tag == "Bin" else root.findall("Bin")
    if not bins:
        raise CaloforgeError(f"{origin} has no <Bin> element; is it a CaloChallenge binning file?")
    labels = [f"{b.get('name', '?')} (pid {b.get('pid', '?')})" for b in bins]
    if particle is not None:
        bins = [b for b in bins if particle in (b.get("name"), b.get("pid"))]
        if not bins:
            raise CaloforgeError(
                f"{origin} has no binning for particle {particle!r}; it has {', '.join(labels)}"
            )
    if len(bins) > 1:
        raise CaloforgeError(
            f"{origin} has binnings for {', '.join(labels)}; choose one with the particle argument"
        )
    chosen = bins[0]
    layers = []
    for element in chosen.findall("Layer"):
        layer_id = element.get("id", str(len(layers)))
        try:
            edges = [float(r) for r in element.get("r_edges", "").split(",")]
            n_alpha = int(element.get("n_bin_alpha", ""))
        except ValueError:
            raise CaloforgeError(
                f"{origin}: layer {layer_id} needs numeric r_edges and n_bin_alpha"
            ) from None
        if len(edges) > 1:
            readout = {"binning": "polar", "r_edges": edges, "n_alpha": n_alpha}
            layers.append({"name": f"layer{layer_id}", "readout": readout})
    if not layers:
        raise CaloforgeError(f"{origin} has no layer with voxels")
    name = chosen.get("name") or chosen.get("pid") or "binning"
    radius = max(layer["readout"]["r_edges"][-1] for layer in layers)
    data = {
        "name": f"calochallenge-{name}",
        "title": f"CaloChallenge binning for {name}, {len(layers)} layers (readout only)",
        "description": f"Readout binning read from {origin}; materials unknown.",
        "approximates": (
            "The voxelisation of a CaloChallenge 2022 dataset: concentric rings split in angle, "
            "one set per layer along the particle direction. Only the readout is known, so the "
            "detector can be evaluated but not simulated."
        ),
        "size": [2 * radius, 2 * radius],
        # CaloChallenge zeroes cells below 0.5 keV of silicon energy in datasets 2 and 3 (45
        # layers, stored as Si energy / 0.033) and below 1 MeV of its calibrated energy in
        # dataset 1 (the ATLAS layers, whose sampling fraction it does not give).
        **(
            {"threshold": 0.0005, "sampling_fraction": 0.033}
            if len(chosen.findall("Layer")) == 45
            else {"threshold": 1.0}
        ),
        "layers": layers,
    }
    detector = detector_from_yaml(yaml.safe_dump(data, sort_keys=False), origin=origin)
    par04 = load_detector("par04")
    readouts = [layer.readout for layer in detector.readout_layers]
    if readouts == [layer.readout for layer in par04.readout_layers]:
        return par04
    return detector


def _xml_text(path_or_text: str | Path) -> tuple[str, str]:
    """(XML text, how to name it in messages)."""
    if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("<"):
        return path_or_text, "binning XML"
    path = Path(path_or_text)
    try:
        return path.read_text(), f"binning file {path}"
    except FileNotFoundError:
        raise CaloforgeError(f"no such binning file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise CaloforgeError(f"cannot read binning file {path}: {reason}") from None


class CaloChallengeReader(ForeignReader):
    """A CaloChallenge 2022 dataset file.

    Layout: ``incident_energies`` (N, 1) and ``showers`` (N, voxels), both in MeV, voxels ordered
    layer, then angle α, then radius r (README of github.com/CaloChallenge/homepage), which is
    caloforge's order, so the showers are copied as they are. The cell geometry comes from, in
    turn: the binning XML given, the ``detector`` attribute of a file written by caloforge, or
    ``par04`` when the file has its 6480 cells (dataset 2); otherwise the binning is required.

    Units: CaloChallenge datasets 2 and 3 hold Par04's silicon energy divided by 0.033, so that
    E_tot/E_inc is about 0.94. By default the reader multiplies by the file's sampling fraction
    (the ``sampling_fraction`` attribute that ``to_calochallenge`` writes, else the detector's:
    0.033 for ``par04``), landing in caloforge's visible MeV, as ``caloforge simulate par04``
    writes them. Where neither is known (dataset 1's calibrated ATLAS energies) the energies
    are kept and the output says they are calibrated MeV of an unknown sampling fraction.

    References:
        Krause et al., "CaloChallenge 2022: A Community Challenge for Fast Calorimeter
        Simulation", arXiv:2410.21611; github.com/CaloChallenge/homepage.
    """

    format = "calochallenge"
    condition_names = ("energy",)
    needed = ("incident_energies", "showers")

    def __init__(
        self,
        path: str | Path,
        *,
        binning: str | Path | None = None,
        energy_scale: float | None = None,
    ):
        super().__init__(path, energy_scale=energy_scale)
        with open_h5(self.path) as h5:
            _require_datasets(h5, self.path, self.format, self.needed)
            showers, energies = h5["showers"], h5["incident_energies"]
            _check_shape(self.path, "showers", showers.shape, (None, None))
            _check_shape(self.path, "incident_energies", energies.shape, (None, 1), (None,))
            self.n_events = _same_length(
                self.path, {"showers": len(showers), "incident_energies": len(energies)}
            )
            n_cells = int(showers.shape[1])
            embedded = h5.attrs.get("detector")
            stated = h5.attrs.get("sampling_fraction")
            stated_kind = h5.attrs.get("energy_unit")
        if binning is not None:
            self.detector = detector_from_calochallenge_xml(Path(binning))
            _check_cells(self.path, n_cells, self.detector, f"the binning {binning}")
        elif embedded:
            text = embedded.decode() if isinstance(embedded, bytes) else str(embedded)
            self.detector = detector_from_yaml(text, origin=f"detector in {self.path}")
            _check_cells(self.path, n_cells, self.detector, "its detector attribute")
        elif n_cells == load_detector("par04").n_cells:
            self.detector = load_detector("par04")
        else:
            raise CaloforgeError(
                f"{self.path} has {n_cells} cells per shower and no binning; give the dataset's "
                "binning XML with --binning (binning_dataset_*.xml from CaloChallenge)"
            )
        if energy_scale is None:
            if stated_kind is not None and str(stated_kind) == VISIBLE:
                self.energy_scale = 1.0
            elif stated is not None or self.detector.sampling_fraction is not None:
                fraction = float(stated if stated is not None else self.detector.sampling_fraction)
                self.energy_scale = fraction
            else:
                self.unit = EnergyUnit(CALIBRATED, None)

    def _read(self, start, stop):
        with open_h5(self.path) as h5:
            showers = h5["showers"][start:stop]
            energies = np.asarray(h5["incident_energies"][start:stop], np.float64).reshape(-1)
        return showers, energies, energies[:, None], {}


# --- CaloGAN -------------------------------------------------------------------------------------

# The cells of hep-lbdl/CaloGAN, generation/src/SteppingAction.cc: a 480 x 480 mm window, layer
# boundaries at z = -240, -150, 197, 240 mm, layer 0 binned 3 in x by 96 in y, layer 1 12 x 12,
# layer 2 12 x 6. The boundaries cut through the 6 mm Pb/LAr sampling layers, so the stack cannot
# be written as whole repeats: the detector is a readout only.
_CALOGAN = {
    "name": "calogan",
    "title": "CaloGAN Pb/LAr calorimeter, 3 layers of 3x96, 12x12, 12x6 cells (readout only)",
    "description": (
        "The three-layer calorimeter of the CaloGAN study: 80 layers of 2 mm Pb + 4 mm liquid "
        "argon, 480 x 480 mm, read out in three depth segments of 90, 347 and 43 mm with cells "
        "of 160 x 5, 40 x 40 and 40 x 80 mm (x by y)."
    ),
    "approximates": (
        "The ATLAS-inspired calorimeter of Paganini, de Oliveira and Nachman (arXiv:1705.02355, "
        "1712.10321), as binned in github.com/hep-lbdl/CaloGAN generation/src/SteppingAction.cc. "
        "The segment boundaries fall inside sampling layers, so the materials are not given and "
        "the detector can be evaluated but not simulated."
    ),
    "size": [480.0, 480.0],
    "layers": [
        {
            "name": "layer0",
            "readout": {"binning": "cartesian", "nx": 3, "ny": 96, "dx": 160.0, "dy": 5.0},
        },
        {
            "name": "layer1",
            "readout": {"binning": "cartesian", "nx": 12, "ny": 12, "dx": 40.0, "dy": 40.0},
        },
        {
            "name": "layer2",
            "readout": {"binning": "cartesian", "nx": 12, "ny": 6, "dx": 40.0, "dy": 80.0},
        },
    ],
}


@cache
def calogan_detector() -> Detector:
    """The readout of the CaloGAN calorimeter (504 cells in three layers).

    References:
        Paganini, de Oliveira, Nachman, "CaloGAN", Phys. Rev. D 97, 014021 (arXiv:1712.10321);
        github.com/hep-lbdl/CaloGAN, ``generation/src/SteppingAction.cc``.

    Example:
        >>> [layer.readout.shape for layer in calogan_detector().readout_layers]
        [(96, 3), (12, 12), (6, 12)]
    """
    return Detector.model_validate(_CALOGAN)


class CaloGANReader(ForeignReader):
    """A CaloGAN HDF5 file (``eplus.hdf5``, ``gamma.hdf5``, ``piplus.hdf5``).

    Layout (hep-lbdl/CaloGAN, ``generation/convert.py``): ``layer_0`` (N, 3, 96), ``layer_1``
    (N, 12, 12), ``layer_2`` (N, 12, 6), each indexed [event, x bin, y bin] (the flat cell index of
    ``SteppingAction.cc`` is x bin * ny + y bin); ``overflow`` (N, 3), the energy outside the window
    in each layer; ``energy`` (N, 1), the incident energy. Units (``models/train.py``): ``energy``
    in GeV ("convert to MeV" multiplies it by 1000), cells in MeV (divided by 1000 "to convert MeV
    => GeV"); both are Geant4 energies written without conversion. Each layer is transposed to
    caloforge's y-major order; ``overflow`` is kept, in MeV, as the extras ``overflow_0..2``.

    References:
        Paganini, de Oliveira, Nachman, arXiv:1705.02355 and arXiv:1712.10321;
        github.com/hep-lbdl/CaloGAN.
    """

    format = "calogan"
    condition_names = ("energy",)
    needed = ("energy", "layer_0", "layer_1", "layer_2")
    layer_shapes = ((3, 96), (12, 12), (12, 6))

    def __init__(self, path: str | Path, *, energy_scale: float | None = None):
        super().__init__(path, energy_scale=energy_scale)
        self.detector = calogan_detector()
        with open_h5(self.path) as h5:
            _require_datasets(h5, self.path, self.format, self.needed)
            lengths = {}
            for i, shape in enumerate(self.layer_shapes):
                _check_shape(self.path, f"layer_{i}", h5[f"layer_{i}"].shape, (None, *shape))
                lengths[f"layer_{i}"] = len(h5[f"layer_{i}"])
            _check_shape(self.path, "energy", h5["energy"].shape, (None, 1), (None,))
            lengths["energy"] = len(h5["energy"])
            self._overflow = "overflow" in h5
            if self._overflow:
                _check_shape(self.path, "overflow", h5["overflow"].shape, (None, 3))
                lengths["overflow"] = len(h5["overflow"])
                self.extra_names = ("overflow_0", "overflow_1", "overflow_2")
            self.n_events = _same_length(self.path, lengths)

    def _read(self, start, stop):
        with open_h5(self.path) as h5:
            layers = [
                np.asarray(h5[f"layer_{i}"][start:stop])
                .transpose(0, 2, 1)
                .reshape(stop - start, -1)
                for i in range(3)
            ]
            energies = np.asarray(h5["energy"][start:stop], np.float64).reshape(-1) * _MEV_PER_GEV
            extras = {}
            if self._overflow:
                overflow = np.asarray(h5["overflow"][start:stop], np.float64) * self.energy_scale
                extras = {name: overflow[:, i] for i, name in enumerate(self.extra_names)}
        return np.concatenate(layers, axis=1), energies, energies[:, None], extras


# --- LHCb ----------------------------------------------------------------------------------------


class LHCbNpzReader(ForeignReader):
    """An ``.npz`` of the LHCb ECAL GAN studies (yandexdataschool/CaloGAN).

    Layout (``generationLHCB/root2numpy.py`` with ``src/RunData.cc`` of the same commit):
    ``EnergyDeposit`` (N, 30, 30) (or (N, 30, 30, 1)) indexed [event, x cell, y cell], the
    scintillator energy of each cell summed over depth (flat index (ix * 30 + iy), reshaped to
    (30, 30, -1)); ``ParticlePoint`` (N, 3) or (N, 2), the entry point on the face in cm;
    ``ParticleMomentum`` (N, 3) in GeV (``RunData::SetParticle`` divides by cm and GeV);
    ``ParticlePDG`` (N,). The cell energies are Geant4 deposits stored without conversion: MeV.
    Their cells are 121.2 mm / 6 = 20.2 mm; ``lhcb-ecal`` has 20 mm cells.

    Conditions px, py, pz (MeV) and x, y (mm); the incident energy is the kinetic energy from the
    momentum and the PDG mass, and the PDG code is kept as the extra ``pdg``.

    References:
        Chekalina et al., "Generative Models for Fast Calorimeter Simulation: the LHCb case",
        CHEP 2018, arXiv:1812.01319; github.com/yandexdataschool/CaloGAN.
    """

    format = "lhcb-npz"
    condition_names = ("px", "py", "pz", "x", "y")
    needed = ("EnergyDeposit", "ParticlePoint", "ParticleMomentum", "ParticlePDG")

    def __init__(self, path: str | Path, *, energy_scale: float | None = None):
        super().__init__(path, energy_scale=energy_scale)
        self.detector = load_detector("lhcb-ecal")
        self.extra_names = ("pdg",)
        arrays = _load_npz(self.path)
        for key in self.needed:
            if key not in arrays:
                raise CaloforgeError(
                    f"{self.path} has no {key!r} array; an lhcb-npz file needs "
                    f"{', '.join(self.needed)}"
                )
        deposit = arrays["EnergyDeposit"]
        _check_shape(self.path, "EnergyDeposit", deposit.shape, (None, 30, 30), (None, 30, 30, 1))
        point, momentum = arrays["ParticlePoint"], arrays["ParticleMomentum"]
        _check_shape(self.path, "ParticlePoint", point.shape, (None, 2), (None, 3))
        _check_shape(self.path, "ParticleMomentum", momentum.shape, (None, 3))
        pdg = arrays["ParticlePDG"]
        _check_shape(self.path, "ParticlePDG", pdg.shape, (None,), (None, 1))
        self.n_events = _same_length(
            self.path,
            {key: len(arrays[key]) for key in self.needed},
        )
        # [event, x, y] -> [event, y, x]: caloforge's y-major order
        self._showers = deposit.reshape(self.n_events, 30, 30).transpose(0, 2, 1)
        self._pdg = pdg.reshape(-1).astype(np.int64)
        unknown = sorted({int(c) for c in self._pdg} - {p.pdg for p in PARTICLES.values()})
        if unknown:
            known = ", ".join(f"{p.pdg} ({p.name})" for p in PARTICLES.values())
            raise CaloforgeError(
                f"{self.path}: ParticlePDG has codes caloforge does not know ({unknown[:5]}); "
                f"known: {known}"
            )
        mass = {p.pdg: p.mass for p in PARTICLES.values()}
        self._mass = np.array([mass[int(c)] for c in self._pdg], dtype=np.float64)
        self._momentum = momentum.astype(np.float64) * _MEV_PER_GEV
        self._point = point[:, :2].astype(np.float64) * _MM_PER_CM

    def _read(self, start, stop):
        p = self._momentum[start:stop]
        m = self._mass[start:stop]
        energies = np.sqrt(np.sum(p**2, axis=1) + m**2) - m
        conditions = np.concatenate([p, self._point[start:stop]], axis=1)
        showers = self._showers[start:stop].reshape(stop - start, -1)
        return showers, energies, conditions, {"pdg": self._pdg[start:stop].astype(np.float64)}


def _load_npz(path: Path) -> Mapping[str, np.ndarray]:
    if not path.exists():
        raise CaloforgeError(f"no such file: {path}")
    if not path.is_file():
        raise CaloforgeError(f"{path} is not a file")
    try:
        archive = np.load(path, allow_pickle=False)
    except PermissionError:
        raise CaloforgeError(f"cannot read {path}: permission denied") from None
    except (OSError, ValueError, EOFError):
        raise CaloforgeError(f"{path} is not an .npz archive") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CaloforgeError(f"{path} is a single .npy array, not an .npz archive")
    with archive:
        return {key: archive[key] for key in archive.files}


# --- 3DGAN ---------------------------------------------------------------------------------------


class ThreeDGANReader(ForeignReader):
    """A 3DGAN variable-angle HDF5 file (electrons, CLIC ECAL 51 x 51 x 25).

    Layout (svalleco/3Dgan, ``keras/AngleTrain3dGAN.py``, ``keras/analysis/utils/GANutils.py``):
    ``ECAL`` (N, 51, 51, 25) indexed [event, x, y, layer]; ``energy`` (N,) the primary energy in
    GeV (cut at 150-350 in ``RootAnalysisAngle.py``); ``theta`` (N,) in radians (compared with
    ``np.radians`` there). The cells of the variable-angle data are GeV x 50: "Data = dscale *
    GeV" with dscale 50 (``analysis/RootAnalysisAngle.py``, branches gkhattak/dev and
    svalleco/low_precision), so the default ``energy_scale`` is 20 MeV per unit; files in plain
    GeV (the fixed-angle data) need ``energy_scale=1000``.

    The shower tilts along the image's y axis (``measPython`` measures θ = 90° - atan(dy/dz)),
    while caloforge's θ is 90° - atan2(dx, dz), tilted along x. So their y becomes caloforge's x
    and their x caloforge's y: each event becomes (layer, their x, their y) = (layer, y, x).

    References:
        Khattak, Vallecorsa, Carminati, Khan, "Fast simulation of a high granularity calorimeter
        by generative adversarial networks", Eur. Phys. J. C (2022),
        doi:10.1140/epjc/s10052-022-10258-4; github.com/svalleco/3Dgan.
    """

    format = "3dgan"
    condition_names = ("energy", "theta")
    default_energy_scale = _MEV_PER_GEV / 50
    needed = ("ECAL", "energy", "theta")

    def __init__(self, path: str | Path, *, energy_scale: float | None = None):
        super().__init__(path, energy_scale=energy_scale)
        self.detector = load_detector("clic-ecal")
        with open_h5(self.path) as h5:
            _require_datasets(h5, self.path, self.format, self.needed)
            _check_shape(self.path, "ECAL", h5["ECAL"].shape, (None, 51, 51, 25))
            for key in ("energy", "theta"):
                _check_shape(self.path, key, h5[key].shape, (None,), (None, 1))
            self.n_events = _same_length(self.path, {k: len(h5[k]) for k in self.needed})

    def _read(self, start, stop):
        with open_h5(self.path) as h5:
            cells = np.asarray(h5["ECAL"][start:stop]).transpose(0, 3, 1, 2)
            energies = np.asarray(h5["energy"][start:stop], np.float64).reshape(-1) * _MEV_PER_GEV
            theta = np.asarray(h5["theta"][start:stop], np.float64).reshape(-1)
        outside = (theta < 0) | (theta > math.pi)
        if outside.any():
            event = start + int(np.argwhere(outside)[0, 0])
            raise CaloforgeError(
                f"{self.path}: theta {theta[outside][0]:g} in event {event} is not an angle in "
                "radians between 0 and pi, as 3DGAN files store it"
            )
        conditions = np.stack([energies, np.degrees(theta)], axis=1)
        return cells.reshape(stop - start, -1), energies, conditions, {}


# --- conversion ----------------------------------------------------------------------------------

_READERS: dict[str, type[ForeignReader]] = {
    reader.format: reader
    for reader in (CaloChallengeReader, CaloGANReader, LHCbNpzReader, ThreeDGANReader)
}

FORMATS: tuple[str, ...] = tuple(_READERS)
"""Names of the foreign formats, as ``caloforge convert --from`` takes them."""


def open_foreign(
    path: str | Path,
    fmt: str,
    *,
    binning: str | Path | None = None,
    energy_scale: float | None = None,
) -> ForeignReader:
    """The reader for a foreign file of format ``fmt`` (one of ``FORMATS``), validated.

    Arguments:
        path: the foreign file.
        fmt: its format.
        binning: CaloChallenge binning XML (only for ``calochallenge``).
        energy_scale: MeV per unit of the file's cell energies; None takes the format's default.
    """
    if fmt not in _READERS:
        raise CaloforgeError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    options: dict[str, Any] = {"energy_scale": energy_scale}
    if binning is not None:
        if fmt != "calochallenge":
            raise CaloforgeError(f"--binning applies to calochallenge files, not to {fmt}")
        options["binning"] = binning
    return _READERS[fmt](path, **options)


def convert(
    src: str | Path,
    out: str | Path,
    fmt: str,
    *,
    binning: Path | None = None,
    overwrite: bool = False,
    batch_size: int = 10_000,
    energy_scale: float | None = None,
) -> Path:
    """Convert a foreign shower file into a caloforge shower file, batch by batch.

    The output is written as ``out.partial`` and renamed when every event is in, so an
    interrupted conversion leaves only the ``.partial`` file. It carries the detector, the
    producer ``{"kind": "converted", "format": fmt, "from": src}`` and the cell order, and no
    source (the foreign file does not say how its particles were drawn).

    Arguments:
        src: the foreign file.
        out: the caloforge file to write.
        fmt: the foreign format, one of ``FORMATS``.
        binning: CaloChallenge binning XML giving the cell geometry.
        overwrite: replace an existing output file.
        batch_size: events read and written at a time.
        energy_scale: MeV per unit of the file's cell energies; None takes the format's default.

    Returns:
        The path of the written file.
    """
    src, out = Path(src), Path(out)
    refuse_same_file(src, out)
    reader = open_foreign(src, fmt, binning=binning, energy_scale=energy_scale)
    detector = reader.detector
    attrs = {
        "detector": detector.to_yaml(),
        "producer": json.dumps({"kind": "converted", "format": fmt, "from": str(src)}),
        "cell_order": detector.cell_order,
        **reader.unit.attrs(),
    }
    with ShowerWriter.create(
        out,
        n_cells=detector.n_cells,
        condition_names=reader.condition_names,
        attrs=attrs,
        extra_names=reader.extra_names,
        n_planned=reader.n_events,
        overwrite=overwrite,
    ) as writer:
        for batch in reader.iter_batches(batch_size):
            writer.append(batch)
    return writer.final


def to_calochallenge(
    src: str | Path,
    out: str | Path,
    *,
    sampling_fraction: float | None = None,
    overwrite: bool = False,
    batch_size: int = 10_000,
) -> Path:
    """Write a caloforge shower file in CaloChallenge's layout and units.

    The cells are divided by the sampling fraction (the one given, else the detector's: 0.033
    for ``par04``, CaloChallenge's convention for datasets 2 and 3), so that E_tot/E_inc is
    about 0.94 as in CaloChallenge's files and its ``evaluate.py`` finds the events inside its
    histogram ranges and applies its threshold (15.15 keV of calibrated energy, 0.5 keV in
    silicon) to the right cells. ``incident_energies`` (N, 1) and ``showers`` (N, cells) are
    what CaloChallenge reads; the file keeps caloforge's attributes and conditions too and
    states its unit, so caloforge reads it back in visible MeV.

    Arguments:
        src: a caloforge shower file in visible MeV.
        out: the file to write (as ``out.partial`` until complete).
        sampling_fraction: the visible fraction to divide by; None takes the detector's.
        overwrite: replace an existing output file.
        batch_size: events read and written at a time.

    Returns:
        The path of the written file.
    """
    src, out = Path(src), Path(out)
    refuse_same_file(src, out)
    f = ShowerFile(src)
    unit = f.energy_unit
    if unit is not None and unit.kind != VISIBLE:
        raise CaloforgeError(f"{src} holds {unit}, not visible MeV; it is already calibrated")
    detector = f.detector
    if detector is None:
        raise CaloforgeError(f"{src} does not record its detector; convert it to caloforge first")
    fraction = detector.sampling_fraction if sampling_fraction is None else sampling_fraction
    if fraction is None:
        raise CaloforgeError(
            f"detector {detector.name!r} has no sampling fraction; give one with "
            "--sampling-fraction (CaloChallenge uses 0.033 for Par04)"
        )
    if not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise CaloforgeError(f"the sampling fraction must be in (0, 1], got {fraction}")
    header = f.header | EnergyUnit(CALIBRATED, float(fraction)).attrs()
    with ShowerWriter.create(
        out,
        n_cells=f.n_cells,
        condition_names=f.condition_names,
        attrs=header,
        extra_names=f.extra_names,
        n_planned=len(f),
        overwrite=overwrite,
    ) as writer:
        for batch in f.iter_batches(batch_size):
            batch.showers = (batch.showers / np.float32(fraction)).astype(np.float32)
            writer.append(batch)
    return writer.final
