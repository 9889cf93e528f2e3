"""Detectors: materials, readout layers and cell geometry, loaded from YAML.

Built-in detectors live beside this module as ``builtin/NAME.yaml``; any other YAML file with the
same schema is a detector too.
"""

from __future__ import annotations

from pathlib import Path

from caloforge.detectors.materials import MATERIALS, Material, SamplingMixture, get_material
from caloforge.detectors.spec import CartesianBinning, Detector, Layer, PolarBinning, Slice
from caloforge.errors import checked
from caloforge.specs import builtin_names, load_spec, spec_from_yaml

__all__ = [
    "MATERIALS",
    "CartesianBinning",
    "Detector",
    "Layer",
    "Material",
    "PolarBinning",
    "SamplingMixture",
    "Slice",
    "builtin_detectors",
    "detector_from_yaml",
    "elements_of_detector",
    "get_material",
    "load_detector",
]


def builtin_detectors() -> list[str]:
    """Names of the detectors that ship with caloforge."""
    return builtin_names("caloforge.detectors")


def detector_from_yaml(text: str, origin: str = "detector YAML") -> Detector:
    """Parse and validate a detector description; errors name the field that is wrong."""
    return spec_from_yaml(Detector, text, origin, "detector")


@checked
def load_detector(name_or_path: str | Path) -> Detector:
    """A built-in detector by name, or a detector YAML file by path.

    Example:
        >>> load_detector("atlas-like").n_cells
        266
    """
    return load_spec(Detector, name_or_path, "caloforge.detectors", "detector")


def elements_of_detector(detector: Detector) -> set[int]:
    """Atomic numbers of every element in a detector's materials, world included."""
    from caloforge.detectors.materials import elements_of_materials

    names = {s.material for layer in detector.stack for s in layer.slices}
    names |= {s.material for s in detector.upstream}
    return elements_of_materials(names | {detector.world_material})
