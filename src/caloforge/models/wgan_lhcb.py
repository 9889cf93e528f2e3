"""The LHCb conditional WGAN-GP with a pretrained regressor.

Generator: noise (512) and the particle's (px, py, pz, x, y) → dense → 256×4×4 → transposed
convolutions to 128×8×8, 64×16×16, 32×32×32 (ReLU) → one channel, cropped to the detector's
ny × nx image. Critic: the reverse, with LeakyReLU, the conditions joined after the convolutions.
Training: Wasserstein loss with gradient penalty (λ = 10) and ``n_critic`` = 5 critic updates
per generator update, Adam with the learning rate and betas (0, 0.9) of Gulrajani et al.; the
critic sees cell energies as fractions of the incident energy, Box-Cox transformed then
standardised with one scale for all cells.

One departure from the seed, for training in hours on a CPU rather than days on a GPU: the
generator's image is a softmax over the cells (the shower's shape) times a visible energy
fraction drawn by a second head around the training data's mean, so a shower's total energy is
in scale from the first step and the networks spend their updates on shape and fluctuations.
With the seed's raw output and 2000 generator updates, E_tot/E_inc came out wrong by factors.

Conditioning goes through a regressor with the critic's convolutional trunk, pretrained for the
first ``regressor_steps`` steps to predict the conditions from real showers and then frozen. The
generator's loss adds the regressor's error on generated showers, weighted by
``regressor_weight``: an error measured through a fixed trained network, the perceptual-loss idea
of Johnson et al. (arXiv:1603.08155), here in the space of the physics parameters.

References:
    | V. Chekalina et al., "Generative Models for Fast Calorimeter Simulation: the LHCb case",
    | EPJ Web Conf. 214 (2019) 02034, arXiv:1812.01319.
    | I. Gulrajani et al., "Improved Training of Wasserstein GANs", arXiv:1704.00028.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from caloforge.data.transforms import BoxCox, Chain, EnergyFraction, Standardize, Transform
from caloforge.detectors import CartesianBinning
from caloforge.errors import CaloforgeError
from caloforge.models.base import GenerativeModel, ModelConfig, TrainBatch

__all__ = ["LHCbWGAN", "LHCbWGANConfig"]

SIZE = 32
"""Side of the square image the networks work on; the detector image is cropped from it."""


class LHCbWGANConfig(ModelConfig):
    family: Literal["wgan-gp-lhcb"] = "wgan-gp-lhcb"
    latent: int = Field(default=512, gt=0)
    generator_channels: tuple[int, int, int, int] = (256, 128, 64, 32)
    critic_channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    gp_lambda: float = Field(default=10.0, ge=0)
    n_critic: int = Field(default=5, gt=0)
    lr: float = Field(default=1e-4, gt=0)
    betas: tuple[float, float] = (0.0, 0.9)
    regressor_steps: int = Field(default=1000, ge=0)
    regressor_lr: float = Field(default=1e-3, gt=0)
    regressor_weight: float = Field(default=1.0, ge=0)
    boxcox_shift: float = Field(
        default=1e-6, gt=0, description="energy fraction added before Box-Cox (0.01 MeV at 10 GeV)"
    )
    visible_fraction: tuple[float, float] | None = Field(
        default=None, description="mean and std of E_visible/E_inc in the training data (fitted)"
    )


def _trunk(channels: tuple[int, int, int, int]) -> nn.Sequential:
    """1×32×32 → c3×4×4: the critic's and the regressor's convolutions."""
    c0, c1, c2, c3 = channels
    return nn.Sequential(
        nn.Conv2d(1, c0, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(c0, c1, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(c1, c2, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(c2, c3, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    )


class Generator(nn.Module):
    def __init__(self, latent: int, n_conditions: int, channels: tuple[int, int, int, int]):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.dense = nn.Linear(latent + n_conditions, c0 * 16)
        self.fraction = nn.Sequential(nn.ReLU(), nn.Linear(c0 * 16, 1))
        nn.init.zeros_(self.fraction[1].weight)  # start at the mean visible fraction
        nn.init.zeros_(self.fraction[1].bias)
        self.c0 = c0
        self.up = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(c0, c1, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, c2, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c3, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(c3, 1, 3, 1, 1),
        )

    def forward(
        self, noise: torch.Tensor, conditions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1×32×32 logits of the shower's shape, (N, 1) visible-fraction deviation)."""
        h = self.dense(torch.cat([noise, conditions], dim=1))
        return self.up(h.view(-1, self.c0, 4, 4)), self.fraction(h)


class Critic(nn.Module):
    def __init__(self, n_conditions: int, channels: tuple[int, int, int, int], outputs: int = 1):
        super().__init__()
        self.trunk = _trunk(channels)
        self.head = nn.Sequential(
            nn.Linear(channels[3] * 16 + n_conditions, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, outputs),
        )

    def forward(self, image: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(image)
        if conditions is not None:
            h = torch.cat([h, conditions], dim=1)
        return self.head(h)


class LHCbWGAN(GenerativeModel):
    """Conditional WGAN-GP for a one-layer cartesian readout of at most 32 × 32 cells."""

    family = "wgan-gp-lhcb"
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
        k = len(config.conditions)
        self.generator = Generator(config.latent, k, config.generator_channels)
        self.critic = Critic(k, config.critic_channels)
        self.regressor = Critic(0, config.critic_channels, outputs=k)
        self._top = (SIZE - self.ny) // 2
        self._left = (SIZE - self.nx) // 2
        self._empty: float | None = None

    @classmethod
    def create(cls, config, showers, energy, conditions) -> LHCbWGAN:
        ratio = showers.sum(axis=1) / energy.reshape(-1)
        fraction = (float(ratio.mean()), float(ratio.std()))
        return super().create(
            config.model_copy(update={"visible_fraction": fraction}), showers, energy, conditions
        )

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
        image = torch.full((len(flat), 1, SIZE, SIZE), self._empty, dtype=flat.dtype)
        image[:, 0, self._top : self._top + self.ny, self._left : self._left + self.nx] = flat.view(
            -1, self.ny, self.nx
        )
        return image

    def _fractions(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(N, cells) fractions of the incident energy from noise and transformed conditions."""
        if self.config.visible_fraction is None:
            raise CaloforgeError("the model's visible fraction was never fitted")
        mean, std = self.config.visible_fraction
        logits, deviation = self.generator(noise, conditions)
        shape = torch.softmax(self._crop(logits), dim=1)
        return shape * (mean * torch.exp(deviation * (std / mean)))

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        # Fractions are showers of a 1 MeV particle: the shower transform as it is takes them.
        fractions = self._fractions(noise, conditions)
        return self.shower_transform.forward(fractions, torch.ones(len(fractions), 1))

    def decode(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        c = self.condition_transform.forward(conditions)
        return self._fractions(noise, c) * self.energy_of(conditions)

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
        for batch in batches:
            real = self._pad(batch.showers)
            noise = torch.randn(len(batch), cfg.latent, generator=generator)
            with torch.no_grad():
                fake = self._pad(self.generate_transformed(noise, batch.conditions))
            d_real = self.critic(real, batch.conditions).mean()
            d_fake = self.critic(fake, batch.conditions).mean()
            eps = torch.rand(len(batch), 1, 1, 1, generator=generator)
            mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
            score = self.critic(mixed, batch.conditions)
            (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            critic_loss = d_fake - d_real + cfg.gp_lambda * penalty
            optimizers["critic"].zero_grad(set_to_none=True)
            critic_loss.backward()
            optimizers["critic"].step()
        batch = batches[-1]
        self.critic.requires_grad_(False)
        noise = torch.randn(len(batch), cfg.latent, generator=generator)
        fake = self._pad(self.generate_transformed(noise, batch.conditions))
        adversarial = -self.critic(fake, batch.conditions).mean()
        regression = nn.functional.mse_loss(self.regressor(fake), batch.conditions)
        generator_loss = adversarial + cfg.regressor_weight * regression
        optimizers["generator"].zero_grad(set_to_none=True)
        generator_loss.backward()
        optimizers["generator"].step()
        self.critic.requires_grad_(True)
        return {
            "wasserstein": (d_real - d_fake).item(),
            "gradient_penalty": penalty.item(),
            "generator_adversarial": adversarial.item(),
            "generator_regression": regression.item(),
        }
