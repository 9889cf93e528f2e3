"""Energy first, then shape: a flow-matching model of the energy breakdown and one of the cells.

``energy-first`` parts a detector's cells (``common.partition``: its layers, rings within them,
or rings around the shower axis of a one-layer readout) and draws a shower in two stages, as the
leaders of the CaloChallenge do (CaloFlow's flows I and II, arXiv:2106.05285 and 2110.11377;
CaloINN, arXiv:2312.09290; CaloDREAM's energy and shape networks, arXiv:2405.09629):

1. a small velocity field draws the energy breakdown given the conditions, in CaloINN's
   energy-fraction coordinates (ln E_sum/E_inc, then each part's fraction of what the parts
   after it hold; ``EnergyParts``);
2. a large one draws every cell given the conditions and that breakdown;
3. the cells are read out and each part's rescaled to hold exactly the energy drawn for it, so
   that no part can come out with the wrong energy, however the shape network errs.

Both fields are conditional flow matching on straight paths (Lipman et al., arXiv:2210.02747),
residual MLPs trained together (their losses summed, each on its own coordinates; the shape
field is given the data's breakdown in training and the drawn one in sampling), integrated with
midpoint steps: a fixed function of the noise, exportable as any family's ``decode``. The frame
that follows the shower axis, the conditions and the students (``flow-matching-student``) are the
flow-matching family's (``flow_matching``).

Departures, and why:

- each cell's coordinate is ln(cell / threshold + floor), per cell standardised, rather than the
  log or logit of its share of the part's energy (CaloFlow, CaloDREAM): with shares, the
  read-out threshold lies at a different coordinate in every shower (its share of the part's
  energy), an edge an MLP blurs; in units of the threshold it lies at one coordinate for all,
  and the rescaling of step 3 makes the shape a shape all the same;
- what a cell below the threshold is learnt as (``empty``) is an option, measured: CaloFlow's
  uniform dequantisation (here below a gap under the threshold), CaloDREAM's fixed point
  (no noise), or ConvL2LFlow's narrow log-normal band far below the threshold (the default:
  with each cell's map, ``calibration``, it gave the smallest spectrum separations on
  lhcb-ecal; docs/lhcb-ecal.md);
- each cell's law is mapped onto the training data's after training (``calibration``, on by
  default; BIB-AE's post-processor, arXiv:2005.05334): the network blurs a cell's two modes
  (empty, or a deposit), and the map sets how many cells are read out and at what energies;
- the shape field is by default one residual MLP over every cell, CaloFlow's flow II's
  conditioner rather than CaloDREAM's transformer: on lhcb-ecal's 900 cells it is small and
  fast; ``shape_field="parts"`` is the transformer across the parts (``PartTransformer``), for a
  detector whose cells make the MLP's first and last layers too large (lcd-ecal: 15 625;
  docs/lcd-ecal.md);
- beside the shape field, each cell has a velocity path of its own state and the time alone
  (``skip``, ``CellwisePath``): lcd-ecal's 15 625 cells pass through a few hundred numbers in
  either field, which cannot carry each cell's state, and without the path the shape loss
  stayed at what predicting nothing scores;
- ``counts`` adds to the breakdown how many cells each part reads out, and the read-out keeps
  that many of each part's largest cells: each cell's map sets each cell's occupancy over all
  showers, not together with the shower's energy: on lcd-ecal the number of cells read out
  came out with half Geant4's spread, and drawing it halved FPD (docs/lcd-ecal.md);
- ``fill``: where a part's drawn count exceeds its cells above the edge, which empty cells
  make it up. By default those highest in the empty band, a draw at random among them, which on
  lcd-ecal put 2–3.5× Geant4's cells into the halo, where most of the empty cells are;
  ``fill="occupancy"`` draws them in proportion to each cell's occupancy in training
  (Gumbel-top-k on the band, ``EnergyParts``). On lcd-ecal that put every ring's count within
  0.87–1.17 of Geant4's, but moved neither the classifiers nor FPD, so it is off by default
  (docs/lcd-ecal.md);
- ``layer_rings`` cuts each layer into rings around the axis as well, so that the breakdown
  holds the radial profile too, where the leaders' parts of a multi-layer detector are its
  layers: on lcd-ecal the shape field put the core's energy into the halo. Off by default, and
  its shares in two levels (``chain``, a chain over the layers, then one within each layer): in
  one chain of 125 shares an error moves energy into every part after it, and on lcd-ecal the
  first and last layers came out 4.5× and 0.1× Geant4's (docs/lcd-ecal.md);
- ``tokens="rings"`` gives the parts' transformer a token per ring within each layer, each ring
  with linear maps in and out of its own (shared by the layers), where CaloDREAM cuts a layer
  into patches: on lcd-ecal a layer's 625 cells through one token of 128 numbers spread the
  core's energy over its neighbours (the largest cell of layers 3–6 held a median 0.58–0.64 of
  the layer's energy, Geant4's 0.65–0.71), and a token for the 25 cells within 3 of the middle
  took it to 0.62–0.66 and the held-out score from 0.209 to 0.190 (docs/lcd-ecal.md);
- rings around the axis for a one-layer readout, where the leaders' parts are layers: nobody has
  published a single-layer ECAL this way; SuperCalo's coarse super-cells (arXiv:2308.11700) are
  the nearest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from caloforge.data.transforms import Chain, EnergyParts, Standardize, Transform, part_slots
from caloforge.detectors import detector_from_yaml
from caloforge.errors import CaloforgeError
from caloforge.evaluation.observables import RING_EDGES
from caloforge.models.base import TrainBatch
from caloforge.models.common import part_layers, partition, shard_rand, shard_randn
from caloforge.models.flow_matching import (
    BAND_DECADES,
    CALIBRATION,
    EMPTY,
    CellwisePath,
    VelocityField,
    _FlowConfig,
    _ShowerFlow,
    integrate,
    time_features,
    time_frequencies,
)

__all__ = ["EnergyFirst", "EnergyFirstConfig", "PartTransformer", "ring_kinds"]


class EnergyFirstConfig(_FlowConfig):
    older_files: ClassVar[dict[str, Any]] = _FlowConfig.older_files | {
        "skip": False,
        "chain": "parts",
    }
    family: Literal["energy-first"] = "energy-first"
    empty: Literal["gap", "fixed", "band"] = Field(default="band", description=EMPTY)
    calibration: int = Field(default=32, ge=0, description=CALIBRATION)
    rings: tuple[float, ...] = Field(
        default=RING_EDGES, description="ring edges in cells, parts of a one-layer readout"
    )
    layer_rings: bool = Field(
        default=False,
        description="the breakdown's parts are the rings within each layer of a multi-layer "
        "detector, not the layers (the parts' transformer keeps a token per layer)",
    )
    chain: Literal["layers", "parts"] = Field(
        default="layers",
        description="with layer_rings, the breakdown's shares: a chain over the layers and one "
        "within each layer over its rings (``EnergyParts``' groups), or one chain over the parts",
    )
    floor: float = Field(
        default=1e-3, gt=0, lt=1, description="a cell is ln(cell / threshold + floor)"
    )
    energy_hidden: int = Field(default=256, gt=0, description="width of the energy field")
    energy_blocks: int = Field(default=3, gt=0, description="residual blocks of the energy field")
    hidden: int = Field(default=1024, gt=0, description="width of the shape field")
    blocks: int = Field(default=3, gt=0, description="blocks of the shape field")
    shape_field: Literal["mlp", "parts"] = Field(
        default="mlp",
        description="the shape field: one residual MLP over every cell, or a transformer with "
        "a token per part (``PartTransformer``; ``hidden`` its token width)",
    )
    heads: int = Field(default=4, gt=0, description="attention heads of the parts' transformer")
    tokens: Literal["layers", "rings"] = Field(
        default="layers",
        description="the parts' transformer's tokens: one per layer, or one per ring (``rings``) "
        "within each layer, each ring with maps in and out of its own, shared by the layers",
    )
    skip: bool = Field(
        default=True,
        description="add each cell's own velocity path to the shape field's (``CellwisePath``)",
    )
    cellwise: int = Field(
        default=8, ge=0, description="hidden units of each cell's own path; 0: its Gaussian term"
    )
    counts: bool = Field(
        default=False,
        description="draw how many cells each part reads out with its energy (``EnergyParts``)",
    )
    fill: Literal["band", "occupancy"] = Field(
        default="band",
        description="with counts, the empty cells read out where a part's count exceeds its "
        "cells above the edge: the highest in the empty band (at random), or drawn in "
        "proportion to each cell's occupancy in training (``EnergyParts``' band; empty=band)",
    )
    lr: float = Field(default=1e-3, gt=0, description="peak learning rate (cosine decay)")
    energy_weight: float = Field(
        default=1.0, gt=0, description="weight of the energy field's loss against the shape's"
    )
    energy_steps: int = Field(default=16, gt=0, description="midpoint steps of the energy ODE")
    sample_steps: int = Field(default=4, gt=0, description="midpoint steps of the shape ODE")


class EnergyFirst(_ShowerFlow):
    """The energy breakdown's velocity field, then the cells' given it."""

    config_class = EnergyFirstConfig

    def __init__(self, config: EnergyFirstConfig):
        super().__init__(config)
        k, parts = self.n_network_conditions, self.energy_coordinates
        self.energy = VelocityField(parts, k, config.energy_hidden, config.energy_blocks)
        if config.shape_field == "mlp":
            self.shape = VelocityField(
                self.detector.n_cells, k + parts, config.hidden, config.blocks
            )
        else:
            rings = config.tokens == "rings"
            assigned = partition(self.detector, config.rings, layer_rings=rings)
            self.shape = PartTransformer(
                assigned,
                k + parts,
                config.hidden,
                config.blocks,
                config.heads,
                kinds=ring_kinds(self.detector, assigned) if rings else None,
            )
        if config.skip:
            self.shape = CellwisePath(self.shape, self.detector.n_cells, config.cellwise)

    @classmethod
    def default_transforms(cls, config) -> tuple[Transform, Transform]:
        _, conditions = super().default_transforms(config)
        detector = detector_from_yaml(config.detector)
        threshold = detector.threshold if detector.threshold > 0 else None
        parts = partition(detector, config.rings, layer_rings=config.layer_rings)
        groups = None
        if config.layer_rings and config.chain == "layers":
            groups = part_layers(detector, parts).tolist()
        band = None
        if config.fill == "occupancy":
            if not (config.counts and config.empty == "band"):
                raise CaloforgeError("fill=occupancy needs counts=true and empty=band")
            band = [config.band, BAND_DECADES]
        first = EnergyParts(
            parts.tolist(), threshold, config.floor, counts=config.counts, groups=groups, band=band
        )
        return Chain([first, Standardize()]), conditions

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.teacher_sample(noise, conditions, self.config.sample_steps)

    def teacher_sample(self, noise: torch.Tensor, conditions: torch.Tensor, steps: int):
        k = self.energy_coordinates
        energy = integrate(self.energy, noise[:, :k], conditions, self.config.energy_steps)
        given = torch.cat([conditions, energy], dim=1)
        return torch.cat([energy, integrate(self.shape, noise[:, k:], given, steps)], dim=1)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"velocity": torch.optim.Adam(self.parameters(), self.config.lr)}

    def train_step(
        self,
        batches: Sequence[TrainBatch],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        step: int,
    ) -> dict[str, float]:
        self.train()
        batch = batches[0]
        k = self.energy_coordinates
        x1 = batch.showers
        x0 = shard_randn(tuple(x1.shape), generator)
        t = shard_rand((len(x1), 2), generator)  # a time for each field
        te, ts = t[:, :1], t[:, 1:]
        e1, s1 = x1[:, :k], x1[:, k:]
        e0, s0 = x0[:, :k], x0[:, k:]
        energy = (self.energy((1 - te) * e0 + te * e1, te, batch.conditions) - (e1 - e0)).pow(2)
        given = torch.cat([batch.conditions, e1], dim=1)
        shape = (self.shape((1 - ts) * s0 + ts * s1, ts, given) - (s1 - s0)).pow(2)
        loss = self.config.energy_weight * energy.mean() + shape.mean()
        return {
            "flow_matching": self._update(optimizers["velocity"], loss, step),
            "energy": energy.mean().item(),
            "shape": shape.mean().item(),
        }


class PartTransformer(nn.Module):
    """v(x, t, c) with a token per part: each part's cells projected by one linear map per kind
    of part (``kinds``; by default one kind: a layer's cells lie alike in every layer), plus a
    learnt embedding of the part and one of the conditions and time; pre-norm attention blocks
    across the parts, each scaled and shifted by that embedding (adaLN, Peebles & Xie,
    arXiv:2212.09748); a map per kind back.

    CaloDREAM's shape network attends across layers the same way (arXiv:2405.09629). Departure:
    a token is the whole part's cells, not patches of it, so that a layer of 625 cells costs one
    token: 25 tokens per lcd-ecal shower, 2.4 training steps a second at batch 256 on a 2-core
    CPU (docs/lcd-ecal.md). Against the MLP over every cell its size follows the largest part,
    not the whole detector (lcd-ecal: 1.2 M parameters at width 128 with 4 blocks, against 35 M).
    """

    def __init__(
        self,
        parts: np.ndarray,
        n_conditions: int,
        width: int,
        blocks: int,
        heads: int,
        kinds: np.ndarray | None = None,
    ):
        super().__init__()
        if width % heads:
            raise CaloforgeError(
                f"the shape field's width {width} is not a multiple of {heads} heads"
            )
        gather, position = part_slots(parts)  # a padding slot reads an appended zero
        n_parts, size = gather.shape
        kinds = np.zeros(n_parts, np.int64) if kinds is None else np.asarray(kinds, np.int64)
        counts = np.bincount(parts, minlength=n_parts)
        # the parts of each kind, and the largest of them: a kind's maps read that many slots
        self.kinds = [np.flatnonzero(kinds == k) for k in range(int(kinds.max()) + 1)]
        sizes = [int(counts[members].max()) for members in self.kinds]
        order = np.concatenate(self.kinds)  # tokens run kind by kind, then back to part order
        self.register_buffer("gather", torch.from_numpy(gather), persistent=False)
        self.register_buffer("position", torch.from_numpy(position), persistent=False)
        self.register_buffer("frequencies", time_frequencies(), persistent=False)
        self.register_buffer("order", torch.from_numpy(order), persistent=False)
        self.register_buffer("unorder", torch.from_numpy(np.argsort(order)), persistent=False)
        self.size = size
        self.sizes = sizes
        self.inp = nn.ModuleList(nn.Linear(n, width) for n in sizes)
        self.part = nn.Parameter(0.02 * torch.randn(n_parts, width))
        self.embed = nn.Sequential(
            nn.Linear(n_conditions + 2 * VelocityField.FREQUENCIES, width),
            nn.SiLU(),
            nn.Linear(width, width),
        )
        self.blocks = nn.ModuleList(_AttentionBlock(width, heads) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.out = nn.ModuleList(nn.Linear(width, n) for n in sizes)
        for out in self.out:
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("inp.weight", "inp.bias", "out.weight", "out.bias"):  # one map, older files
            if prefix + name in state_dict:
                kind, leaf = name.split(".")
                state_dict[f"{prefix}{kind}.0.{leaf}"] = state_dict.pop(prefix + name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cells) → (N, parts, largest part): each part's cells, zeros after them."""
        return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)[:, self.gather]

    def cells(self, tokens: torch.Tensor) -> torch.Tensor:
        """The inverse of ``tokens``: (N, parts, largest part) → (N, cells)."""
        return tokens.flatten(1)[:, self.position]

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        embedding = self.embed(torch.cat([c, time_features(t, self.frequencies)], dim=1))
        tokens = self.tokens(x)
        pieces = zip(self.inp, self.kinds, self.sizes)
        h = torch.cat([inp(tokens[:, parts, :n]) for inp, parts, n in pieces], dim=1)
        h = h[:, self.unorder] + self.part + embedding[:, None]
        for block in self.blocks:
            h = block(h, embedding)
        h, out, start = self.norm(h)[:, self.order], [], 0
        for head, parts, n in zip(self.out, self.kinds, self.sizes):
            piece = head(h[:, start : start + len(parts)])
            out.append(nn.functional.pad(piece, (0, self.size - n)))
            start += len(parts)
        return self.cells(torch.cat(out, dim=1)[:, self.unorder])


def ring_kinds(detector, parts: np.ndarray) -> np.ndarray:
    """Each part's ring within its layer (0 the innermost), for parts cut by ``partition`` with
    ``layer_rings``: the parts of one layer are numbered from its middle outwards."""
    layer = part_layers(detector, parts)
    return np.arange(len(layer)) - np.searchsorted(layer, layer)


class _AttentionBlock(nn.Module):
    """Self-attention and a 4x feed-forward, each after a LayerNorm the embedding scales and
    shifts. Written out rather than ``nn.MultiheadAttention``, whose inference fast path the
    TorchScript ONNX exporter cannot trace."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(width, 4 * width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, width))
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        per_head = h.shape[-1] // self.heads
        scale1, shift1, scale2, shift2 = self.film(embedding)[:, None].chunk(4, dim=2)
        qkv = self.qkv(self.norm1(h) * (1 + scale1) + shift1)
        q, k, v = qkv.unflatten(2, (3, self.heads, per_head)).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(per_head), dim=-1)
        h = h + self.proj((attention @ v).transpose(1, 2).flatten(2))
        return h + self.ff(self.norm2(h) * (1 + scale2) + shift2)
