"""Invertible transforms for cell energies and conditions.

Each transform has ``fit`` (on numpy data), ``forward`` and ``inverse`` (on numpy arrays or torch
tensors alike, so an inverse can sit inside an exported ONNX graph) and ``state``/``from_state``
to store its fitted constants as JSON in a model's config.json. Transforms that need the incident
energy (energy fractions) take it as ``energy`` of shape (N, 1).

Example:
    >>> x = np.random.default_rng(0).exponential(10.0, size=(100, 4))
    >>> t = Chain([BoxCox(shift=1e-3), Standardize()]).fit(x)
    >>> bool(np.allclose(t.inverse(t.forward(x)), x))
    True
    >>> bool(np.allclose(transform_from_state(t.state()).forward(x), t.forward(x)))
    True
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from caloforge.errors import CaloforgeError

__all__ = [
    "BoxCox",
    "Chain",
    "Directions",
    "EnergyFraction",
    "EnergyParts",
    "Identity",
    "Log",
    "Log1p",
    "LogColumns",
    "LogShares",
    "LogitFraction",
    "OneHot",
    "Power",
    "SpiralUnroll",
    "Standardize",
    "Transform",
    "part_slots",
    "transform_from_state",
]

_REGISTRY: dict[str, type[Transform]] = {}


def _ns(x):
    """The array namespace of x: numpy or torch."""
    if isinstance(x, np.ndarray | np.generic | float | int):
        return np
    import torch

    return torch


def _const(value, like):
    """A constant array shaped for broadcasting against ``like`` in its namespace and dtype."""
    value = np.asarray(value, dtype=np.float64)
    if isinstance(like, np.ndarray):
        return value.astype(like.dtype if like.dtype.kind == "f" else np.float64)
    import torch

    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


class Transform(ABC):
    """An invertible map with fitted constants."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.name] = cls

    def fit(self, x: np.ndarray, energy: np.ndarray | None = None) -> Transform:
        """Fit constants on data (no-op for transforms without any); returns self."""
        return self

    @abstractmethod
    def forward(self, x, energy=None): ...

    @abstractmethod
    def inverse(self, y, energy=None): ...

    def params(self) -> dict[str, Any]:
        """The constructor arguments and fitted constants, JSON-serialisable."""
        return {}

    def state(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params().items() if not isinstance(v, list)}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def transform_from_state(state: dict[str, Any]) -> Transform:
    """Rebuild a transform from ``Transform.state()``."""
    state = dict(state)
    try:
        cls = _REGISTRY[state.pop("name")]
    except KeyError as exc:
        raise CaloforgeError(f"unknown transform {exc.args[0]!r} in a model config") from None
    if cls is Chain:
        return Chain([transform_from_state(s) for s in state["steps"]])
    return cls(**state)


class Identity(Transform):
    name = "identity"

    def forward(self, x, energy=None):
        return x

    def inverse(self, y, energy=None):
        return y


class Log(Transform):
    """y = ln(x + eps)."""

    name = "log"

    def __init__(self, eps: float = 0.0):
        self.eps = float(eps)

    def forward(self, x, energy=None):
        return _ns(x).log(x + self.eps)

    def inverse(self, y, energy=None):
        return _ns(y).exp(y) - self.eps

    def params(self):
        return {"eps": self.eps}


class LogColumns(Transform):
    """y = log x in the given columns (positive quantities such as energies), x elsewhere.

    Example:
        >>> LogColumns([0]).forward(np.array([[np.e, 0.2]]))
        array([[1. , 0.2]])
    """

    name = "log_columns"

    def __init__(self, columns: list[int]):
        self.columns = [int(c) for c in columns]

    def _mask(self, x):
        mask = np.zeros(x.shape[-1])
        mask[self.columns] = 1.0
        return _const(mask, x)

    def forward(self, x, energy=None):
        m = self._mask(x)
        # The other columns go through log(1) = 0, so they may be zero or negative.
        return m * _ns(x).log(x * m + (1 - m)) + (1 - m) * x

    def inverse(self, y, energy=None):
        m = self._mask(y)
        return m * _ns(y).exp(y * m) + (1 - m) * y

    def params(self):
        return {"columns": self.columns}


class Log1p(Transform):
    """y = ln(1 + x / scale), the NYU study's preprocessing with a unit ``scale``.

    ``fit`` records the largest value seen (``upper``); the inverse saturates there, so that a
    network's output far out in the log (a sampled tail) never becomes an energy no training
    cell had: e^y grows too fast for such a tail to be harmless.
    """

    name = "log1p"

    def __init__(self, scale: float = 1.0, upper: float | None = None):
        self.scale = float(scale)
        self.upper = upper

    def fit(self, x, energy=None):
        self.upper = float(np.max(x))
        return self

    @property
    def y_max(self) -> float:
        """The image of ``upper`` (infinite before fitting)."""
        return math.inf if self.upper is None else math.log1p(self.upper / self.scale)

    def forward(self, x, energy=None):
        return _ns(x).log1p(x / self.scale)

    def inverse(self, y, energy=None):
        if self.upper is not None:
            y = _ns(y).clip(y, None, self.y_max)
        # exp − 1 rather than expm1, which ONNX lacks: its absolute error, float rounding of 1
        # times ``scale``, is far below any energy ``scale`` is chosen to resolve.
        return (_ns(y).exp(y) - 1) * self.scale

    def params(self):
        return {"scale": self.scale, "upper": self.upper}


class Power(Transform):
    """y = x^p for x ≥ 0; 3DGAN raises cell energies to p = 0.85."""

    name = "power"

    def __init__(self, p: float = 0.85):
        if p <= 0:
            raise CaloforgeError(f"power transform needs p > 0, got {p}")
        self.p = float(p)

    def forward(self, x, energy=None):
        return _ns(x).clip(x, 0, None) ** self.p

    def inverse(self, y, energy=None):
        return _ns(y).clip(y, 0, None) ** (1.0 / self.p)

    def params(self):
        return {"p": self.p}


class BoxCox(Transform):
    """y = ((x + shift)^λ − 1) / λ (ln(x + shift) at λ = 0), λ fitted by maximum likelihood.

    Cell energies are often exactly 0, so a small ``shift`` (MeV) makes them positive. λ is
    fitted on the non-zero values, whose shape the transform should Gaussianise. The inverse maps
    values below the image of 0 to 0 (empty cells). For λ < 0 the transform's image is bounded
    above by −1/λ, so a network's output past it would mean infinite energy: the inverse
    saturates at ``SATURATION`` times the largest value seen by ``fit`` (``upper``), for any λ.

    References:
        G. E. P. Box and D. R. Cox, "An analysis of transformations", JRSS B 26 (1964) 211.
    """

    name = "boxcox"
    SATURATION = 2.0
    LAMBDA_RANGE = (-1.0, 2.0)
    """Where the fitted λ is kept: below −1 the inverse of a large deposit cancels away its
    precision, and such λ come only from samples of a few distinct values."""

    def __init__(self, shift: float = 1e-3, lam: float | None = None, upper: float | None = None):
        self.shift = float(shift)
        self.lam = lam
        self.upper = upper

    def fit(self, x, energy=None):
        values = np.asarray(x, dtype=np.float64).ravel()
        values = values[values > 0]
        if values.size < 2:
            raise CaloforgeError("Box-Cox needs positive values to fit λ")
        sample = np.random.default_rng(0).choice(values, size=min(values.size, 200_000))
        if np.ptp(sample) <= 1e-12 * sample.max():
            self.lam = 1.0  # one value: no shape to Gaussianise, and no maximum to find
        else:
            lam = float(stats.boxcox_normmax(sample + self.shift, method="mle"))
            self.lam = float(np.clip(lam, *self.LAMBDA_RANGE))
        self.upper = float(values.max())
        return self

    def _lam(self) -> float:
        if self.lam is None:
            raise CaloforgeError("Box-Cox transform used before being fitted")
        return self.lam

    def _forward_scalar(self, x: float) -> float:
        lam = self._lam()
        base = x + self.shift
        return math.log(base) if lam == 0 else (base**lam - 1) / lam

    def forward(self, x, energy=None):
        xp, lam = _ns(x), self._lam()
        base = xp.clip(x, 0, None) + self.shift
        return xp.log(base) if lam == 0 else (base**lam - 1) / lam

    def inverse(self, y, energy=None):
        xp, lam = _ns(y), self._lam()
        if self.upper is not None:
            y = xp.clip(y, None, self._forward_scalar(self.SATURATION * self.upper))
        # Values below the image of 0 MeV are empty cells, not negative energies.
        if lam == 0:
            return xp.clip(xp.exp(y) - self.shift, 0, None)
        return xp.clip(xp.clip(lam * y + 1, 0, None) ** (1 / lam) - self.shift, 0, None)

    def params(self):
        return {"shift": self.shift, "lam": self.lam, "upper": self.upper}


class Standardize(Transform):
    """y = (x − μ) / σ with μ and σ fitted per feature (column), or over all values at once.

    One scale for every cell (``per_feature=False``) keeps the relative sizes of an image's
    cells, which convolutional networks rely on; without centring (``center=False``, μ = 0) an
    empty cell stays 0, and a network's negative output is an empty cell.
    """

    name = "standardize"

    def __init__(
        self,
        mean: list[float] | float | None = None,
        std: list[float] | float | None = None,
        per_feature: bool = True,
        center: bool = True,
    ):
        self.mean, self.std, self.per_feature, self.center = mean, std, per_feature, center

    def fit(self, x, energy=None):
        x = np.asarray(x, dtype=np.float64)
        axis = 0 if self.per_feature else None
        mean, std = x.mean(axis=axis), x.std(axis=axis)
        if not self.center:  # the spread about 0
            mean, std = np.zeros_like(mean), np.sqrt(np.mean(np.square(x), axis=axis))
        self.mean = mean.tolist()
        # A constant feature (an always-empty cell) keeps its scale rather than dividing by 0 or
        # by the rounding of its mean, which would blow that rounding up.
        constant = std <= 1e-9 * np.maximum(np.abs(mean), 1.0)
        self.std = np.where(constant, 1.0, std).tolist()
        return self

    def _check(self):
        if self.mean is None:
            raise CaloforgeError("standardisation used before being fitted")

    def forward(self, x, energy=None):
        self._check()
        return (x - _const(self.mean, x)) / _const(self.std, x)

    def inverse(self, y, energy=None):
        self._check()
        return y * _const(self.std, y) + _const(self.mean, y)

    def params(self):
        return {
            "mean": self.mean,
            "std": self.std,
            "per_feature": self.per_feature,
            "center": self.center,
        }


class EnergyFraction(Transform):
    """y = x / E_inc: cell energies as fractions of the incident energy.

    The energy scale then lives in the transform, not in the network, which need only learn
    the shower's shape and sampling fluctuations: a sampling calorimeter's fractions barely
    change over two decades of energy.
    """

    name = "energy_fraction"

    def forward(self, x, energy=None):
        return x / self._energy(energy)

    def inverse(self, y, energy=None):
        return y * self._energy(energy)

    @staticmethod
    def _energy(energy):
        if energy is None:
            raise CaloforgeError("energy fractions need the incident energies")
        return energy


class LogitFraction(Transform):
    """y = logit(α + (1 − 2α) · x / (scale · E_inc)): energy fractions mapped to the real line.

    With ``scale`` above the largest fraction seen (set by ``fit``), fractions fall in (0, 1);
    α keeps the logit finite at 0 (CaloFlow, arXiv:2106.05285, uses α = 1e-6).
    """

    name = "logit_fraction"

    def __init__(self, alpha: float = 1e-6, scale: float | None = None):
        self.alpha = float(alpha)
        self.scale = scale

    def fit(self, x, energy=None):
        if energy is None:
            raise CaloforgeError("energy fractions need the incident energies")
        fractions = np.asarray(x) / np.asarray(energy).reshape(-1, 1)
        self.scale = float(max(1.0, 1.05 * fractions.max()))
        return self

    def _u(self, x, energy):
        if energy is None or self.scale is None:
            raise CaloforgeError("energy fractions need a fitted scale and the incident energies")
        return x / (self.scale * energy)

    def forward(self, x, energy=None):
        xp = _ns(x)
        u = self.alpha + (1 - 2 * self.alpha) * xp.clip(self._u(x, energy), 0, 1)
        return xp.log(u) - xp.log1p(-u)

    def inverse(self, y, energy=None):
        xp = _ns(y)
        u = 1 / (1 + xp.exp(-y))
        fraction = xp.clip((u - self.alpha) / (1 - 2 * self.alpha), 0, 1)
        return fraction * self.scale * energy

    def params(self):
        return {"alpha": self.alpha, "scale": self.scale}


class Directions(Transform):
    """Momentum columns (px, py, pz) → (ln |p|, px/pz, py/pz): energy scale and track slopes.

    A shower's size follows ln E and where it lands follows the slopes, each one column, where a
    network handed the momentum would have to learn the division. ``columns`` are the indices of
    px, py, pz; the other columns pass through. Needs pz > 0 (a particle going into the
    calorimeter).
    """

    name = "directions"

    def __init__(self, columns: list[int]):
        self.columns = [int(c) for c in columns]
        if len(self.columns) != 3:
            raise CaloforgeError(f"directions need the columns of px, py, pz, got {columns}")

    def forward(self, x, energy=None):
        xp = _ns(x)
        out = x.copy() if xp is np else x.clone()
        px, py, pz = (x[:, c] for c in self.columns)
        out[:, self.columns[0]] = xp.log(xp.sqrt(px**2 + py**2 + pz**2))
        out[:, self.columns[1]] = px / pz
        out[:, self.columns[2]] = py / pz
        return out

    def inverse(self, y, energy=None):
        xp = _ns(y)
        out = y.copy() if xp is np else y.clone()
        log_p, tx, ty = (y[:, c] for c in self.columns)
        pz = xp.exp(log_p) / xp.sqrt(1 + tx**2 + ty**2)
        out[:, self.columns[0]] = tx * pz
        out[:, self.columns[1]] = ty * pz
        out[:, self.columns[2]] = pz
        return out

    def params(self):
        return {"columns": self.columns}


EMPTY_TOTAL = 1e-12
"""The total (MeV) ``LogShares`` gives an empty shower, whose log would be -inf."""
GUMBEL_OFFSET = 200.0
"""How far below the read-out edge ``EnergyParts`` ranks the empty cells' Gumbel keys."""


class LogShares(Transform):
    """(N, cells) → (N, 1 + cells): [ln(E_sum / E_inc), ln(cell / E_sum + α)].

    The total and the shape apart, as in CaloFlow (arXiv:2106.05285): a model then draws the
    response with one coordinate instead of summing it from every cell's errors, and the inverse
    renormalises the shares, so the cells sum to the drawn total exactly. α keeps the log of an
    empty cell finite; it should lie well below the smallest share a cell above threshold has.
    An empty shower's total counts as ``EMPTY_TOTAL``.

    ``threshold`` (MeV): E_sum counts only the cells at or above it, and the inverse renormalises
    only the cells that come out at or above it, so that what the detector reads out sums to the
    drawn total (to within a threshold's fraction of a cell). For showers whose empty cells were
    dequantised (filled with noise below the threshold): without it, the noise is part of the
    total, and whatever a model puts below the threshold is lost from the response at read-out.

    Example:
        >>> t = LogShares(threshold=0.1)
        >>> x = np.array([[3.0, 1.0, 0.05]])
        >>> y = t.forward(x, np.array([[8.0]]))
        >>> round(float(np.exp(y[0, 0])), 3)  # E_sum / E_inc, the 0.05 MeV not counted
        0.5
        >>> t.inverse(y, np.array([[8.0]])).round(6)
        array([[3.  , 1.  , 0.05]])
    """

    name = "log_shares"

    def __init__(self, alpha: float = 1e-7, threshold: float | None = None):
        self.alpha = float(alpha)
        self.threshold = None if threshold is None else float(threshold)

    def forward(self, x, energy=None):
        xp = _ns(x)
        counted = x if self.threshold is None else x * (x >= self.threshold)
        total = counted.sum(1)[:, None].clip(EMPTY_TOTAL, None)
        parts = [xp.log(total / EnergyFraction._energy(energy)), xp.log(x / total + self.alpha)]
        return np.concatenate(parts, 1) if xp is np else xp.cat(parts, 1)

    def inverse(self, y, energy=None):
        xp = _ns(y)
        shares = (xp.exp(y[:, 1:]) - self.alpha).clip(0, None)
        # One factor per shower, then one product over the cells.
        total = xp.exp(y[:, :1]) * EnergyFraction._energy(energy)
        if self.threshold is None:
            return shares * (total / (shares.sum(1)[:, None] + 1e-30))
        cells = shares * total
        read = cells >= self.threshold
        kept = (cells * read).sum(1)[:, None]
        scale = xp.where(kept > 0, total / (kept + 1e-30), 1.0 + 0 * kept)
        # A cell read out stays at or above the threshold: scaled down, it could drop below and
        # take its energy with it (the total is then exceeded by at most threshold x
        # (1 - scale) per such cell).
        return xp.where(read, (cells * scale).clip(self.threshold, None), cells)

    def params(self):
        return {"alpha": self.alpha} | (
            {} if self.threshold is None else {"threshold": self.threshold}
        )


def part_slots(parts) -> tuple[np.ndarray, np.ndarray]:
    """Each part's cells in a row padded to the largest part: (K, largest) cell indices, a
    padding slot holding len(parts) (an appended cell), and each cell's slot in that table
    flattened, part × largest + its place in its part."""
    parts = np.asarray(parts)
    n_parts, size = int(parts.max()) + 1, int(np.bincount(parts).max())
    gather = np.full((n_parts, size), len(parts))
    position = np.empty(len(parts), dtype=np.int64)
    for part in range(n_parts):
        cells = np.flatnonzero(parts == part)
        gather[part, : len(cells)] = cells
        position[cells] = part * size + np.arange(len(cells))
    return gather, position


class EnergyParts(Transform):
    """(N, cells) → (N, K + cells): the energy breakdown over K parts of the cells, then the cells.

    The energy coordinates are CaloINN's energy fractions (arXiv:2312.09290): ln(E_sum / E_inc),
    then logit(E_k / Σ_{j≥k} E_j) for the parts k = 0 … K−2 (the last part holds the rest), each
    fraction kept off 0 and 1 by α. E_k counts the cells of part k at or above ``scale``.

    Each cell is ln(cell / scale + floor): in units of ``scale``, the detector's threshold, so
    that the read-out's edge is one coordinate, ln(1 + floor), for every cell of every shower,
    whatever its part's energy. An empty cell is ln(floor), a fixed point. The inverse reads out
    the cells at or above ``scale`` and rescales those of each part to hold exactly the E_k of
    the energy coordinates (a cell read out stays at or above ``scale``: a part rescaled down
    exceeds its E_k by at most ``scale`` × (1 − factor) per such cell, as ``LogShares``).

    ``parts``: the part (0 … K−1) of every cell. ``scale``: the threshold; for a detector without
    one, ``fit`` takes the 1st percentile of the non-zero cells, below which the inverse reads 0.

    ``groups``: the group of each part (parts numbered group by group), for a breakdown in two
    levels: a chain over the groups' energies, and within each group a chain over its parts'
    shares of that group's energy, so that an error in one share moves energy within its group
    only. The last part of a group holds the group's share of what the groups after it hold
    (the last group's last part, nothing: it holds the rest); the other parts hold their share
    within the group. K − 1 fractions all the same; without ``groups``, one chain over the parts.

    ``counts``: K more energy coordinates after the fractions, ln(1 + n_k), n_k the cells of part
    k read out, so that a model draws how many cells each part reads out with its energy. The
    inverse then reads out exactly the n_k largest cells of each part (rounded, at most the
    part's cells), every coordinate of the part raised alike where fewer reach the read-out
    edge: a shower's occupancy follows its drawn breakdown, not each cell's law on its own.

    ``band``: with ``counts``, (centre, σ) of log10(cell / scale) of the empty cells, the
    log-normal band they were learnt in. Where a part's count exceeds its cells above the edge,
    the empty cells that make it up are then drawn without replacement with probabilities
    proportional to each cell's ``occupancy`` (the share of the training showers that read it
    out; ``fit``), by Gumbel-top-k (Kool, van Hoof and Welling, arXiv:1903.06059): each empty
    cell's key is ln occupancy + a Gumbel variable made from its place in the band, so that the
    draw is still a fixed function of the model's noise. Without ``band``, they are the empty
    cells highest in the band: a draw at random, in which the many outer cells win.

    Example:
        >>> t = EnergyParts(parts=[0, 1, 1], scale=0.1)
        >>> x = np.array([[3.0, 1.0, 0.05]])
        >>> y = t.forward(x, np.array([[8.0]]))
        >>> y.shape  # ln(E_sum / E_inc), logit(E_0 / E_sum), three cells
        (1, 5)
        >>> t.inverse(y, np.array([[8.0]])).round(6)  # 0.05 MeV is below the read-out
        array([[3., 1., 0.]])
    """

    name = "energy_parts"

    def __init__(
        self,
        parts: list[int],
        scale: float | None = None,
        floor: float = 1e-3,
        alpha: float = 1e-6,
        counts: bool = False,
        groups: list[int] | None = None,
        band: list[float] | None = None,
        occupancy: list[float] | None = None,
    ):
        self.parts = [int(p) for p in parts]
        self.n_parts = max(self.parts) + 1
        if sorted(set(self.parts)) != list(range(self.n_parts)):
            raise CaloforgeError("energy parts must be numbered 0 … K−1, each with a cell")
        self.groups = None if groups is None else [int(g) for g in groups]
        group = np.zeros(self.n_parts, dtype=np.int64) if groups is None else np.asarray(groups)
        if len(group) != self.n_parts or group[0] != 0 or not np.isin(np.diff(group), (0, 1)).all():
            raise CaloforgeError("energy groups must be one per part, numbered 0 … in part order")
        self._group = group
        self._last = np.append(group[1:] != group[:-1], True)  # the last part of its group
        self.scale = None if scale is None else float(scale)
        self.floor, self.alpha = float(floor), float(alpha)
        self.counts = bool(counts)
        if band is not None and not self.counts:
            raise CaloforgeError("a read-out weighted by occupancy needs the counts drawn")
        self.band = None if band is None else [float(b) for b in band]
        self.occupancy = None if occupancy is None else [float(p) for p in occupancy]
        self._slots = part_slots(self.parts)

    @property
    def n_coordinates(self) -> int:
        """The energy coordinates before the cells': K, or 2K with ``counts``."""
        return 2 * self.n_parts if self.counts else self.n_parts

    def fit(self, x, energy=None):
        if self.scale is None:
            positive = np.asarray(x)[np.asarray(x) > 0]
            self.scale = float(np.percentile(positive, 1)) if positive.size else 1.0
        if self.band is not None and self.occupancy is None:
            self.occupancy = (np.asarray(x) >= self.scale).mean(axis=0).tolist()
        return self

    def _membership(self, like):
        """(cells, K) one-hot of each cell's part, in like's namespace and dtype."""
        return _const(np.eye(self.n_parts)[self.parts], like)

    def part_energies(self, x):
        """(N, K) energy of each part, counting the cells at or above ``scale``."""
        return (x * (x >= self.scale)) @ self._membership(x)

    def forward(self, x, energy=None):
        if self.scale is None:
            raise CaloforgeError("energy parts used before being fitted")
        xp = _ns(x)
        e = self.part_energies(x)
        total = e.sum(1)[:, None].clip(EMPTY_TOTAL, None)
        grouping = _const(np.eye(self._group[-1] + 1)[self._group], x)  # (K, G)
        eg = e @ grouping
        above_group = total - (xp.cumsum(eg, 1) - eg)  # Σ_{h≥g} E_h
        before = xp.cumsum(e, 1) - e - (xp.cumsum(eg, 1) - eg) @ grouping.T  # within the group
        above = eg @ grouping.T - before  # Σ_{j≥k} E_j over k's group
        share = xp.where(
            _const(self._last, x) > 0,
            (eg / above_group.clip(EMPTY_TOTAL, None)) @ grouping.T,
            e / above.clip(EMPTY_TOTAL, None),
        )
        u = share[:, :-1].clip(0, 1)
        coordinates = [
            xp.log(total / EnergyFraction._energy(energy)),
            xp.log(u + self.alpha) - xp.log(1 - u + self.alpha),
            xp.log(x / self.scale + self.floor),
        ]
        if self.counts:
            read = (x >= self.scale) * _const(1.0, x)
            coordinates.insert(2, xp.log(1 + read @ self._membership(x)))
        return np.concatenate(coordinates, 1) if xp is np else xp.cat(coordinates, 1)

    def energies(self, y, energy):
        """(N, K) part energies of transformed showers."""
        xp = _ns(y)
        k = self.n_parts
        rest = xp.exp(y[:, :1]) * EnergyFraction._energy(energy)
        u = (1 / (1 + xp.exp(-y[:, 1:k])) * (1 + 2 * self.alpha) - self.alpha).clip(0, 1)
        columns = []
        first = 0
        for last in np.flatnonzero(self._last):
            group = rest if last == k - 1 else u[:, last : last + 1] * rest
            rest = rest - group
            for i in range(first, last):
                columns.append(u[:, i : i + 1] * group)
                group = group - columns[-1]
            columns.append(group)
            first = last + 1
        return np.concatenate(columns, 1) if xp is np else xp.cat(columns, 1)

    def inverse(self, y, energy=None):
        xp = _ns(y)
        k = self.n_parts
        membership = self._membership(y)
        cells = y[:, self.n_coordinates :]
        if self.counts:
            cells, read = self._read_counted(cells, y[:, k : 2 * k], membership)
            cells = self.scale * (xp.exp(cells) - self.floor) * read
        else:
            cells = self.scale * (xp.exp(cells) - self.floor)
            read = cells >= self.scale
            cells = cells * read
        kept = cells @ membership
        wanted = self.energies(y, energy)
        factor = xp.where(kept > 0, wanted / (kept + 1e-30), 1.0 + 0 * kept)
        return xp.where(read, (cells * (factor @ membership.T)).clip(self.scale, None), cells)

    def _read_counted(self, y, counts, membership):
        """(cells' coordinates raised part by part, which are read out): each part's n_k largest,
        n_k = round(e^count − 1) clipped to the part's cells; where the n_k-th lies below the
        read-out edge, the part's coordinates rise by the difference. A sort of each part's
        cells padded to the largest part (one gather, exportable to ONNX)."""
        xp = _ns(y)
        gather, position = self._slots
        size = gather.shape[1]
        n = xp.minimum(
            (xp.exp(counts) - 1).round().clip(0, None), _const(np.bincount(self.parts), counts)
        )
        edge = math.log1p(self.floor)
        key = y - _const(1e-6 * (position % size), y)  # equal cells (the empty) by their place
        if self.band is not None:
            key = xp.where(y >= edge, key, edge - GUMBEL_OFFSET + self._gumbel_keys(y))
        padded = self._by_part(key, -1e30)  # a padding slot, below every cell
        if xp is np:
            ordered = -np.sort(-padded, axis=2)
            index = (n - 1).clip(0, None).astype(np.int64)[:, :, None]
            nth = np.take_along_axis(ordered, index, axis=2)[:, :, 0]
        else:
            ordered = xp.sort(padded, dim=2, descending=True).values
            index = (n - 1).clamp_min(0).long()[:, :, None]
            nth = xp.gather(ordered, 2, index)[:, :, 0]
        read = (key >= nth @ membership.T) & (n @ membership.T > 0)
        if self.band is not None:  # the smallest cell read out, not the n_k-th key
            lowest_read = (y + (1 - read * _const(1.0, y)) * 1e30).clip(None, 1e30)
            nth = self._part_min(lowest_read)
        raise_by = (edge - nth).clip(0, None) * (n > 0)
        return y + raise_by @ membership.T, read

    def _gumbel_keys(self, y):
        """ln occupancy − ln(−ln v) of every cell, v its place in the empty band (a uniform
        variable for the cells the band's law holds), clipped to ±GUMBEL_OFFSET / 2."""
        xp = _ns(y)
        centre, decades = self.band
        exponent = xp.log((xp.exp(y) - self.floor).clip(1e-30, None)) / math.log(10)
        z = (exponent - math.log10(centre)) / (decades * math.sqrt(2))
        v = (0.5 * (1 + (special.erf(z) if xp is np else xp.erf(z)))).clip(1e-12, 1 - 1e-12)
        occupancy = np.clip(np.asarray(self.occupancy), 1e-6, 1.0)
        keys = _const(np.log(occupancy), y) - xp.log(-xp.log(v))
        return keys.clip(-GUMBEL_OFFSET / 2, GUMBEL_OFFSET / 2)

    def _part_min(self, values):
        """(N, K) the smallest of each part's ``values`` (N, cells)."""
        padded = self._by_part(values, 1e30)  # a padding slot, above every cell
        return padded.min(axis=2) if _ns(values) is np else padded.amin(dim=2)

    def _by_part(self, values, pad: float):
        """(N, cells) → (N, K, largest part): each part's values, ``pad`` after them (one
        gather, exportable to ONNX)."""
        xp = _ns(values)
        gather, _ = self._slots
        padding = values[:, :1] * 0 + pad
        padded = (np.concatenate if xp is np else xp.cat)([values, padding], 1)[:, gather.ravel()]
        return padded.reshape(-1, self.n_parts, gather.shape[1])  # no len(y): ONNX traces it

    def params(self):
        return {
            "parts": self.parts,
            "scale": self.scale,
            "floor": self.floor,
            "alpha": self.alpha,
            "counts": self.counts,
            "groups": self.groups,
            "band": self.band,
            "occupancy": self.occupancy,
        }


class SpiralUnroll(Transform):
    """Layer-major cubes (N, layers · ny · nx) → (N, slices · keep): each of the first ``slices``
    layers' cells in a ``crop`` × ``crop`` window about the central cell, read along a square
    spiral from the centre outward, the first ``keep`` of them.

    The NYU study (seed 003) unrolls its 20 × 20 × 25 crop of the LCD ECAL this way, so that a
    shower's dense core comes first and the sparse edge last, where it can be cut (400 → 100 or
    25 positions a layer). The spiral visits square rings of growing Chebyshev distance from the
    central cell (ny // 2, nx // 2), each counter-clockwise from the cell to the right of the
    centre's row; an even ``crop`` keeps one more row and column below and left of the centre.
    Read as an image, layer l's positions are row l (``image_shape``: slices × keep).

    The inverse puts the kept cells back and leaves every other cell 0: it undoes ``forward``
    exactly for showers with nothing outside the kept cells. Both are one gather, so the inverse
    exports to ONNX.

    Example:
        >>> t = SpiralUnroll(shape=(1, 3, 3), crop=3)
        >>> cube = np.arange(9.0).reshape(1, 9)  # row-major 3 x 3: the centre is 4
        >>> t.forward(cube)
        array([[4., 5., 2., 1., 0., 3., 6., 7., 8.]])
        >>> bool(np.array_equal(t.inverse(t.forward(cube)), cube))
        True
    """

    name = "spiral_unroll"

    def __init__(
        self, shape: list[int], crop: int, keep: int | None = None, slices: int | None = None
    ):
        self.shape = [int(v) for v in shape]
        if len(self.shape) != 3:
            raise CaloforgeError(f"spiral unrolling needs (layers, ny, nx), got {shape}")
        layers, ny, nx = self.shape
        self.slices = layers if slices is None else int(slices)
        if not 1 <= self.slices <= layers:
            raise CaloforgeError(f"asked for {slices} slices of a detector of {layers} layers")
        self.crop = int(crop)
        if not 1 <= self.crop <= min(ny, nx):
            raise CaloforgeError(f"spiral crop {crop} does not fit a {ny} x {nx} layer")
        self.keep = self.crop**2 if keep is None else int(keep)
        if not 1 <= self.keep <= self.crop**2:
            raise CaloforgeError(
                f"a {self.crop} x {self.crop} crop has {self.crop**2} spiral positions, "
                f"cannot keep {keep}"
            )
        self._gather = self._positions()
        n_cells = int(np.prod(self.shape))
        self._scatter = np.full(n_cells, len(self._gather))  # → the appended zero column
        self._scatter[self._gather] = np.arange(len(self._gather))

    def spiral(self) -> np.ndarray:
        """(keep, 2) row and column of each kept position of a layer, in spiral order."""
        _, ny, nx = self.shape
        cy, cx = ny // 2, nx // 2
        lo_y, lo_x = cy - self.crop // 2, cx - self.crop // 2
        rows, cols = np.mgrid[lo_y : lo_y + self.crop, lo_x : lo_x + self.crop]
        dy, dx = (rows - cy).ravel(), (cols - cx).ravel()
        ring = np.maximum(np.abs(dy), np.abs(dx))
        angle = np.mod(np.arctan2(-dy, dx), 2 * np.pi)  # rows grow downwards
        order = np.lexsort((angle, ring))[: self.keep]
        return np.column_stack([rows.ravel()[order], cols.ravel()[order]])

    def _positions(self) -> np.ndarray:
        _, ny, nx = self.shape
        spiral = self.spiral()
        in_layer = spiral[:, 0] * nx + spiral[:, 1]
        return (np.arange(self.slices)[:, None] * ny * nx + in_layer[None, :]).ravel()

    @property
    def image_shape(self) -> tuple[int, int]:
        """(slices, keep): the unrolled shower as an image."""
        return self.slices, self.keep

    def forward(self, x, energy=None):
        if _ns(x) is np:
            return x[:, self._gather]
        import torch

        return x[:, torch.as_tensor(self._gather, device=x.device)]

    def inverse(self, y, energy=None):
        if _ns(y) is np:
            padded = np.concatenate([y, np.zeros((len(y), 1), y.dtype)], axis=1)
            return padded[:, self._scatter]
        import torch

        padded = torch.cat([y, y.new_zeros(y.shape[0], 1)], dim=1)
        return padded[:, torch.as_tensor(self._scatter, device=y.device)]

    def params(self):
        return {"shape": self.shape, "crop": self.crop, "keep": self.keep, "slices": self.slices}


class OneHot(Transform):
    """A discrete condition (a PDG code) → one column per category, 1 where it matches.

    (N, k) → (N, k − 1 + len(categories)): the other columns in order, then the indicators, so
    that a network's embedding of the particle is one linear layer. Values match a category
    within 0.5 (PDG codes are integers); a value matching none gets all zeros, which ``inverse``
    maps to 0.

    Example:
        >>> OneHot(column=0, categories=[22, 111]).forward(np.array([[111.0, 5.0]]))
        array([[5., 0., 1.]])
    """

    name = "one_hot"

    def __init__(self, column: int, categories: list[float]):
        self.column = int(column)
        self.categories = [float(c) for c in categories]
        if not self.categories:
            raise CaloforgeError("one-hot encoding needs at least one category")

    def forward(self, x, energy=None):
        xp = _ns(x)
        value = x[:, self.column : self.column + 1]
        hot = (xp.abs(value - _const(self.categories, x)) < 0.5) * 1.0
        hot = hot.astype(x.dtype) if xp is np else hot.to(x.dtype)
        parts = [x[:, : self.column], x[:, self.column + 1 :], hot]
        return np.concatenate(parts, 1) if xp is np else xp.cat(parts, 1)

    def inverse(self, y, energy=None):
        xp = _ns(y)
        m = len(self.categories)
        others, hot = y[:, :-m], y[:, -m:]
        value = (hot * _const(self.categories, y)).sum(1)[:, None]
        parts = [others[:, : self.column], value, others[:, self.column :]]
        return np.concatenate(parts, 1) if xp is np else xp.cat(parts, 1)

    def params(self):
        return {"column": self.column, "categories": self.categories}


class Chain(Transform):
    """Transforms applied in order (the inverse in reverse order)."""

    name = "chain"

    def __init__(self, steps: list[Transform]):
        self.steps = list(steps)

    def fit(self, x, energy=None):
        for step in self.steps:
            step.fit(x, energy)
            x = step.forward(x, energy)
        return self

    def forward(self, x, energy=None):
        for step in self.steps:
            x = step.forward(x, energy)
        return x

    def inverse(self, y, energy=None):
        for step in reversed(self.steps):
            y = step.inverse(y, energy)
        return y

    def params(self):
        return {"steps": [s.state() for s in self.steps]}

    def __repr__(self) -> str:
        return " -> ".join(repr(s) for s in self.steps) or "Chain([])"
