"""Energy first, then shape: a flow-matching model of the energy breakdown and one of the cells.

``energy-first`` parts a detector's cells (``common.partition``: its layers, or rings around the
shower axis of a one-layer readout) and draws a shower in two stages, as the leaders of the
CaloChallenge do (CaloFlow's flows I and II, arXiv:2106.05285 and 2110.11377; CaloINN,
arXiv:2312.09290; CaloDREAM's energy and shape networks, arXiv:2405.09629):

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
- rings around the axis for a one-layer readout, where the leaders' parts are layers: nobody has
  published a single-layer ECAL this way; SuperCalo's coarse super-cells (arXiv:2308.11700) are
  the nearest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from caloforge.data.transforms import Chain, EnergyParts, Standardize, Transform
from caloforge.detectors import detector_from_yaml
from caloforge.evaluation.observables import RING_EDGES
from caloforge.models.base import TrainBatch
from caloforge.models.common import partition, shard_rand, shard_randn
from caloforge.models.flow_matching import (
    CALIBRATION,
    EMPTY,
    VelocityField,
    _FlowConfig,
    _ShowerFlow,
    integrate,
)

__all__ = ["EnergyFirst", "EnergyFirstConfig"]


class EnergyFirstConfig(_FlowConfig):
    family: Literal["energy-first"] = "energy-first"
    empty: Literal["gap", "fixed", "band"] = Field(default="band", description=EMPTY)
    calibration: int = Field(default=32, ge=0, description=CALIBRATION)
    rings: tuple[float, ...] = Field(
        default=RING_EDGES, description="ring edges in cells, parts of a one-layer readout"
    )
    floor: float = Field(
        default=1e-3, gt=0, lt=1, description="a cell is ln(cell / threshold + floor)"
    )
    energy_hidden: int = Field(default=256, gt=0, description="width of the energy field")
    energy_blocks: int = Field(default=3, gt=0, description="residual blocks of the energy field")
    hidden: int = Field(default=1024, gt=0, description="width of the shape field")
    blocks: int = Field(default=3, gt=0, description="residual blocks of the shape field")
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
        self.shape = VelocityField(self.detector.n_cells, k + parts, config.hidden, config.blocks)

    @classmethod
    def default_transforms(cls, config) -> tuple[Transform, Transform]:
        _, conditions = super().default_transforms(config)
        detector = detector_from_yaml(config.detector)
        threshold = detector.threshold if detector.threshold > 0 else None
        parts = partition(detector, config.rings).tolist()
        return Chain([EnergyParts(parts, threshold, config.floor), Standardize()]), conditions

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
