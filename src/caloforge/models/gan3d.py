"""CERN's 3DGAN (seed 002): 3D convolutions on the CLIC ECAL's 51 × 51 × 25 voxels.

What the seed fixes, kept here as defaults:

- generator: the latent vector (256) multiplied element-wise by the primary energy (in units of
  100 GeV), then four 3D convolutions: 64 filters 6×6×8, 6 filters 5×8×8, 6 filters 3×5×8,
  1 filter 2×2×2 (x × y × z), LeakyReLU after all but the last, a ReLU at the end, batch norm after
  the first two;
- discriminator: four 3D convolutions of 16 filters 5×6×6, LeakyReLU, batch norm after all but
  the first; heads: a sigmoid real/fake output, a linear regression of the primary energy and one
  of the incident angle;
- loss: W_G·L_G (binary cross-entropy, real/fake) + W_P·L_P (MAPE of the regressed primary energy)
  + W_A·L_A (MAE of the regressed angle) + W_E·L_E (MAPE of the total deposited energy) +
  W_B·L_B (MAPE of the binned pixel-intensity spectrum), weights 3, 0.1, 25, 0.1, 0.1 (every one
  an option, so the ablation of L_E and L_B is ``-o sum_weight=0 -o spectrum_weight=0``);
- cells raised to the power 0.85, no other normalisation of their relative sizes; RMSprop; per
  step, the discriminator on a real and on a generated batch with label switching, then the
  generator twice;
- the networks see the shower centred on its barycentre (``barycentre``, on by default).

Departures, and why:

- the seed's generator reaches its 51 × 51 × 25 through Keras paddings and upsamplings it does not
  give; here: a dense layer to 8 channels of 7 × 13 × 13 (z × y × x), the 6×6×8 convolution,
  upsampling ×2, the 5×8×8 convolution, upsampling to 25 × 51 × 51, the 3×5×8 and 2×2×2
  convolutions, all with "same" padding; the angle enters beside the energy-scaled latent vector
  (the seed's angle version conditions on it, its text does not say how);
- ``mean_image`` (off by default, on for the CPU-trained ``clic-ecal-3dgan``): a learned bias per
  cell added before the final ReLU, starting at the mean training image (in the barycentre
  frame, in the networks' units), so that a run of a few hundred steps, all this CPU affords,
  starts from the average shower instead of flat noise; the seed, trained for days on GPUs,
  has none;
- the discriminator's convolutions are followed by a 2×2×2 average pooling before the heads, to
  keep them small on a CPU;
- one scale (the power-transformed cells' standard deviation) divides every cell, so the
  networks see numbers of order one; zero stays zero;
- the barycentre frame: the seed's images are cut from the full detector around the shower's
  barycentre; clic-ecal's window is fixed and the primary enters at its centre, tilted in x by
  θ, so the barycentre drifts by about 8 cells × cot θ. Each training shower is shifted by whole
  cells so that its energy-weighted (x, y) barycentre falls in the central cell (sub-cell
  offsets stay in the image). Generated showers are shifted back by the rounded mean
  barycentre at their θ, a line in cot θ fitted on the training data (``drift``), so that
  ``generate`` writes them in the detector frame like Geant4's: what is lost is the event-by-
  event scatter of the barycentre about that line;
- label switching (ganhacks, the seed's reference [22]): each label of the discriminator's
  batch is flipped with probability ``label_flip``; the generator is trained towards "real";
- L_E compares a generated shower's visible energy with the mean response (visible / primary,
  fitted on the training data) times its primary energy; L_B compares the batch's mean
  spectrum of cell intensities, in 8 bins whose edges are quantiles of the training cells,
  counted with smooth (sigmoid) bin edges so that it has a gradient.

The measurements of the CPU-trained model and of the loss ablation are in the model card of the
pretrained ``clic-ecal-3dgan`` (``pretrained/clic-ecal-3dgan/README.md``).

References:
    | G. R. Khattak, S. Vallecorsa, F. Carminati, G. M. Khan, "Fast simulation of a high
    | granularity calorimeter by generative adversarial networks", arXiv:2109.07388 (seed 002).
    | S. Chintala et al., "How to train a GAN", github.com/soumith/ganhacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from caloforge.data.transforms import Chain, Identity, Power, Standardize, Transform
from caloforge.detectors import detector_from_yaml
from caloforge.models.base import GenerativeModel, ModelConfig, TrainBatch
from caloforge.models.common import (
    PartBatchNorm3d,
    cube_shape,
    data_parts,
    require_conditions,
    shard_rand,
    shard_randn,
)

__all__ = ["GAN3D", "GAN3DConfig", "barycentres", "shift_cells"]

CONDITIONS = ("energy", "theta")
ENERGY_UNIT = 100_000.0  # MeV: the generator's energy factor is E / 100 GeV


class GAN3DConfig(ModelConfig):
    family: Literal["gan-3d"] = "gan-3d"
    latent: int = Field(default=256, gt=0, description="size of the noise vector")
    power: float = Field(default=0.85, gt=0, description="cells enter as energy ** power")
    generator_filters: tuple[int, int, int] = Field(
        default=(64, 6, 6), description="filters of the generator's three convolutions"
    )
    discriminator_filters: int = Field(
        default=16, gt=0, description="filters of the discriminator's convolutions"
    )
    gan_weight: float = Field(default=3.0, ge=0, description="W_G")
    energy_weight: float = Field(default=0.1, ge=0, description="W_P, primary energy")
    angle_weight: float = Field(default=25.0, ge=0, description="W_A")
    sum_weight: float = Field(default=0.1, ge=0, description="W_E, deposited energy")
    spectrum_weight: float = Field(default=0.1, ge=0, description="W_B, pixel spectrum")
    label_flip: float = Field(
        default=0.05,
        ge=0,
        lt=0.5,
        description="chance that a discriminator batch's labels are switched",
    )
    generator_steps: int = Field(
        default=2, gt=0, description="generator updates per discriminator update"
    )
    lr: float = Field(default=1e-3, gt=0, description="RMSprop's learning rate")
    response: float | None = Field(default=None, description="mean visible/primary (fitted)")
    spectrum_edges: tuple[float, ...] | None = Field(
        default=None, description="cell-intensity bin edges, power-transformed (fitted)"
    )
    barycentre: bool = Field(default=True, description="train on showers centred on it")
    mean_image: bool = Field(
        default=False, description="a per-cell output bias starting at the training mean image"
    )
    drift: tuple[float, float, float, float] | None = Field(
        default=None,
        description="barycentre x, y in cells from the centre = a_x + b_x cot θ, a_y + b_y cot θ"
        " (fitted): (a_x, b_x, a_y, b_y)",
    )


class GAN3D(GenerativeModel):
    """The 3DGAN: 3D convolutional generator, discriminator with energy and angle heads."""

    config_class = GAN3DConfig

    def __init__(self, config: GAN3DConfig):
        super().__init__(config)
        require_conditions(self.family, config.conditions, CONDITIONS)
        self.shape = cube_shape(self.detector, self.family)
        self.generator = _Generator(
            config.latent, self.shape, config.generator_filters, config.mean_image
        )
        self.discriminator = _Discriminator(self.shape, config.discriminator_filters)
        names = config.conditions
        self._energy, self._theta = names.index("energy"), names.index("theta")

    @classmethod
    def default_transforms(cls, config: GAN3DConfig) -> tuple[Transform, Transform]:
        return Chain([Power(config.power), Standardize(per_feature=False)]), Identity()

    @classmethod
    def create(cls, config, showers, energy, conditions) -> GAN3D:
        powered = np.clip(showers, 0, None) ** config.power
        nonzero = powered[powered > 0]
        edges = np.quantile(nonzero, np.linspace(0, 1, 9)[1:-1]) if nonzero.size else []
        cot = 1.0 / np.tan(np.radians(conditions[:, config.conditions.index("theta")]))
        design = np.stack([np.ones_like(cot), cot], axis=1)
        centre = barycentres(showers, _image_shape(config))
        drift = np.linalg.lstsq(design, centre, rcond=None)[0]  # (2 terms, 2 axes)
        config = config.model_copy(
            update={
                "response": float(np.mean(showers.sum(axis=1) / energy)),
                "spectrum_edges": tuple(float(e) for e in edges),
                "drift": tuple(float(v) for v in drift.T.ravel()),
            }
        )
        model = super().create(config, showers, energy, conditions)
        if config.mean_image:
            total = torch.zeros(int(np.prod(_image_shape(config))), dtype=torch.float64)
            for i in range(0, len(showers), 500):
                rows = slice(i, i + 500)
                part = model.to_training(showers[rows], energy[rows], conditions[rows])
                total += (part.showers - model._zero).sum(dim=0, dtype=torch.float64)
            with torch.no_grad():
                model.generator.template.copy_((total / len(showers)).view(1, 1, *model.shape))
        return model

    def to_training(self, showers, energy, conditions, rows=None) -> TrainBatch:
        if self.config.barycentre:
            showers = np.concatenate(
                [  # in chunks: 65 025 cells per event
                    self._centred(showers[i : i + 1000]) for i in range(0, len(showers), 1000)
                ]
            )
        return super().to_training(showers, energy, conditions, rows)

    def _centred(self, showers: np.ndarray) -> np.ndarray:
        shift = -np.rint(barycentres(showers, self.shape))
        images = torch.as_tensor(showers, dtype=torch.float32).view(-1, *self.shape)
        return shift_cells(images, torch.as_tensor(shift, dtype=torch.long)).flatten(1).numpy()

    # ------------------------------------------------------------------ sampling

    @property
    def latent_dim(self) -> int:
        return self.config.latent

    @property
    def _scale(self) -> float:
        return float(self.shower_transform.steps[1].std)

    @property
    def _zero(self) -> float:
        scaling = self.shower_transform.steps[1]
        return float(-scaling.mean / scaling.std)

    def decode(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        showers = super().decode(noise, conditions)
        if not self.config.barycentre:
            return showers
        a_x, b_x, a_y, b_y = self.config.drift
        theta = conditions[:, self._theta] * (np.pi / 180.0)
        cot = torch.cos(theta) / torch.sin(theta)
        shift = torch.stack([a_x + b_x * cot, a_y + b_y * cot], dim=1).round().long()
        return shift_cells(showers.view(-1, *self.shape), shift).flatten(1)

    def _inputs(self, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(energy / 100 GeV, (θ − 90°) / 30°), each (N, 1)."""
        e = conditions[:, self._energy : self._energy + 1] / ENERGY_UNIT
        a = (conditions[:, self._theta : self._theta + 1] - 90.0) / 30.0
        return e, a

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        e, a = self._inputs(conditions)
        image = self.generator(noise * e, a)  # ≥ 0: power-transformed cells / scale
        return image.flatten(1) + self._zero

    # ------------------------------------------------------------------ training

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.lr
        return {
            "generator": torch.optim.RMSprop(self.generator.parameters(), lr),
            "discriminator": torch.optim.RMSprop(self.discriminator.parameters(), lr),
        }

    def _image(self, transformed: torch.Tensor) -> torch.Tensor:
        return (transformed - self._zero).view(-1, 1, *self.shape)

    def _heads_loss(self, outputs, e, a) -> tuple[torch.Tensor, torch.Tensor]:
        _, energy, angle = outputs
        mape = ((energy - e).abs() / e).mean()
        mae = (angle - a).abs().mean()
        return mape, mae

    def train_step(
        self,
        batches: Sequence[TrainBatch],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        step: int,
    ) -> dict[str, float]:
        cfg = self.config
        self.train()
        batch = batches[0]
        n = len(batch)
        e, a = self._inputs(batch.conditions)
        bce = nn.functional.binary_cross_entropy
        # Discriminator: a real batch, then a generated one, labels switched at random.
        with torch.no_grad():
            fake = self.generate_transformed(
                shard_randn((n, cfg.latent), generator), batch.conditions
            )
        logs: dict[str, float] = {}
        optimizers["discriminator"].zero_grad(set_to_none=True)
        for name, images, label in (("real", batch.showers, 1.0), ("fake", fake, 0.0)):
            flip = shard_rand((n, 1), generator) < cfg.label_flip
            target = torch.where(flip, 1.0 - label, label)
            outputs = self.discriminator(self._image(images))
            mape, mae = self._heads_loss(outputs, e, a)
            loss = cfg.gan_weight * bce(outputs[0], target)
            loss = loss + cfg.energy_weight * mape + cfg.angle_weight * mae
            loss.backward()
            logs[f"discriminator_{name}"] = loss.item()
        optimizers["discriminator"].step()
        # Generator, twice, against the fixed discriminator.
        self.discriminator.requires_grad_(False)
        try:
            for _ in range(cfg.generator_steps):
                noise = shard_randn((n, cfg.latent), generator)
                fake = self.generate_transformed(noise, batch.conditions)
                outputs = self.discriminator(self._image(fake))
                mape, mae = self._heads_loss(outputs, e, a)
                adversarial = bce(outputs[0], torch.ones_like(outputs[0]))
                deposit, spectrum = self._physics_losses(fake, batch)
                loss = (
                    cfg.gan_weight * adversarial
                    + cfg.energy_weight * mape
                    + cfg.angle_weight * mae
                    + cfg.sum_weight * deposit
                    + cfg.spectrum_weight * spectrum
                )
                optimizers["generator"].zero_grad(set_to_none=True)
                loss.backward()
                optimizers["generator"].step()
        finally:
            self.discriminator.requires_grad_(True)
        return logs | {
            "generator": loss.item(),
            "generator_adversarial": adversarial.item(),
            "deposited_energy_mape": deposit.item(),
            "spectrum_mape": spectrum.item(),
        }

    def _physics_losses(self, fake: torch.Tensor, batch: TrainBatch):
        """L_E and L_B of generated (transformed) showers against the batch's conditions."""
        powered = (fake - self._zero) * self._scale  # cells ** power, ≥ 0
        visible = (powered.clamp_min(0) ** (1.0 / self.config.power)).sum(dim=1)
        expected = self.config.response * batch.energy[:, 0]
        deposit = ((visible - expected).abs() / expected).mean()
        real = (batch.showers - self._zero) * self._scale
        # The spectrum is a statistic of a batch: taken per data part, so that the step does not
        # depend on how many processes share the batch.
        spectrum = torch.stack(
            [
                ((f - r).abs() / r.clamp_min(1e-6)).mean()
                for f, r in zip(
                    map(self._spectrum, data_parts(powered)),
                    map(self._spectrum, data_parts(real)),
                    strict=True,
                )
            ]
        ).mean()
        return deposit, spectrum

    def _spectrum(self, powered: torch.Tensor) -> torch.Tensor:
        """The batch's mean fraction of cells per intensity bin, with smooth edges."""
        edges = powered.new_tensor(self.config.spectrum_edges or ())
        width = 0.1 * edges.clamp_min(1e-6)
        above = torch.sigmoid((powered.unsqueeze(-1) - edges) / width).mean(dim=(0, 1))
        occupied = (powered > 0).to(powered.dtype).mean()
        cumulative = torch.cat([occupied.reshape(1), above])
        return cumulative - torch.cat([above, powered.new_zeros(1)])


def _image_shape(config: GAN3DConfig) -> tuple[int, int, int]:
    return cube_shape(detector_from_yaml(config.detector), GAN3D.family)


def barycentres(showers: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, 2) energy-weighted x, y of each shower in cells from the central cell.

    ``shape``: (layers, ny, nx) of the layer-major, then y, then x cell order. An empty shower's
    barycentre is the centre.
    """
    images = showers.reshape(-1, *shape)
    total = np.maximum(images.sum(axis=(1, 2, 3)), np.finfo(np.float64).tiny)
    x = images.sum(axis=(1, 2)) @ (np.arange(shape[2]) - (shape[2] - 1) / 2)
    y = images.sum(axis=(1, 3)) @ (np.arange(shape[1]) - (shape[1] - 1) / 2)
    return np.stack([x, y], axis=1) / total[:, None]


def shift_cells(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Images (N, L, Y, X) moved by whole cells, (N, 2) integer (dx, dy); zeros shifted in.

    A product with one-hot shift matrices rather than an index gather: the same graph for any
    batch in ONNX and AOTInductor, and (N, X, X) + (N, Y, Y) of memory instead of an index per cell.
    """
    ny, nx = images.shape[-2:]
    x, y = torch.arange(nx, device=images.device), torch.arange(ny, device=images.device)
    to_x = (x[None, :, None] + shift[:, 0, None, None] == x[None, None, :]).to(images.dtype)
    to_y = (y[None, None, :] + shift[:, 1, None, None] == y[None, :, None]).to(images.dtype)
    return to_y.unsqueeze(1) @ images @ to_x.unsqueeze(1)


def _conv_same(channels_in: int, channels_out: int, kernel: tuple[int, int, int]) -> nn.Sequential:
    """A stride-1 convolution keeping the size, even kernels padded one more on the far side."""
    pads: list[int] = []
    for k in reversed(kernel):  # ConstantPad3d takes (x, y, z) pairs
        pads += [(k - 1) // 2, k - 1 - (k - 1) // 2]
    return nn.Sequential(
        nn.ConstantPad3d(tuple(pads), 0.0), nn.Conv3d(channels_in, channels_out, kernel)
    )


class _Generator(nn.Module):
    def __init__(
        self,
        latent: int,
        shape: tuple[int, int, int],
        filters: tuple[int, int, int],
        mean_image: bool = False,
    ):
        super().__init__()
        self.start = (7, 13, 13)
        self.dense = nn.Linear(latent + 1, 8 * int(np.prod(self.start)))
        f1, f2, f3 = filters
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            _conv_same(8, f1, (8, 6, 6)),
            act,
            PartBatchNorm3d(f1),
            nn.Upsample(scale_factor=2),
            _conv_same(f1, f2, (8, 8, 5)),
            act,
            PartBatchNorm3d(f2),
            nn.Upsample(size=shape),
            _conv_same(f2, f3, (8, 5, 3)),
            act,
            _conv_same(f3, 1, (2, 2, 2)),
        )
        self.template = nn.Parameter(torch.zeros(1, 1, *shape)) if mean_image else None

    def forward(self, scaled_noise: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        h = self.dense(torch.cat([scaled_noise, angle], dim=1))
        out = self.net(h.view(-1, 8, *self.start))
        return torch.relu(out if self.template is None else out + self.template)


class _Discriminator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], filters: int):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        layers: list[nn.Module] = [_conv_same(1, filters, (6, 6, 5)), act]
        for _ in range(3):
            layers += [nn.Conv3d(filters, filters, (6, 6, 5)), act, PartBatchNorm3d(filters)]
        layers.append(nn.AvgPool3d(2))
        self.net = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            features = self.net(torch.zeros(2, 1, *shape)).shape[1]
        self.real = nn.Linear(features, 1)
        self.energy = nn.Linear(features, 1)
        self.angle = nn.Linear(features, 1)

    def forward(self, image: torch.Tensor):
        h = self.net(image)
        return torch.sigmoid(self.real(h)), self.energy(h), self.angle(h)
