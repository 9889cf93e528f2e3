"""The NYU study's MLP WGAN on the spiral-unrolled LCD ECAL (seed 003).

- Generator: noise (200) ⊙ an embedding of the particle ⊙ a dense projection of the energy
  (``ConditionedNoise``), then dense layers to the unrolled image, linear output in the
  standardised pixel space. The seed's has one dense layer, 200 → 400 × 25: its 2 010 800
  parameters are exactly that layer and the two 200-wide embeddings.
- Critic: a 5 × 5 convolution with 32 filters ("same" padding), flattened, the conditions
  concatenated, a dense ReLU layer of 8 units, one output: the seed's 2 560 865 parameters on
  the 400 × 25 image are exactly these widths. The seed does not name the convolution's
  activation; a linear one would make it and the dense layer a single linear map of the image,
  so it is followed by a LeakyReLU.
- Training: WGAN with weight clipping, RMSprop lr 5e-5, batch 64, 5 critic batches per
  generator batch (``ClippedWGAN``); pixels divided by their overall spread about 0, so an
  empty pixel stays 0. The critic sees each batch 16 showers at a time (``chunk``), gradients
  accumulated: the same step, 2.8 times faster on a CPU (``benchmarks/train_step_profile.py``).

The pretrained ``lcd-ecal-wgan-mlp`` is measured in its model card
(``pretrained/lcd-ecal-wgan-mlp/README.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from caloforge.models.common import mlp
from caloforge.models.lcd import ClippedWGAN, ClippedWGANConfig

__all__ = ["MLPWGAN", "MLPWGANConfig"]


class MLPWGANConfig(ClippedWGANConfig):
    family: Literal["wgan-mlp-lcd"] = "wgan-mlp-lcd"
    hidden: tuple[int, ...] = Field(default=(), description="the generator's hidden layers")
    critic_filters: int = Field(
        default=32, gt=0, description="filters of the critic's convolutions"
    )
    critic_units: int = Field(default=8, gt=0, description="the critic's dense ReLU layer")
    chunk: int | None = Field(
        default=16,
        gt=0,
        description="showers the critic sees at a time in training (gradients accumulated; "
        "the same step, less memory): 16 keeps its 20 MB of feature maps in reused memory",
    )


class MLPWGAN(ClippedWGAN):
    """Dense generator, one-convolution critic, on the unrolled image."""

    config_class = MLPWGANConfig

    def __init__(self, config: MLPWGANConfig):
        super().__init__(config)
        self.generator = mlp(config.latent, config.hidden, self.n_pixels)
        self.critic = _Critic(
            self.n_pixels, len(config.conditions) - 1 + len(config.particles), config
        )


class _Critic(nn.Module):
    def __init__(self, n_pixels: int, n_conditions: int, config: MLPWGANConfig):
        super().__init__()
        filters = config.critic_filters
        self.conv = nn.Sequential(nn.Conv2d(1, filters, 5, padding=2), nn.LeakyReLU(0.2))
        self.dense = nn.Sequential(
            nn.Linear(filters * n_pixels + n_conditions, config.critic_units),
            nn.ReLU(),
            nn.Linear(config.critic_units, 1),
        )

    def forward(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        # The first dense layer on [features, conditions] without joining them: a joined copy of
        # the 32 x 400 x 25 features per shower took a tenth of a training step.
        features = self.conv(images).flatten(1)
        first = self.dense[0]
        n = features.shape[1]
        hidden = nn.functional.linear(features, first.weight[:, :n], first.bias)
        hidden = hidden + nn.functional.linear(conditions, first.weight[:, n:])
        return self.dense[1:](hidden)
