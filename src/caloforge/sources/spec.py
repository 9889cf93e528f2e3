"""Particle sources: which particle, with which energy, entry point and direction.

A source also names the quantities that are a model's conditions. Energies are kinetic energies
in MeV, lengths in mm, angles in degrees. The entry point is where the particle crosses the
detector's front face (z = 0); directions are unit vectors with z along the depth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from caloforge.errors import CaloforgeError

__all__ = [
    "CONDITIONS",
    "PARTICLES",
    "DiscreteEnergy",
    "EtaDirection",
    "FixedEnergy",
    "GaussianAngles",
    "LogUniformEnergy",
    "NormalIncidence",
    "Particle",
    "PointPosition",
    "Source",
    "ThetaDirection",
    "UniformEnergy",
    "UniformSquare",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Particle(_Model):
    """A primary particle: Geant4 name, PDG code and mass in MeV (PDG 2024)."""

    name: str
    pdg: int
    mass: float


PARTICLES: dict[str, Particle] = {
    p.name: p
    for p in (
        Particle(name="e-", pdg=11, mass=0.51099895),
        Particle(name="e+", pdg=-11, mass=0.51099895),
        Particle(name="gamma", pdg=22, mass=0.0),
        Particle(name="pi0", pdg=111, mass=134.9768),
        Particle(name="pi+", pdg=211, mass=139.57039),
        Particle(name="pi-", pdg=-211, mass=139.57039),
        Particle(name="mu-", pdg=13, mass=105.6583755),
        Particle(name="proton", pdg=2212, mass=938.27208816),
        Particle(name="neutron", pdg=2112, mass=939.56542052),
    )
}

CONDITIONS: dict[str, tuple[str, str]] = {
    "energy": ("MeV", "kinetic energy of the primary"),
    "px": ("MeV", "momentum along x"),
    "py": ("MeV", "momentum along y"),
    "pz": ("MeV", "momentum along z (the depth)"),
    "x": ("mm", "entry point on the front face"),
    "y": ("mm", "entry point on the front face"),
    "eta": ("", "pseudorapidity of the direction, asinh(dx/dz), beam along x"),
    "theta": ("deg", "polar angle to the beam along x, 90 - atan2(dx, dz); 90 is normal incidence"),
    "particle": ("", "PDG code of the primary"),
}
"""Every quantity a source can name as a condition: its unit ("" for a number without one) and
meaning."""

MOMENTUM = ("px", "py", "pz")
"""The conditions that give the momentum, and with it the incident energy."""


def energy_from(names: Sequence[str]) -> str:
    """How the incident energy follows from conditions called ``names``: ``energy``, a condition
    of its own, or ``momentum``, the size of (px, py, pz) (e±/γ well above their mass)."""
    if "energy" in names:
        return "energy"
    if all(n in names for n in MOMENTUM):
        return "momentum"
    raise CaloforgeError(f"cannot tell the incident energy from conditions {list(names)}")


def incident_energy(conditions, names: Sequence[str]):
    """(N, 1) incident energy in MeV of (N, k) conditions called ``names``: numpy or torch."""
    names = list(names)
    if energy_from(names) == "energy":
        return conditions[:, names.index("energy")][:, None]
    px, py, pz = (conditions[:, names.index(n)] for n in MOMENTUM)
    return ((px**2 + py**2 + pz**2) ** 0.5)[:, None]


class FixedEnergy(_Model):
    kind: Literal["fixed"] = "fixed"
    value: float = Field(gt=0)

    @property
    def range(self) -> tuple[float, float]:
        return (self.value, self.value)


class UniformEnergy(_Model):
    kind: Literal["uniform"] = "uniform"
    min: float = Field(gt=0)
    max: float = Field(gt=0)

    @property
    def range(self) -> tuple[float, float]:
        return (self.min, self.max)


class LogUniformEnergy(_Model):
    """dN/dE ∝ 1/E between min and max, i.e. uniform in ln E."""

    kind: Literal["log_uniform"] = "log_uniform"
    min: float = Field(gt=0)
    max: float = Field(gt=0)

    @property
    def range(self) -> tuple[float, float]:
        return (self.min, self.max)


class DiscreteEnergy(_Model):
    """Equally likely fixed energies (the ATLAS study's nine points)."""

    kind: Literal["discrete"] = "discrete"
    values: tuple[float, ...] = Field(min_length=1)

    @property
    def range(self) -> tuple[float, float]:
        return (min(self.values), max(self.values))


Energy = Annotated[
    FixedEnergy | UniformEnergy | LogUniformEnergy | DiscreteEnergy, Field(discriminator="kind")
]


class PointPosition(_Model):
    kind: Literal["point"] = "point"
    x: float = 0.0
    y: float = 0.0


class UniformSquare(_Model):
    """Entry point uniform in a rectangle centred on (x, y)."""

    kind: Literal["uniform_square"] = "uniform_square"
    x: float = 0.0
    y: float = 0.0
    half_width_x: float = Field(ge=0)
    half_width_y: float = Field(ge=0)


Position = Annotated[PointPosition | UniformSquare, Field(discriminator="kind")]


class NormalIncidence(_Model):
    kind: Literal["normal"] = "normal"


class GaussianAngles(_Model):
    """Angles to the z axis in the xz and yz planes, each Gaussian around 0 (the LHCb set-up)."""

    kind: Literal["gaussian_angles"] = "gaussian_angles"
    sigma_xz: float = Field(ge=0, description="deg")
    sigma_yz: float = Field(ge=0, description="deg")


class EtaDirection(_Model):
    """A particle from a barrel's interaction point (beam along x) at pseudorapidity η.

    Its angle to the face normal α obeys tan α = sinh η: η = 0 is normal incidence.
    """

    kind: Literal["eta"] = "eta"
    min: float
    max: float


class ThetaDirection(_Model):
    """Polar angle θ to a beam along x, uniform in [min, max] deg; θ = 90 is normal incidence."""

    kind: Literal["theta"] = "theta"
    min: float = Field(gt=0, lt=180)
    max: float = Field(gt=0, lt=180)


Direction = Annotated[
    NormalIncidence | GaussianAngles | EtaDirection | ThetaDirection, Field(discriminator="kind")
]


class Source(_Model):
    """A particle source and the conditions a model is given."""

    name: str
    title: str = ""
    description: str = ""
    particles: tuple[str, ...] = Field(min_length=1, description="equally likely primaries")
    energy: Energy
    position: Position = PointPosition()
    direction: Direction = NormalIncidence()
    flight: float = Field(
        default=0.0,
        ge=0,
        description="mm along z from where the primary is made to the face, in vacuum: a π⁰ "
        "decays on the way and its photons spread apart as they would coming from an "
        "interaction point; 0 starts it just in front of the face",
    )
    conditions: tuple[str, ...] = Field(min_length=1)

    @field_validator("particles")
    @classmethod
    def _known_particles(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if name not in PARTICLES:
                raise ValueError(f"unknown particle {name!r}; known: {', '.join(PARTICLES)}")
        return names

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if name not in CONDITIONS:
                raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
        if len(set(names)) != len(names):
            raise ValueError("conditions must not repeat")
        return names

    @model_validator(mode="after")
    def _ordered_ranges(self) -> Source:
        for spec in (self.energy, self.direction):
            lo, hi = getattr(spec, "min", None), getattr(spec, "max", None)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{spec.kind} range has min {lo} > max {hi}")
        if isinstance(self.direction, EtaDirection) and max(
            abs(self.direction.min), abs(self.direction.max)
        ) >= math.asinh(1e3):
            raise ValueError("eta range is too close to grazing incidence")
        return self

    @property
    def energy_range(self) -> tuple[float, float]:
        """Smallest and largest energy the source makes, MeV."""
        return self.energy.range
