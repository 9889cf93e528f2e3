"""The NYU study's location-aware GAN on the LCD ECAL cropped to 5 × 5 × 25 (seed 003).

LAGAN (de Oliveira et al., arXiv:1701.05927) uses locally-connected layers, a filter for every
position, because a calorimeter image is not translation invariant. The seed cuts each layer to
the 5 × 5 cells about the axis, unrolled: a 25 × 25 image (``crop`` 5). As in the seed:

- Generator: noise (256) merged with the conditions as in the MLP WGAN (``ConditionedNoise``),
  a dense layer, reshaped to ``channels[0]`` maps of a quarter of the image's size; a 5 × 5
  convolution; 2× upsampling; a 5 × 5 locally-connected layer; 2× upsampling; a 3 × 3
  locally-connected layer to one map with a ReLU; cut to the image (28 → 25). LeakyReLU between.
  The ReLU acts on the pixels' energies (0 is an empty pixel) before the standardisation's shift.
- Critic: a convolution of 32 5 × 5 filters, a 5 × 5 locally-connected layer with stride 2 and a
  3 × 3 one, LeakyReLU, 2 × 2 average pooling, flattened, the conditions concatenated, one dense
  output. The seed dropped the original's third locally-connected layer, its minibatch
  discrimination and its auxiliary particle classifier (not a Wasserstein output), and gives
  the conditions to the critic; so does this.

With the defaults the generator has 0.9 M parameters and the critic 0.8 M, the seed's 858 429
and 855 067 within 10 %. Training: ``ClippedWGAN`` (weight clipping, RMSprop 5e-5, batch 64).
The pretrained ``lcd-ecal-lagan`` is measured in its model card
(``pretrained/lcd-ecal-lagan/README.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from caloforge.data.transforms import Standardize
from caloforge.models.common import LocallyConnected2d
from caloforge.models.lcd import ClippedWGAN, ClippedWGANConfig

__all__ = ["LAGAN", "LAGANConfig"]


class LAGANConfig(ClippedWGANConfig):
    family: Literal["lagan-lcd"] = "lagan-lcd"
    latent: int = Field(default=256, gt=0, description="size of the noise vector")
    crop: int = Field(default=5, description="side of the window each layer is cut to")
    channels: tuple[int, int, int] = Field(
        default=(16, 16, 8),
        description="maps of the dense layer's output, of the convolution, of the first "
        "locally-connected layer",
    )
    critic_channels: tuple[int, int, int] = Field(
        default=(32, 8, 8), description="maps of the critic's convolution and two LC layers"
    )


class LAGAN(ClippedWGAN):
    """Locally-connected generator and critic on the 25 × 25 unrolled image."""

    config_class = LAGANConfig

    def __init__(self, config: LAGANConfig):
        super().__init__(config)
        self.generator = _Generator(config.latent, self.image_shape, config.channels)
        n_conditions = len(config.conditions) - 1 + len(config.particles)
        self.critic = _Critic(self.image_shape, n_conditions, config.critic_channels)

    @property
    def _scaling(self) -> Standardize:
        return self.shower_transform.steps[1]

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        energies = super().generate_transformed(noise, conditions)
        zero = self._scaling.forward(energies.new_zeros(1, 1))
        return energies + zero


class _Generator(nn.Module):
    """Merged noise → (N, pixels) ≥ 0, in the pixels' scaled energies (before the shift)."""

    def __init__(self, latent: int, image: tuple[int, int], channels: tuple[int, int, int]):
        super().__init__()
        self.image = image
        c0, c1, c2 = channels
        self.start = (c0, -(-image[0] // 4), -(-image[1] // 4))
        size = (2 * self.start[1], 2 * self.start[2])
        lc1 = LocallyConnected2d(c1, c2, size, 5, padding=2)
        size = (2 * size[0], 2 * size[1])
        lc2 = LocallyConnected2d(c2, 1, size, 3, padding=1)
        self.dense = nn.Linear(latent, c0 * self.start[1] * self.start[2])
        self.net = nn.Sequential(
            nn.Conv2d(c0, c1, 5, padding=2),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            lc1,
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            lc2,
            nn.ReLU(),
        )

    def forward(self, merged: torch.Tensor) -> torch.Tensor:
        x = self.net(self.dense(merged).reshape(-1, *self.start))
        return x[:, 0, : self.image[0], : self.image[1]].flatten(1)


class _Critic(nn.Module):
    def __init__(self, image: tuple[int, int], n_conditions: int, channels: tuple[int, int, int]):
        super().__init__()
        c0, c1, c2 = channels
        lc1 = LocallyConnected2d(c0, c1, image, 5, stride=2)
        lc2 = LocallyConnected2d(c1, c2, lc1.output_size, 3)
        h, w = (s // 2 for s in lc2.output_size)
        self.features = nn.Sequential(
            nn.Conv2d(1, c0, 5, padding=2),
            nn.LeakyReLU(0.2),
            lc1,
            nn.LeakyReLU(0.2),
            lc2,
            nn.LeakyReLU(0.2),
            nn.AvgPool2d(2),
            nn.Flatten(),
        )
        self.out = nn.Linear(c2 * h * w + n_conditions, 1)

    def forward(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.features(images), conditions], dim=1))
