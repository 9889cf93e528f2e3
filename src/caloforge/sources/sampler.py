"""Drawing primaries, and the conditions they imply, from a seed.

Event i of a run with seed s is the same whatever the run's length, sharding or resumption:
events are drawn in fixed blocks of ``BLOCK`` whose generator is seeded by ``(s, block index)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from caloforge.sources.spec import (
    PARTICLES,
    DiscreteEnergy,
    EtaDirection,
    FixedEnergy,
    GaussianAngles,
    LogUniformEnergy,
    NormalIncidence,
    PointPosition,
    Source,
    ThetaDirection,
    UniformEnergy,
    UniformSquare,
)

__all__ = ["BLOCK", "Primaries", "condition_values", "particle_conditions", "sample_primaries"]

BLOCK = 4096

_MASS = {p.pdg: p.mass for p in PARTICLES.values()}
_CODES = np.array(sorted(_MASS))
_MASSES = np.array([_MASS[c] for c in _CODES])
"""PDG codes in order and their masses (MeV), for a look-up by ``searchsorted``."""


@dataclass(frozen=True)
class Primaries:
    """N primaries: PDG codes, kinetic energies (MeV), entry points and unit directions."""

    pdg: np.ndarray
    energy: np.ndarray
    position: np.ndarray
    direction: np.ndarray

    def __len__(self) -> int:
        return len(self.energy)

    def __getitem__(self, index: slice) -> Primaries:
        return Primaries(
            self.pdg[index], self.energy[index], self.position[index], self.direction[index]
        )

    @cached_property
    def momentum(self) -> np.ndarray:
        """(N, 3) momentum in MeV."""
        index = np.searchsorted(_CODES, self.pdg).clip(max=len(_CODES) - 1)
        if not np.array_equal(_CODES[index], self.pdg):
            raise KeyError(f"unknown PDG codes {sorted(set(self.pdg) - set(_CODES))}")
        return self.direction * _momentum(self.energy, _MASSES[index])[:, None]

    def conditions(self, names: tuple[str, ...]) -> np.ndarray:
        """(N, k) float64 array of the named conditions, in the order given."""
        return np.stack([condition_values(self, name) for name in names], axis=1)


def condition_values(primaries: Primaries, name: str) -> np.ndarray:
    """One condition of every primary (see ``caloforge.sources.CONDITIONS``)."""
    if name in ("px", "py", "pz"):
        return primaries.momentum[:, "xyz".index(name[1])]
    p = primaries
    return np.asarray(
        _condition(name, p.pdg, p.energy, p.position.T, p.direction.T), dtype=np.float64
    )


def particle_conditions(
    names: tuple[str, ...], pdg: int, energy: float, position, direction
) -> list[float]:
    """``Primaries.conditions(names)`` of one particle, from Python numbers: the hybrid's trigger
    asks this of every particle entering the calorimeter, and NumPy's arrays of one cost ~30 µs.

    ``position``: (x, y[, z]) mm; ``direction``: a unit (dx, dy, dz).
    """
    p = _momentum(energy, _MASS[pdg]) if {"px", "py", "pz"} & set(names) else None
    return [
        float(direction["xyz".index(name[1])] * p)
        if name in ("px", "py", "pz")
        else float(_condition(name, pdg, energy, position, direction))
        for name in names
    ]


def _momentum(energy, mass):
    """Momentum (MeV) of a particle of kinetic energy ``energy`` and ``mass`` (MeV)."""
    return np.sqrt(energy**2 + 2 * energy * mass)


def _condition(name: str, pdg, energy, position, direction):
    """A condition other than a momentum component, of arrays or of one particle's numbers."""
    if name == "energy":
        return energy
    if name in ("x", "y"):
        return position["xy".index(name)]
    dx, _, dz = direction
    if name == "eta":
        return np.arcsinh(dx / dz)
    if name == "theta":
        return 90.0 - np.degrees(np.arctan2(dx, dz))
    if name == "particle":
        return pdg
    raise KeyError(name)


def sample_primaries(source: Source, start: int, stop: int, seed: int) -> Primaries:
    """Events ``start`` to ``stop`` (exclusive) of the run of ``source`` with ``seed``.

    Example:
        >>> from caloforge.sources import load_source
        >>> src = load_source("lhcb")
        >>> a = sample_primaries(src, 0, 10, seed=1)
        >>> b = sample_primaries(src, 5, 10, seed=1)
        >>> bool(np.array_equal(a.energy[5:], b.energy))
        True
    """
    if not 0 <= start <= stop:
        raise ValueError(f"bad event range {start}..{stop}")
    first, last = start // BLOCK, max(start, stop - 1) // BLOCK
    blocks = [_block(source, seed, b) for b in range(first, last + 1)]
    merged = Primaries(*(np.concatenate(arrays) for arrays in zip(*(_fields(b) for b in blocks))))
    return merged[start - first * BLOCK : stop - first * BLOCK]


def _fields(p: Primaries) -> tuple[np.ndarray, ...]:
    return (p.pdg, p.energy, p.position, p.direction)


@lru_cache(maxsize=4)
def _block(source: Source, seed: int, index: int) -> Primaries:
    """Block ``index`` of the run; kept, as a worker's chunks take a block ~80 times in turn."""
    rng = np.random.default_rng([seed, index])
    n = BLOCK
    pdgs = np.array([PARTICLES[p].pdg for p in source.particles])
    pdg = pdgs[rng.integers(len(pdgs), size=n)]
    return Primaries(
        pdg=pdg,
        energy=_energies(source.energy, rng, n),
        position=_positions(source.position, rng, n),
        direction=_directions(source.direction, rng, n),
    )


def _energies(spec, rng: np.random.Generator, n: int) -> np.ndarray:
    if isinstance(spec, FixedEnergy):
        return np.full(n, spec.value)
    if isinstance(spec, UniformEnergy):
        return rng.uniform(spec.min, spec.max, n)
    if isinstance(spec, LogUniformEnergy):
        return np.exp(rng.uniform(math.log(spec.min), math.log(spec.max), n))
    if isinstance(spec, DiscreteEnergy):
        return np.asarray(spec.values)[rng.integers(len(spec.values), size=n)]
    raise TypeError(spec)


def _positions(spec, rng: np.random.Generator, n: int) -> np.ndarray:
    pos = np.zeros((n, 3))
    if isinstance(spec, PointPosition):
        pos[:, 0], pos[:, 1] = spec.x, spec.y
    elif isinstance(spec, UniformSquare):
        pos[:, 0] = spec.x + rng.uniform(-spec.half_width_x, spec.half_width_x, n)
        pos[:, 1] = spec.y + rng.uniform(-spec.half_width_y, spec.half_width_y, n)
    else:
        raise TypeError(spec)
    return pos


def _directions(spec, rng: np.random.Generator, n: int) -> np.ndarray:
    tan_x = np.zeros(n)
    tan_y = np.zeros(n)
    if isinstance(spec, GaussianAngles):
        # A particle must enter through the face: the rare draws beyond 85 degrees are clipped.
        tan_x = np.tan(np.radians(np.clip(rng.normal(0.0, spec.sigma_xz, n), -85, 85)))
        tan_y = np.tan(np.radians(np.clip(rng.normal(0.0, spec.sigma_yz, n), -85, 85)))
    elif isinstance(spec, EtaDirection):
        tan_x = np.sinh(rng.uniform(spec.min, spec.max, n))
    elif isinstance(spec, ThetaDirection):
        tan_x = np.tan(np.radians(90.0 - rng.uniform(spec.min, spec.max, n)))
    elif not isinstance(spec, NormalIncidence):
        raise TypeError(spec)
    d = np.stack([tan_x, tan_y, np.ones(n)], axis=1)
    return d / np.linalg.norm(d, axis=1, keepdims=True)
