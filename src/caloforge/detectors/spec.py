"""The Detector: a stack of readout layers along z, each a repeated absorber/active sandwich.

A readout layer is ``repeat`` identical sampling layers whose active energy is summed into the
layer's cells: the LHCb ECAL is one readout layer of 66 sampling layers (its scintillator summed
over depth), the CLIC ECAL 25 readout layers of one sampling layer each, CaloChallenge's Par04
45 readout layers of two. A layer without ``readout`` is dead material (an upstream cryostat).

Coordinates: z runs along the depth from the front face (z = 0) of the first layer; x and y are
transverse, centred on the detector axis. Lengths in mm, energies in MeV. A flat shower vector is
layer-major, then y (or the angle α), then x (or the radius r), as in CaloChallenge.
"""

from __future__ import annotations

import math
from functools import cached_property
from itertools import pairwise
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from caloforge.detectors.materials import SamplingMixture, get_material

__all__ = ["CartesianBinning", "Detector", "Layer", "PolarBinning", "Slice"]

PositiveLength = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Slice(_Model):
    """One slab of a sampling layer."""

    material: str
    thickness: PositiveLength
    active: bool = False

    @field_validator("material")
    @classmethod
    def _known_material(cls, name: str) -> str:
        get_material(name)
        return name


class CartesianBinning(_Model):
    """nx × ny cells of dx × dy mm, centred on the axis; cell (i, j) spans x in [x_i, x_i+1)."""

    binning: Literal["cartesian"] = "cartesian"
    nx: int = Field(gt=0)
    ny: int = Field(gt=0)
    dx: PositiveLength
    dy: PositiveLength

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx): rows of y, columns of x, the order of the flat vector."""
        return (self.ny, self.nx)

    @property
    def extent(self) -> tuple[float, float]:
        """Full size in x and y, mm."""
        return (self.nx * self.dx, self.ny * self.dy)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(x edges, y edges) in mm."""
        return (
            (np.arange(self.nx + 1) - self.nx / 2) * self.dx,
            (np.arange(self.ny + 1) - self.ny / 2) * self.dy,
        )

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of every cell in flat order (y-major), mm."""
        xe, ye = self.edges()
        xc, yc = (xe[1:] + xe[:-1]) / 2, (ye[1:] + ye[:-1]) / 2
        yy, xx = np.meshgrid(yc, xc, indexing="ij")
        return xx.ravel(), yy.ravel()


class PolarBinning(_Model):
    """Rings with the given radial edges, each split into n_alpha equal angular bins.

    Angles run from -π to π as in CaloChallenge's binning files; α = 0 is the +x direction.
    """

    binning: Literal["polar"] = "polar"
    r_edges: tuple[float, ...]
    n_alpha: int = Field(gt=0)

    @field_validator("r_edges")
    @classmethod
    def _increasing(cls, edges: tuple[float, ...]) -> tuple[float, ...]:
        if len(edges) < 2 or edges[0] < 0 or any(b <= a for a, b in pairwise(edges)):
            raise ValueError("r_edges must be at least two increasing non-negative radii")
        return edges

    @property
    def shape(self) -> tuple[int, int]:
        """(n_alpha, n_r): the order of the flat vector."""
        return (self.n_alpha, len(self.r_edges) - 1)

    @property
    def extent(self) -> tuple[float, float]:
        """Full size in x and y, mm."""
        return (2 * self.r_edges[-1], 2 * self.r_edges[-1])

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(r edges in mm, α edges in radians)."""
        return np.asarray(self.r_edges), np.linspace(-math.pi, math.pi, self.n_alpha + 1)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of every cell centre in flat order (α-major), mm.

        The centre of a cell is at the mean radius and mean angle of its bin; the innermost ring's
        cells are therefore off the axis, as CaloChallenge's evaluation places them.
        """
        re, ae = self.edges()
        rc, ac = (re[1:] + re[:-1]) / 2, (ae[1:] + ae[:-1]) / 2
        aa, rr = np.meshgrid(ac, rc, indexing="ij")
        return (rr * np.cos(aa)).ravel(), (rr * np.sin(aa)).ravel()


Binning = Annotated[CartesianBinning | PolarBinning, Field(discriminator="binning")]


class Layer(_Model):
    """``count`` identical readout layers (or dead material when ``readout`` is absent).

    Each readout layer is ``repeat`` sampling layers of ``slices`` whose active energy is summed.
    A layer without slices describes a readout only (a file's binning whose materials are not
    known): it can be evaluated but not simulated, and its depth counts as zero.
    """

    name: str
    slices: tuple[Slice, ...] = ()
    repeat: int = Field(default=1, gt=0)
    count: int = Field(default=1, gt=0)
    readout: Binning | None = None

    def expand(self) -> tuple[Layer, ...]:
        """The ``count`` single layers this entry stands for, named ``name``, ``name1``, ..."""
        if self.count == 1:
            return (self,)
        return tuple(
            self.model_copy(update={"name": f"{self.name}{i}", "count": 1})
            for i in range(self.count)
        )

    @model_validator(mode="after")
    def _active_iff_read_out(self) -> Layer:
        if not self.slices:
            if self.readout is None:
                raise ValueError(f"layer {self.name!r} has neither slices nor a readout")
            return self
        active = any(s.active for s in self.slices)
        if self.readout is not None and not active:
            raise ValueError(f"layer {self.name!r} has a readout but no active slice")
        if self.readout is None and active:
            raise ValueError(f"layer {self.name!r} has an active slice but no readout")
        return self

    @property
    def sampling_thickness(self) -> float:
        """Depth of one sampling layer, mm."""
        return sum(s.thickness for s in self.slices)

    @property
    def thickness(self) -> float:
        """Depth of one readout layer (all repeats), mm."""
        return self.repeat * self.sampling_thickness

    @property
    def thickness_x0(self) -> float:
        """Depth of one readout layer in radiation lengths."""
        return self.repeat * sum(s.thickness / get_material(s.material).x0 for s in self.slices)

    @property
    def n_cells(self) -> int:
        """Cells of one readout layer."""
        return 0 if self.readout is None else math.prod(self.readout.shape)


class Detector(_Model):
    """A calorimeter: transverse size, a world material and a stack of layers.

    Example:
        >>> from caloforge.detectors import load_detector
        >>> det = load_detector("lhcb-ecal")
        >>> det.n_cells, round(det.depth_x0, 1)
        (900, 24.2)
    """

    name: str
    title: str = Field(description="one line for listings")
    description: str
    approximates: str = Field(description="what real detector it stands in for, and how")
    size: tuple[PositiveLength, PositiveLength] = Field(description="transverse x, y extent, mm")
    world_material: str = "G4_Galactic"
    threshold: float = Field(
        default=0.0,
        ge=0,
        description="visible MeV (energy in the active material): cells below are zeroed "
        "before evaluation",
    )
    sampling_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="the visible fraction that calibrated files divide by: CaloChallenge "
        "stores Par04's silicon energy / 0.033; None where no convention exists",
    )
    layers: tuple[Layer, ...] = Field(min_length=1)
    upstream: tuple[Slice, ...] = Field(
        default=(),
        description="dead material in front of the front face (z < 0), in beam order: not read "
        "out, scored as passive; primaries start in front of it, aimed at the source's entry "
        "point on the face",
    )

    def to_yaml(self) -> str:
        """The YAML text of the detector, as written into shower files and model configs."""
        exclude = None if self.upstream else {"upstream"}  # files of detectors without it unchanged
        return yaml.safe_dump(self.model_dump(mode="json", exclude=exclude), sort_keys=False)

    @property
    def upstream_thickness(self) -> float:
        """Depth of the material in front of the face, mm."""
        return sum(s.thickness for s in self.upstream)

    @property
    def calorimeter(self) -> Detector:
        """This detector without its upstream material: what a model of its showers knows."""
        return self.model_copy(update={"upstream": ()}) if self.upstream else self

    def with_upstream(self, material: str, thickness: float) -> Detector:
        """This detector with one more slab of dead material in front (checked as in YAML)."""
        data = self.model_dump(mode="json")
        data["upstream"] = [{"material": material, "thickness": thickness}, *data["upstream"]]
        return Detector.model_validate(data)

    @model_validator(mode="after")
    def _consistent(self) -> Detector:
        get_material(self.world_material)
        if not self.readout_layers:
            raise ValueError("a detector needs at least one layer with a readout")
        names = [layer.name for layer in self.stack]
        if len(set(names)) != len(names):
            raise ValueError("layer names must be unique")
        for layer in self.readout_layers:
            ex, ey = layer.readout.extent
            if ex > self.size[0] + 1e-9 or ey > self.size[1] + 1e-9:
                raise ValueError(
                    f"readout of layer {layer.name!r} ({ex:g} x {ey:g} mm) is larger than the "
                    f"detector ({self.size[0]:g} x {self.size[1]:g} mm)"
                )
        return self

    @cached_property
    def stack(self) -> tuple[Layer, ...]:
        """Every single layer in depth order, ``count`` expanded."""
        return tuple(single for layer in self.layers for single in layer.expand())

    @cached_property
    def readout_layers(self) -> tuple[Layer, ...]:
        """The single layers with cells, in depth order."""
        return tuple(layer for layer in self.stack if layer.readout is not None)

    @property
    def n_cells(self) -> int:
        return sum(layer.n_cells for layer in self.readout_layers)

    @cached_property
    def layer_offsets(self) -> np.ndarray:
        """Start index of each readout layer in the flat vector, plus the total at the end."""
        return np.cumsum([0] + [layer.n_cells for layer in self.readout_layers])

    @property
    def simulatable(self) -> bool:
        """Whether every layer has materials, so that Geant4 can build it."""
        return all(layer.slices for layer in self.stack)

    @property
    def depth(self) -> float:
        """Total depth, mm."""
        return sum(layer.thickness for layer in self.stack)

    @property
    def depth_x0(self) -> float:
        """Total depth in radiation lengths."""
        return sum(layer.thickness_x0 for layer in self.stack)

    @property
    def cell_order(self) -> str:
        """How a flat shower vector is ordered; written into every shower file."""
        kinds = {layer.readout.binning for layer in self.readout_layers}
        inner = " / ".join(
            {"cartesian": "y then x", "polar": "alpha then r"}[k] for k in sorted(kinds)
        )
        return f"layer-major, then {inner}"

    @cached_property
    def mixture(self) -> SamplingMixture | None:
        """Effective X0, Molière radius and critical energy of the read-out sampling layers.

        None for a detector that describes a readout only.
        """
        if not self.simulatable:
            return None
        return SamplingMixture.of(
            [
                (s.material, s.thickness * layer.repeat)
                for layer in self.readout_layers
                for s in layer.slices
            ]
        )

    def layer_depths(self) -> dict[str, np.ndarray]:
        """Front, centre and back of each readout layer: ``z_*`` in mm and ``t_*`` in X0."""
        z = t = 0.0
        out: dict[str, list[float]] = {k: [] for k in ("z_front", "z_back", "t_front", "t_back")}
        for layer in self.stack:
            if layer.readout is not None:
                out["z_front"].append(z)
                out["t_front"].append(t)
                out["z_back"].append(z + layer.thickness)
                out["t_back"].append(t + layer.thickness_x0)
            z += layer.thickness
            t += layer.thickness_x0
        arrays = {k: np.asarray(v) for k, v in out.items()}
        arrays["z_centre"] = (arrays["z_front"] + arrays["z_back"]) / 2
        arrays["t_centre"] = (arrays["t_front"] + arrays["t_back"]) / 2
        return arrays

    @cached_property
    def cell_centres(self) -> np.ndarray:
        """(n_cells, 3) centre of every cell in flat order: x, y and the layer's mid-depth z, mm."""
        z_centre = self.layer_depths()["z_centre"]
        parts = []
        for layer, z in zip(self.readout_layers, z_centre):
            x, y = layer.readout.centres()
            parts.append(np.stack([x, y, np.full_like(x, z)], axis=1))
        return np.concatenate(parts)

    @cached_property
    def cell_layer(self) -> np.ndarray:
        """(n_cells,) readout-layer index of every cell."""
        return np.repeat(np.arange(len(self.readout_layers)), np.diff(self.layer_offsets))

    def split_layers(self, showers: np.ndarray) -> list[np.ndarray]:
        """Views of (N, n_cells) showers as one (N, *shape) array per readout layer."""
        return [
            showers[:, a:b].reshape(len(showers), *layer.readout.shape)
            for layer, a, b in zip(self.readout_layers, self.layer_offsets, self.layer_offsets[1:])
        ]
