"""Particle sources and the conditions drawn from them.

Built-in presets live beside this module as ``builtin/NAME.yaml``; any YAML with the same schema
is a source too.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from caloforge.errors import CaloforgeError, checked
from caloforge.sources.sampler import (
    BLOCK,
    Primaries,
    condition_values,
    particle_conditions,
    sample_primaries,
)
from caloforge.sources.spec import (
    CONDITIONS,
    PARTICLES,
    FixedEnergy,
    LogUniformEnergy,
    Particle,
    Source,
    UniformEnergy,
)
from caloforge.specs import builtin_names, load_spec, spec_from_yaml

__all__ = [
    "BLOCK",
    "CONDITIONS",
    "PARTICLES",
    "Particle",
    "Primaries",
    "Source",
    "builtin_sources",
    "condition_values",
    "load_source",
    "parse_energy",
    "particle_conditions",
    "sample_primaries",
    "source_from_yaml",
    "source_to_yaml",
    "with_energy",
]


def builtin_sources() -> list[str]:
    """Names of the source presets that ship with caloforge."""
    return builtin_names("caloforge.sources")


def source_from_yaml(text: str, origin: str = "source YAML") -> Source:
    """Parse and validate a source spec."""
    return spec_from_yaml(Source, text, origin, "source")


def source_to_yaml(source: Source) -> str:
    """The YAML text of a source, as written into shower files."""
    exclude = None if source.flight else {"flight"}  # files of sources without it unchanged
    return yaml.safe_dump(source.model_dump(mode="json", exclude=exclude), sort_keys=False)


@checked
def load_source(name_or_path: str | Path) -> Source:
    """A built-in preset by name, or a source YAML file by path.

    Example:
        >>> load_source("atlas").conditions
        ('energy', 'eta')
    """
    return load_spec(Source, name_or_path, "caloforge.sources", "source")


_UNITS = {"kev": 1e-3, "mev": 1.0, "gev": 1e3, "tev": 1e6}


def parse_energy(text: str) -> float:
    """An energy in MeV from text such as ``20GeV``, ``500 MeV`` or ``1500`` (MeV).

    Example:
        >>> parse_energy("20GeV"), parse_energy("750")
        (20000.0, 750.0)
    """
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgGtT]e[vV])?\s*", text)
    try:
        value = float(match.group(1)) * _UNITS[(match.group(2) or "MeV").lower()]
    except (AttributeError, ValueError):
        raise CaloforgeError(f"cannot read energy {text!r}; write e.g. 20GeV or 500MeV") from None
    if not value > 0:
        raise CaloforgeError(f"energy must be positive, got {text!r}")
    return value


def with_energy(
    source: Source, energy: float | None = None, energy_range: tuple[float, float] | None = None
) -> Source:
    """The source with a fixed energy (inside its range) or a new energy range.

    A fixed energy outside the source's range is refused: a model trained on the source would be
    asked to extrapolate. A new range keeps the spectrum's shape (uniform or 1/E); a discrete
    source becomes uniform over it.
    """
    if energy is not None and energy_range is not None:
        raise CaloforgeError("give either a fixed energy or an energy range, not both")
    if energy is not None:
        lo, hi = source.energy_range
        if not lo * (1 - 1e-9) <= energy <= hi * (1 + 1e-9):
            raise CaloforgeError(
                f"energy {energy / 1e3:g} GeV is outside source {source.name!r}'s range "
                f"{lo / 1e3:g}-{hi / 1e3:g} GeV"
            )
        return source.model_copy(update={"energy": FixedEnergy(value=energy)})
    if energy_range is not None:
        lo, hi = energy_range
        if not 0 < lo <= hi:
            raise CaloforgeError(f"energy range must be 0 < min <= max, got {lo:g}..{hi:g} MeV")
        kind = LogUniformEnergy if isinstance(source.energy, LogUniformEnergy) else UniformEnergy
        spectrum = FixedEnergy(value=lo) if lo == hi else kind(min=lo, max=hi)
        return source.model_copy(update={"energy": spectrum})
    return source
