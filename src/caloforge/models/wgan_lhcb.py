"""The LHCb conditional WGAN-GP with a pretrained regressor.

Generator: noise (512) and the particle's (px, py, pz, x, y) → dense → 256×4×4 → three
upsamplings to 128×8×8, 64×16×16, 32×32×32 (ReLU) → one channel, cropped to the detector's
ny × nx image. Critic: the reverse, with LeakyReLU, the conditions also joined after the
convolutions. Training: Wasserstein loss with gradient penalty (λ = 10) and ``n_critic`` = 5
critic updates per generator update, Adam with the learning rate and betas (0, 0.9) of
Gulrajani et al.; the critic sees cell energies as fractions of the incident energy, Box-Cox
transformed then standardised with one scale for all cells.

Departures from the seed, for training in an hour on a CPU rather than days on a GPU:

- the generator's image is a softmax over the cells (the shower's shape) times the visible
  energy: E_visible/E_inc is drawn from the calorimeter's resolution, σ/μ = a/√E ⊕ b, fitted
  on the training data (the noise's first component is its Gaussian deviate), so the energy
  scale is right from the first step and the networks spend their updates on the shape; cells
  below the detector's threshold are exactly 0, as read out, with a straight-through gradient;
- the shape's logits are those of a mean lateral profile (``LateralProfile``, fitted by
  maximum likelihood on the training data before the networks train, then fixed) integrated
  over the cells around the point where a straight line from the entry point along the
  momentum puts the shower (a linear fit in x, y, px/pz, py/pz) moved by a learned offset,
  plus the networks' bounded residual: the networks learn how each shower strays and differs
  from the mean rather than where showers go and what they look like;
- the pixel coordinates and the conditions enter the generator's last convolutions and the
  critic's first as extra channels (CoordConv), so both can relate a cell to the particle's
  direction and entry point directly;
- upsampling is nearest-neighbour followed by a convolution, not a transposed convolution.

Conditioning goes through a regressor with the critic's convolutional trunk, pretrained for the
first ``regressor_steps`` steps to predict the conditions from real showers and then frozen. The
generator's loss adds the regressor's error on generated showers, weighted by
``regressor_weight``: an error measured through a fixed trained network, the perceptual-loss idea
of Johnson et al. (arXiv:1603.08155), here in the space of the physics parameters.

The pretrained ``lhcb-ecal-wgan`` is measured in its model card
(``pretrained/lhcb-ecal-wgan/README.md``).

References:
    | V. Chekalina et al., "Generative Models for Fast Calorimeter Simulation: the LHCb case",
    | EPJ Web Conf. 214 (2019) 02034, arXiv:1812.01319.
    | I. Gulrajani et al., "Improved Training of Wasserstein GANs", arXiv:1704.00028.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from caloforge.data.transforms import BoxCox, Chain, EnergyFraction, Standardize, Transform
from caloforge.detectors import CartesianBinning
from caloforge.errors import CaloforgeError
from caloforge.models.base import GenerativeModel, ModelConfig, TrainBatch
from caloforge.models.common import (
    AXIS_CONDITIONS,
    axis_centre,
    centroids,
    fit_axis,
    gradient_penalty,
    wgan_step,
)

__all__ = ["LHCbWGAN", "LHCbWGANConfig"]

SIZE = 32
"""Side of the square image the networks work on; the detector image is cropped from it."""

PROFILE_FIT_SHOWERS = 2000
"""Showers the mean lateral profile is fitted on."""


class LHCbWGANConfig(ModelConfig):
    family: Literal["wgan-gp-lhcb"] = "wgan-gp-lhcb"
    latent: int = Field(default=512, gt=0, description="size of the noise vector")
    generator_channels: tuple[int, int, int, int] = Field(
        default=(256, 128, 64, 32),
        description="channels of the generator's four transposed convolutions",
    )
    critic_channels: tuple[int, int, int, int] = Field(
        default=(32, 64, 128, 256), description="channels of the critic's four convolutions"
    )
    gp_lambda: float = Field(default=10.0, ge=0, description="weight of WGAN-GP's gradient penalty")
    n_critic: int = Field(default=5, gt=0, description="critic batches per generator batch")
    lr: float = Field(
        default=1e-4, gt=0, description="Adam's learning rate of the generator and critic"
    )
    betas: tuple[float, float] = Field(default=(0.0, 0.9), description="Adam's (beta1, beta2)")
    regressor_steps: int = Field(
        default=1000, ge=0, description="pretraining steps of the regressor of the conditions"
    )
    regressor_lr: float = Field(default=1e-3, gt=0, description="the regressor's learning rate")
    regressor_weight: float = Field(
        default=1.0, ge=0, description="weight of the regressor's loss in the generator's"
    )
    boxcox_shift: float = Field(
        default=1e-6, gt=0, description="energy fraction added before Box-Cox (0.01 MeV at 10 GeV)"
    )
    logit_bound: float = Field(
        default=10.0, gt=0, description="reach of a shower's logits away from the mean profile's"
    )
    profile_fit_steps: int = Field(
        default=300, ge=0, description="Adam steps fitting the mean lateral profile"
    )
    shift_bound: float = Field(
        default=4.0, gt=0, description="cells a shower's centre may stray from the fitted axis"
    )
    resolution: tuple[float, float, float] | None = Field(
        default=None,
        description="(mean E_visible/E_inc, a in sqrt(MeV), b): its spread σ/mean = a/√E ⊕ b "
        "(fitted)",
    )
    axis: tuple[tuple[float, ...], tuple[float, ...]] | None = Field(
        default=None,
        description="the shower centre's column and row (cells from the first cell's centre) "
        "as linear functions of (1, x, y, px/pz, py/pz) (fitted)",
    )


def _coordinates() -> torch.Tensor:
    """(1, 2, 32, 32): each pixel's x and y on the image, in [-1, 1]."""
    axis = torch.linspace(-1.0, 1.0, SIZE)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y]).unsqueeze(0)


def _with_conditions(image: torch.Tensor, conditions: torch.Tensor, grid: torch.Tensor):
    """Join the pixel coordinates and the event's conditions to an image as extra channels.

    CoordConv (Liu et al., arXiv:1807.03247): with where each pixel is and where the particle
    went side by side, a 1×1 convolution can compute the offset of a pixel from the shower's
    axis, which plain convolutions, being translation invariant, cannot.
    """
    n, _, h, w = image.shape
    parts = [image, grid.expand(n, -1, -1, -1)]
    if conditions.shape[1]:
        parts.append(conditions[:, :, None, None].expand(-1, -1, h, w))
    return torch.cat(parts, dim=1)


def _squash(x: torch.Tensor, bound: float) -> torch.Tensor:
    """x where |x| ≪ bound, smoothly limited to (−bound, bound)."""
    return bound * torch.tanh(x / bound)


class LateralProfile(nn.Module):
    """The mean transverse profile of the showers, integrated over each cell around a centre.

    A mixture of components (core, halo, tail), each the product of two one-dimensional laws
    with the cumulative distribution ½(1 + u/√(u² + R²)): the projection on an axis of the
    radial profile 2rR²/(r² + R²)² of Grindhammer and Peters (arXiv:hep-ex/0001020), so that the
    cell integrals are exact differences and follow the centre within a cell.
    """

    def __init__(self, shape: tuple[int, int], widths: Sequence[float] = (0.15, 0.6, 2.0)):
        super().__init__()
        self.log_width = nn.Parameter(torch.log(torch.tensor(widths)))
        """ln R of each component, in cells."""
        self.weight_logits = nn.Parameter(torch.zeros(len(widths)))
        for name, n in zip(("rows", "columns"), shape, strict=True):
            edges = torch.arange(n + 1, dtype=torch.float64) - 0.5
            self.register_buffer(f"{name}_edges", edges, persistent=False)

    def forward(self, centre: torch.Tensor) -> torch.Tensor:
        """(N, rows·columns) log of each cell's share for centres (N, 2) (column, row, in cells
        from the first cell's centre).

        In double precision, as the centre (``LHCbWGAN._centre``)."""
        width = self.log_width.to(torch.float64).exp()
        weight = torch.softmax(self.weight_logits.to(torch.float64), dim=0)

        def along(edges: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # (N, cells, K)
            u = edges[None, :, None] - c[:, None, None]
            cdf = 0.5 * (1 + u / torch.sqrt(u**2 + width**2))
            return cdf[:, 1:] - cdf[:, :-1]

        rows = along(self.rows_edges, centre[:, 1])
        columns = along(self.columns_edges, centre[:, 0])
        cells = (rows[:, :, None, :] * columns[:, None, :, :] * weight).sum(dim=-1)
        return torch.log(cells.clamp_min(1e-30)).flatten(1).to(torch.float32)

    @torch.no_grad()
    def fit(self, showers: np.ndarray, centroids: np.ndarray, iterations: int) -> None:
        """Fit the widths and weights to showers (N, cells) by maximum likelihood of their
        cell shares, each shower's centre fitted with them from its centroid."""
        shares = torch.as_tensor(showers / showers.sum(axis=1, keepdims=True))
        centre = torch.as_tensor(centroids).clone()
        parameters = [self.log_width, self.weight_logits, centre]
        optimizer = torch.optim.Adam(parameters, lr=0.02)
        for _ in range(iterations):
            with torch.enable_grad():
                centre.requires_grad_(True)
                loss = -(shares * self(centre).to(torch.float64)).sum(dim=1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()


class Generator(nn.Module):
    def __init__(
        self,
        latent: int,
        n_conditions: int,
        channels: tuple[int, int, int, int],
        bounds: tuple[float, float],
    ):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.logit_bound, self.shift_bound = bounds
        self.dense = nn.Linear(latent + n_conditions, c0 * 16)
        self.offset = nn.Sequential(nn.ReLU(), nn.Linear(c0 * 16, 2))
        nn.init.zeros_(self.offset[1].weight)  # start on the fitted axis
        nn.init.zeros_(self.offset[1].bias)
        self.c0 = c0

        # Nearest-neighbour upsampling then a convolution, not transposed convolutions, whose
        # uneven overlap draws a checkerboard (Odena et al., Distill 2016).
        def up(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, 1, 1), nn.ReLU()]

        self.up = nn.Sequential(nn.ReLU(), *up(c0, c1), *up(c1, c2), *up(c2, c3))
        self.out = nn.Sequential(
            nn.Conv2d(c3 + 2 + n_conditions, c3, 3, 1, 1), nn.ReLU(), nn.Conv2d(c3, 1, 3, 1, 1)
        )
        nn.init.zeros_(self.out[2].weight)  # start at the mean profile
        nn.init.zeros_(self.out[2].bias)
        self.register_buffer("grid", _coordinates(), persistent=False)

    def forward(
        self, noise: torch.Tensor, conditions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1×32×32 logits to add to the mean profile's, (N, 2) offset of the shower's centre
        from the fitted axis in cells), within ±``logit_bound`` and ±``shift_bound``: a softmax
        that saturates on one cell has no gradient left to leave it."""
        h = self.dense(torch.cat([noise, conditions], dim=1))
        image = self.up(h.view(-1, self.c0, 4, 4))
        residual = self.out(_with_conditions(image, conditions, self.grid))
        offset = self.offset(h)
        return _squash(residual, self.logit_bound), _squash(offset, self.shift_bound)


class Critic(nn.Module):
    """Image, pixel coordinates and conditions → convolutions → dense head (the regressor too)."""

    def __init__(self, n_conditions: int, channels: tuple[int, int, int, int], outputs: int = 1):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.trunk = nn.Sequential(
            nn.Conv2d(1 + 2 + n_conditions, c0, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c0, c1, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c1, c2, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c2, c3, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(c3 * 16 + n_conditions, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, outputs),
        )
        self.register_buffer("grid", _coordinates(), persistent=False)

    def forward(self, image: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        if conditions is None:
            conditions = image.new_zeros(len(image), 0)
        h = self.trunk(_with_conditions(image, conditions, self.grid))
        return self.head(torch.cat([h, conditions], dim=1))


def _fit_resolution(visible: np.ndarray, energy: np.ndarray) -> tuple[float, float, float]:
    """(mean, a, b) of r = E_visible/E_inc with var(r)/mean² = a²/E + b², by least squares on
    the variance in ten bins of ln E (a sampling calorimeter's stochastic and constant terms)."""
    ratio = visible / energy
    mean = float(ratio.mean())
    edges = np.quantile(np.log(energy), np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, np.log(energy), side="right") - 1, 0, 9)
    inverse_e = np.array([np.mean(1 / energy[bins == i]) for i in range(10)])
    variance = np.array([np.var(ratio[bins == i] / mean) for i in range(10)])
    (a2, b2), *_ = np.linalg.lstsq(np.column_stack([inverse_e, np.ones(10)]), variance, rcond=None)
    return mean, float(np.sqrt(max(a2, 0.0))), float(np.sqrt(max(b2, 0.0)))


class LHCbWGAN(GenerativeModel):
    """Conditional WGAN-GP for a one-layer cartesian readout of at most 32 × 32 cells."""

    config_class = LHCbWGANConfig

    def __init__(self, config: LHCbWGANConfig):
        super().__init__(config)
        layers = self.detector.readout_layers
        if len(layers) != 1 or not isinstance(layers[0].readout, CartesianBinning):
            raise CaloforgeError(
                f"{self.family} needs a detector with one cartesian readout layer; "
                f"{self.detector.name!r} has {len(layers)} layers"
            )
        self.ny, self.nx = layers[0].readout.shape
        if self.ny > SIZE or self.nx > SIZE:
            raise CaloforgeError(f"{self.family} handles at most {SIZE} x {SIZE} cells")
        if missing := [n for n in AXIS_CONDITIONS if n not in config.conditions]:
            raise CaloforgeError(f"{self.family} needs the conditions {', '.join(missing)}")
        k = len(config.conditions)
        self.generator = Generator(
            config.latent, k, config.generator_channels, (config.logit_bound, config.shift_bound)
        )
        self.profile = LateralProfile((self.ny, self.nx))
        self.critic = Critic(k, config.critic_channels)
        self.regressor = Critic(0, config.critic_channels, outputs=k)
        self._top = (SIZE - self.ny) // 2
        self._left = (SIZE - self.nx) // 2
        self._empty: float | None = None

    @classmethod
    def create(cls, config, showers, energy, conditions) -> LHCbWGAN:
        model = super().create(config, showers, energy, conditions)
        centres = centroids(showers, model.detector)
        fitted = {
            "resolution": _fit_resolution(showers.sum(axis=1), energy.reshape(-1)),
            "axis": fit_axis(centres, conditions, config.conditions),
        }
        model.config = model.config.model_copy(update=fitted)
        # The generator starts from the mean profile on the fitted axis, and learns where
        # each shower strays from the axis and how it differs from the mean.
        keep = np.isfinite(centres).all(axis=1)
        rng = np.random.default_rng(config.seed)
        sample = np.sort(rng.permutation(np.flatnonzero(keep))[:PROFILE_FIT_SHOWERS])
        model.profile.fit(showers[sample], centres[sample], config.profile_fit_steps)
        return model

    @classmethod
    def default_transforms(cls, config: LHCbWGANConfig) -> tuple[Transform, Transform]:
        # Box-Cox (the seed's) of the fractions of the incident energy, which the generator
        # makes (see the module's docstring). One scale for all cells keeps the image's shape;
        # per-condition scales for (p, x).
        shower = Chain(
            [EnergyFraction(), BoxCox(shift=config.boxcox_shift), Standardize(per_feature=False)]
        )
        return shower, Standardize()

    @property
    def latent_dim(self) -> int:
        return self.config.latent

    def _crop(self, image: torch.Tensor) -> torch.Tensor:
        image = image[:, 0, self._top : self._top + self.ny, self._left : self._left + self.nx]
        return image.flatten(1)

    def _pad(self, flat: torch.Tensor) -> torch.Tensor:
        """Flat transformed showers → 1×32×32 images, the margin at the value of an empty cell."""
        if self._empty is None:
            self._empty = self.shower_transform.forward(torch.zeros(1, 1), torch.ones(1, 1)).item()
        image = flat.new_full((len(flat), 1, SIZE, SIZE), self._empty)
        image[:, 0, self._top : self._top + self.ny, self._left : self._left + self.nx] = flat.view(
            -1, self.ny, self.nx
        )
        return image

    def _centre(self, conditions: torch.Tensor) -> torch.Tensor:
        """(N, 2) column and row of the shower's axis from physical conditions."""
        if self.config.axis is None:
            raise CaloforgeError("the model's shower axis was never fitted")
        return axis_centre(conditions, self.config.axis, self.config.conditions)

    def _fractions(
        self, noise: torch.Tensor, conditions: torch.Tensor, physical: torch.Tensor
    ) -> torch.Tensor:
        """(N, cells) fractions of the incident energy from noise and the conditions, both
        transformed and physical.

        The visible fraction follows the calorimeter's resolution fitted on the training data,
        its Gaussian deviate the noise's first component.
        """
        if self.config.resolution is None:
            raise CaloforgeError("the model's energy resolution was never fitted")
        mean, a, b = self.config.resolution
        energy = self.energy_of(physical)
        spread = torch.sqrt(a**2 / energy + b**2)
        visible = mean * (1 + spread * noise[:, :1]).clamp_min(0)
        residual, offset = self.generator(noise, conditions)
        logits = self.profile(self._centre(physical) + offset.to(torch.float64))
        return torch.softmax(logits + self._crop(residual), dim=1) * visible

    def _read_out(self, fractions: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """Cells below the detector's threshold read exactly 0, as in the data."""
        return torch.where(fractions * energy >= self.detector.threshold, fractions, 0.0)

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        # Fractions are showers of a 1 MeV particle: the shower transform as it is takes them.
        physical = self.condition_transform.inverse(conditions)
        energy = self.energy_of(physical)
        fractions = self._fractions(noise, conditions, physical)
        unit = torch.ones_like(energy)
        smooth = self.shower_transform.forward(fractions, unit)
        read = self.shower_transform.forward(self._read_out(fractions, energy), unit)
        # The read-out's values with the smooth showers' gradient (a straight-through
        # estimator, Bengio et al., arXiv:1308.3432): a cell under the threshold still learns
        # whether it should grow, where a hard cut would freeze it at 0 for good.
        return smooth + (read - smooth).detach()

    def decode(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        energy = self.energy_of(conditions)
        c = self.condition_transform.forward(conditions)
        return self._read_out(self._fractions(noise, c, conditions), energy) * energy

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), cfg.lr, cfg.betas),
            "critic": torch.optim.Adam(self.critic.parameters(), cfg.lr, cfg.betas),
            "regressor": torch.optim.Adam(self.regressor.parameters(), cfg.regressor_lr),
        }

    @property
    def batches_per_step(self) -> int:  # type: ignore[override]
        return self.config.n_critic

    def train_step(
        self,
        batches: Sequence[TrainBatch],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        step: int,
    ) -> dict[str, float]:
        self.train()
        if step < self.config.regressor_steps:
            return self._regressor_step(batches[0], optimizers["regressor"])
        return self._gan_step(batches, optimizers, generator)

    def _regressor_step(self, batch: TrainBatch, optimizer) -> dict[str, float]:
        loss = nn.functional.mse_loss(self.regressor(self._pad(batch.showers)), batch.conditions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"regressor_mse": loss.item()}

    def _gan_step(self, batches, optimizers, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        self.regressor.requires_grad_(False)

        def critic_loss(batch, fake):
            real, fake = self._pad(batch.showers), self._pad(fake)
            d_real = self.critic(real, batch.conditions).mean()
            d_fake = self.critic(fake, batch.conditions).mean()
            penalty = gradient_penalty(
                self.critic, real, fake, batch.conditions, generator=generator
            )
            logs = {"wasserstein": (d_real - d_fake).item(), "gradient_penalty": penalty.item()}
            return d_fake - d_real + cfg.gp_lambda * penalty, logs

        def generator_loss(batch, fake):
            fake = self._pad(fake)
            adversarial = -self.critic(fake, batch.conditions).mean()
            regression = nn.functional.mse_loss(self.regressor(fake), batch.conditions)
            logs = {
                "generator_adversarial": adversarial.item(),
                "generator_regression": regression.item(),
            }
            return adversarial + cfg.regressor_weight * regression, logs

        return wgan_step(
            self,
            batches,
            optimizers,
            generator,
            latent=cfg.latent,
            critics=[self.critic],
            critic_loss=critic_loss,
            generator_loss=generator_loss,
        )
