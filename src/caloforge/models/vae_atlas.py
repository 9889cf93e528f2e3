"""The ATLAS conditional VAE whose approximate posterior is refined by inverse autoregressive
flow (IAF).

Encoder and decoder are dense networks of 128-unit layers with LeakyReLU, both conditioned on
the photon's energy and η. The encoder gives a diagonal Gaussian q₀(z | x, c) and a context h;
``iaf_steps`` IAF steps then transform its sample, each with a MADE network (``zuko``'s masked
MLP) that sees z autoregressively and h fully:

    [m, s] = MADE(z, h),  σ = sigmoid(s),  z ← σ ⊙ z + (1 − σ) ⊙ m,

the numerically stable form of Kingma et al. (their eq. 11-14), with the order of z reversed
between steps. log q(z | x) is that of q₀ minus Σ log σ over the steps, and the KL term of the
ELBO is estimated from the sample as log q(z | x) − log N(z; 0, 1). A richer posterior lets
the aggregate of q(z | x) over the data come closer to the N(0, 1) the decoder is sampled from
at generation time, which is what the seed used IAF for; ``aggregated_posterior`` gives its
samples so that closeness can be measured with ``iaf_steps=0`` and with IAF.

Preprocessing as ``wgan-gp-atlas``: cells as fractions of the incident energy, one scale for all
cells; conditions log E and η, standardised. The likelihood is Gaussian in that space with a
fixed variance (``reconstruction_sigma``), the usual choice of dense VAEs for calorimeter cells.
Generation decodes z ~ N(0, 1) alone: the encoder and the IAF are not part of ``decode``, nor of
the ONNX export.

References:
    | ATLAS Collaboration, ATL-SOFT-PUB-2018-001 (seed 001 of this project).
    | D. P. Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow",
    | arXiv:1606.04934.
    | M. Germain et al., "MADE: Masked Autoencoder for Distribution Estimation",
    | arXiv:1502.03509.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from zuko.nn import MaskedMLP

from caloforge.models.base import ModelConfig, TrainBatch
from caloforge.models.common import FractionModel, mlp, shard_randn

__all__ = ["ATLASVAE", "ATLASVAEConfig"]

_LOG_2PI = math.log(2 * math.pi)


class ATLASVAEConfig(ModelConfig):
    family: Literal["vae-atlas"] = "vae-atlas"
    latent: int = Field(default=10, gt=0)
    hidden: tuple[int, ...] = (128, 128, 128)
    iaf_steps: int = Field(default=4, ge=0, description="IAF steps after the Gaussian encoder")
    iaf_hidden: tuple[int, ...] = (64, 64)
    context: int = Field(default=16, gt=0, description="size of the encoder's context h")
    kl_weight: float = Field(default=1.0, ge=0)
    reconstruction_sigma: float = Field(default=0.1, gt=0)
    lr: float = Field(default=1e-3, gt=0)


class _IAFStep(nn.Module):
    """One IAF step: z ← σ ⊙ z + (1 − σ) ⊙ m with [m, s] = MADE(z, h)."""

    def __init__(self, latent: int, context: int, hidden: tuple[int, ...]):
        super().__init__()
        order = torch.arange(latent)
        # Output i (for m_i and for s_i) sees z_j for j < i, and all of h.
        on_z = order[:, None] > order[None, :]
        adjacency = torch.cat([on_z, torch.ones(latent, context, dtype=torch.bool)], dim=1)
        self.made = MaskedMLP(torch.cat([adjacency, adjacency]), hidden, activation=nn.ELU)
        self.latent = latent

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self.made(torch.cat([z, h], dim=1)).split(self.latent, dim=1)
        gate = torch.sigmoid(s + 1.5)  # starts near the identity, as Kingma et al. advise
        return gate * z + (1 - gate) * m, torch.log(gate).sum(dim=1)


class ATLASVAE(FractionModel):
    """Conditional VAE with an IAF posterior on the atlas-like cells."""

    family = "vae-atlas"
    config_class = ATLASVAEConfig

    def __init__(self, config: ATLASVAEConfig):
        super().__init__(config)
        n_cells, n_cond, d = self.detector.n_cells, len(config.conditions), config.latent
        self.encoder = mlp(n_cells + n_cond, config.hidden, 2 * d + config.context)
        self.decoder = mlp(d + n_cond, config.hidden, n_cells)
        self.iaf = nn.ModuleList(
            _IAFStep(d, config.context, config.iaf_hidden) for _ in range(config.iaf_steps)
        )

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([noise, conditions], dim=1))

    def posterior(
        self, showers: torch.Tensor, conditions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sample z of q(z | x, c) and its log-density, for transformed inputs."""
        d = self.config.latent
        out = self.encoder(torch.cat([showers, conditions], dim=1))
        mean, log_sigma, h = out[:, :d], out[:, d : 2 * d].clamp(-8, 8), out[:, 2 * d :]
        eps = shard_randn(tuple(mean.shape), generator)
        z = mean + torch.exp(log_sigma) * eps
        log_q = -0.5 * (eps**2 + _LOG_2PI).sum(dim=1) - log_sigma.sum(dim=1)
        for step in self.iaf:
            z, log_gate = step(z, h)
            log_q = log_q - log_gate
            z = z.flip(1)
        return z, log_q

    @torch.no_grad()
    def aggregated_posterior(self, batch: TrainBatch, generator: torch.Generator) -> torch.Tensor:
        """One z ~ q(z | x, c) per shower of ``batch``: samples of the aggregated posterior,
        which should be N(0, 1) in every dimension for the decoder to see at generation time
        what it was trained on."""
        self.eval()
        return self.posterior(batch.showers, batch.conditions, generator)[0]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": torch.optim.Adam(self.parameters(), self.config.lr)}

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
        z, log_q = self.posterior(batch.showers, batch.conditions, generator)
        log_p = -0.5 * (z**2 + _LOG_2PI).sum(dim=1)
        kl = (log_q - log_p).mean()
        residual = self.generate_transformed(z, batch.conditions) - batch.showers
        reconstruction = 0.5 * (residual / cfg.reconstruction_sigma).pow(2).sum(dim=1).mean()
        loss = reconstruction + cfg.kl_weight * kl
        optimizers["vae"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["vae"].step()
        return {"reconstruction": reconstruction.item(), "kl": kl.item(), "loss": loss.item()}
