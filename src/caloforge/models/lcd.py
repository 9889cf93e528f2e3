"""What the NYU study's families on the LCD ECAL share (seed 003): their conditions, their
spiral-unrolled showers, and the WGAN with weight clipping that trains its two GANs.

Conditions: the particle's PDG code (γ 22, π⁰ 111) and its energy. The network sees the energy
as its standardised log and the particle as one indicator per known code (``OneHot``), so an
embedding of the particle is a linear layer. The codes a model knows are those of its training
data (``particles``).

Showers: every layer's cells in a ``crop`` × ``crop`` window read along a spiral from the centre
outward, the first ``keep`` of them (``SpiralUnroll``): an image of layers × keep pixels, the
dense core on the left. The seed crops the 25 × 25 × 25 cube to 20 × 20 × 25 (400 × 25; its data
were empty in the last five rows and columns, ours are centred) and cuts the image to 100 or 25
positions for its larger networks. The crop and the cut are in the model's config.

References:
    | M. Guthrie, M. Malkin, B. Pine, "Generative models for high energy physics calorimeters"
    | (NYU, 2017; seed 003 of this project).
    | M. Arjovsky, S. Chintala, L. Bottou, "Wasserstein GAN", arXiv:1701.07875.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field

from caloforge.data.transforms import (
    Chain,
    LogColumns,
    OneHot,
    SpiralUnroll,
    Standardize,
    Transform,
)
from caloforge.errors import CaloforgeError
from caloforge.models.base import GenerativeModel, ModelConfig, TrainBatch
from caloforge.models.common import cube_shape, require_conditions, wgan_step

__all__ = ["CONDITIONS", "ClippedWGAN", "ClippedWGANConfig", "LCDConfig", "LCDModel", "unroll"]

CONDITIONS = ("particle", "energy")


class LCDConfig(ModelConfig):
    particles: tuple[int, ...] = Field(
        default=(22, 111), description="the PDG codes the model knows (its training data's)"
    )
    crop: int = Field(default=20, gt=0, description="side of the window each layer is cut to")
    keep: int | None = Field(
        default=None, gt=0, description="spiral positions kept per layer (None: crop²)"
    )
    slices: int | None = Field(
        default=None, gt=0, description="leading layers modelled, the rest 0 (None: all)"
    )


class LCDModel(GenerativeModel):
    """Base of the NYU families: spiral-unrolled showers, particle and energy conditions.

    Subclasses give the pixels' own transform (``pixel_transform``), applied after the
    unrolling.
    """

    def __init__(self, config: LCDConfig):
        super().__init__(config)
        require_conditions(self.family, config.conditions, CONDITIONS)
        self.image_shape = unroll(config).image_shape
        self.n_pixels = self.image_shape[0] * self.image_shape[1]

    @classmethod
    @abstractmethod
    def pixel_transform(cls, config: LCDConfig) -> Transform:
        """The transform of the unrolled pixels (MeV) into the network's space."""

    @classmethod
    def create(cls, config, showers, energy, conditions) -> LCDModel:
        codes = np.unique(conditions[:, config.conditions.index("particle")])
        config = config.model_copy(update={"particles": tuple(int(c) for c in codes)})
        return super().create(config, showers, energy, conditions)

    @classmethod
    def default_transforms(cls, config: LCDConfig) -> tuple[Transform, Transform]:
        names = config.conditions
        others = [n for n in names if n != "particle"]
        conditions = Chain(
            [
                OneHot(names.index("particle"), list(config.particles)),
                LogColumns([others.index("energy")]),
                Standardize(),
            ]
        )
        return Chain([unroll(config), cls.pixel_transform(config)]), conditions

    def check_conditions(self, conditions: np.ndarray) -> None:
        codes = np.unique(conditions[:, self.config.conditions.index("particle")])
        unknown = sorted(set(codes.astype(int).tolist()) - set(self.config.particles))
        if unknown:
            known = ", ".join(map(str, self.config.particles))
            raise CaloforgeError(
                f"{self.config.name or self.family} was trained on particles {known} (PDG), "
                f"not {', '.join(map(str, unknown))}"
            )

    def split(self, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformed conditions → (the continuous ones, the particle's indicators)."""
        m = len(self.config.particles)
        return conditions[:, :-m], conditions[:, -m:]

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """Flat transformed showers (N, pixels) → images (N, 1, layers, keep)."""
        return x.reshape(len(x), 1, *self.image_shape)


def unroll(config: LCDConfig) -> SpiralUnroll:
    """The spiral unrolling a config asks for, on its detector."""
    from caloforge.detectors import detector_from_yaml

    shape = cube_shape(detector_from_yaml(config.detector), config.family)
    return SpiralUnroll(list(shape), config.crop, config.keep, config.slices)


class ConditionedNoise(torch.nn.Module):
    """The seed's merge of noise and conditions: noise ⊙ an embedding of the particle ⊙ a dense
    projection of the energy, each as wide as the noise."""

    def __init__(self, latent: int, n_continuous: int, n_particles: int):
        super().__init__()
        self.particle = torch.nn.Linear(n_particles, latent)
        self.energy = torch.nn.Linear(n_continuous, latent)

    def forward(
        self, noise: torch.Tensor, continuous: torch.Tensor, particle: torch.Tensor
    ) -> torch.Tensor:
        return noise * self.particle(particle) * self.energy(continuous)


class ClippedWGANConfig(LCDConfig):
    latent: int = Field(default=200, gt=0, description="size of the noise vector")
    lr: float = Field(default=5e-5, gt=0, description="RMSprop's learning rate")
    n_critic: int = Field(default=5, gt=0, description="critic batches per generator batch")
    clip: float = Field(default=0.01, gt=0, description="the critic's weights are kept in ±clip")
    chunk: int | None = Field(
        default=None,
        gt=0,
        description="showers the critic sees at a time in training (gradients accumulated; "
        "the same step, less memory): None, the whole batch",
    )


class ClippedWGAN(LCDModel):
    """The seed's GAN training: a Wasserstein GAN whose critic's weights are clipped to
    ±``clip`` after every update (Arjovsky et al.), RMSprop, ``n_critic`` critic batches per
    generator batch. Pixels are divided by their overall standard deviation about 0, as in the
    seed: an empty pixel stays 0 and a negative output is an empty pixel. (Subtracting the mean
    too, as the first trained models did, made 0 the mean pixel: they filled every pixel.)

    Subclasses build ``generator`` (merged noise → flat transformed showers) and ``critic``
    (images, conditions → scores).
    """

    generator: torch.nn.Module
    critic: torch.nn.Module

    def __init__(self, config: ClippedWGANConfig):
        super().__init__(config)
        n_particles = len(config.particles)
        self.merge = ConditionedNoise(config.latent, len(config.conditions) - 1, n_particles)

    @classmethod
    def pixel_transform(cls, config: LCDConfig) -> Transform:
        return Standardize(per_feature=False, center=False)

    @property
    def latent_dim(self) -> int:
        return self.config.latent

    @property
    def batches_per_step(self) -> int:  # type: ignore[override]
        return self.config.n_critic

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.generator(self.merge(noise, *self.split(conditions)))

    def score(self, x: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """The critic's score of flat transformed showers."""
        return self.critic(self.image(x), conditions)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.lr
        generator = list(self.generator.parameters()) + list(self.merge.parameters())
        return {
            "generator": torch.optim.RMSprop(generator, lr),
            "critic": torch.optim.RMSprop(self.critic.parameters(), lr),
        }

    def train_step(
        self,
        batches: Sequence[TrainBatch],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        step: int,
    ) -> dict[str, float]:
        self.train()

        def critic_loss(batch, fake):
            distance = (
                self.score(batch.showers, batch.conditions).mean()
                - self.score(fake, batch.conditions).mean()
            )
            return -distance, {"wasserstein": distance.item()}

        def generator_loss(batch, fake):
            loss = -self.score(fake, batch.conditions).mean()
            return loss, {"generator": loss.item()}

        def clip() -> None:
            with torch.no_grad():
                for p in self.critic.parameters():
                    p.clamp_(-self.config.clip, self.config.clip)

        return wgan_step(
            self,
            batches,
            optimizers,
            generator,
            latent=self.config.latent,
            critics=[self.critic],
            critic_loss=critic_loss,
            generator_loss=generator_loss,
            after_critic_step=clip,
            chunk=self.config.chunk,
        )
