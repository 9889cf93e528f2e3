"""The ATLAS conditional VAE whose approximate posterior is refined by inverse autoregressive
flow (IAF).

Encoder and decoder are dense networks of 128-unit layers with LeakyReLU, both conditioned on
the photon's energy and η. The encoder gives a diagonal Gaussian q₀(z | x, c) and a context h;
``iaf_steps`` IAF steps then transform its sample, each with a MADE network (``zuko``'s masked
MLP) that sees z autoregressively and h fully:

    [m, s] = MADE(z, h),  σ = sigmoid(s),  z ← σ ⊙ z + (1 − σ) ⊙ m,

the numerically stable form of Kingma et al. (their eq. 11-14), with the order of z reversed
between steps. log q(z | x) is that of q₀ minus Σ log σ over the steps, and the KL term of the
ELBO is estimated from the sample as log q(z | x) − log p(z | c). A richer posterior lets the
aggregate of q(z | x) over the data come closer to the prior the decoder is sampled from at
generation time, which is what the seed used IAF for; ``aggregated_posterior`` gives its samples
in the prior's noise ε = (z − μ(c)) / σ(c), so that their distance from N(0, 1) can be measured
with ``iaf_steps=0`` and with IAF. Generation draws ε ~ N(0, 1), maps it through the prior and
decodes: the encoder and the IAF are not part of ``decode``, nor of the ONNX export.

Preprocessing as ``wgan-gp-atlas``: cells as fractions of the incident energy, each
standardised on its own; conditions log E and η, standardised. The likelihood is Gaussian in
that space with a fixed variance (``reconstruction_sigma``), the usual choice of dense VAEs for
calorimeter cells. The decoder's output is linear and clamped at 0 when generating.

Departures from the seed, and why. The seed's form (N(0, 1) prior, the cell likelihood alone)
gave E_tot/E_inc nearly the same spread at every energy, where Geant4's falls with the energy:

- **A conditional prior** (``prior``, default ``conditional``): p(z | c) = N(μ(c), σ(c)) from a
  small dense network of the conditions, as in Sohn et al.'s conditional VAE. With N(0, 1) the
  per-sample KL term pulls each posterior to N(0, 1), but not the posteriors of one energy as a
  group: the encoder, which sees the energy, put the energy-dependent mean of E_tot/E_inc into
  z, so decoding N(0, 1) at one energy mixed in the others' showers.
- **A total-energy term** (``energy_sigma``; None leaves it out): a second Gaussian term
  reconstructs E_tot/E_inc, standardised as the GAN's energy critic sees it: the cell term
  alone hardly weighs the sum of 266 cells.
- **A learning rate that halves** every ``lr_half_life`` steps, smoothly (lr · 0.5^(step / half
  life)): at a fixed rate the total-energy term swung by an order of magnitude from one step to
  the next. A run extended with ``--resume --steps`` goes on at the decayed rate.

The logged ``loss`` is the negative ELBO plus the total-energy term. The clamp at 0 of generated
cells removes negative energy that the training counted; the GAN's ReLU on the fractions
(``non_negative``) would avoid it, but in the VAE it left the strips' small cells dead.

What each departure was measured to change, on a development split of the atlas-like data, is in
the model card of the pretrained ``atlas-like-vae`` (``pretrained/atlas-like-vae/README.md``).

References:
    | ATLAS Collaboration, ATL-SOFT-PUB-2018-001 (seed 001 of this project).
    | D. P. Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow",
    | arXiv:1606.04934.
    | M. Germain et al., "MADE: Masked Autoencoder for Distribution Estimation",
    | arXiv:1502.03509.
    | K. Sohn et al., "Learning Structured Output Representation using Deep Conditional
    | Generative Models", NeurIPS 2015.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn
from zuko.nn import MaskedMLP

from caloforge.models.base import TrainBatch
from caloforge.models.common import FractionConfig, FractionModel, mlp, shard_randn

__all__ = ["ATLASVAE", "ATLASVAEConfig"]

_LOG_2PI = math.log(2 * math.pi)


class ATLASVAEConfig(FractionConfig):
    older_files: ClassVar[dict[str, Any]] = {
        "prior": "standard",
        "energy_sigma": None,
        "lr_half_life": None,
    }

    family: Literal["vae-atlas"] = "vae-atlas"
    latent: int = Field(default=10, gt=0, description="size of the latent space")
    hidden: tuple[int, ...] = Field(
        default=(128, 128, 128), description="widths of the encoder's and decoder's hidden layers"
    )
    iaf_steps: int = Field(default=4, ge=0, description="IAF steps after the Gaussian encoder")
    iaf_hidden: tuple[int, ...] = Field(
        default=(64, 64), description="widths of each inverse-autoregressive step's network"
    )
    context: int = Field(default=16, gt=0, description="size of the encoder's context h")
    kl_weight: float = Field(default=1.0, ge=0, description="weight of the KL term in the loss")
    reconstruction_sigma: float = Field(
        default=0.1, gt=0, description="width of the Gaussian likelihood of the reconstruction"
    )
    energy_sigma: float | None = Field(
        default=0.1, gt=0, description="width of the E_tot/E_inc term (None: no such term)"
    )
    prior: Literal["conditional", "standard"] = Field(
        default="conditional", description="p(z | c) learned from the conditions, or N(0, 1)"
    )
    prior_hidden: tuple[int, ...] = Field(
        default=(64,), description="widths of the conditional prior's hidden layers"
    )
    lr: float = Field(default=1e-3, gt=0, description="Adam's learning rate")
    lr_half_life: int | None = Field(
        default=2500, gt=0, description="steps over which the learning rate halves (None: fixed)"
    )


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

    config_class = ATLASVAEConfig

    def __init__(self, config: ATLASVAEConfig):
        super().__init__(config)
        n_cells, n_cond, d = self.detector.n_cells, len(config.conditions), config.latent
        self.encoder = mlp(n_cells + n_cond, config.hidden, 2 * d + config.context)
        self.decoder = mlp(d + n_cond, config.hidden, n_cells)
        self.iaf = nn.ModuleList(
            _IAFStep(d, config.context, config.iaf_hidden) for _ in range(config.iaf_steps)
        )
        self.prior = None
        if config.prior == "conditional":
            self.prior = mlp(n_cond, config.prior_hidden, 2 * d)
            nn.init.zeros_(self.prior[-1].weight)  # starts as N(0, 1)
            nn.init.zeros_(self.prior[-1].bias)

    def prior_parameters(self, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log σ (N, latent) of p(z | c) for transformed conditions."""
        if self.prior is None:
            zero = conditions.new_zeros(len(conditions), self.config.latent)
            return zero, zero
        mean, log_sigma = self.prior(conditions).chunk(2, dim=1)
        return mean, log_sigma.clamp(-8, 8)

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        mean, log_sigma = self.prior_parameters(conditions)
        return self._decode(mean + torch.exp(log_sigma) * noise, conditions)

    def _decode(self, z: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, conditions], dim=1))

    def posterior(
        self, showers: torch.Tensor, conditions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sample z of q(z | x, c) and its log-density, for transformed inputs."""
        d = self.config.latent
        out = self.encoder(torch.cat([showers, conditions], dim=1))
        mean, log_sigma, h = out[:, :d], out[:, d : 2 * d].clamp(-8, 8), out[:, 2 * d :]
        eps = shard_randn(tuple(mean.shape), generator)
        z = mean + torch.exp(log_sigma) * eps
        log_q = _log_normal(eps) - log_sigma.sum(dim=1)
        for step in self.iaf:
            z, log_gate = step(z, h)
            log_q = log_q - log_gate
            z = z.flip(1)
        return z, log_q

    @torch.no_grad()
    def aggregated_posterior(self, batch: TrainBatch, generator: torch.Generator) -> torch.Tensor:
        """One z ~ q(z | x, c) per shower of ``batch``, standardised by the prior p(z | c):
        samples of the aggregated posterior in the prior's noise ε, which should be N(0, 1) in
        every dimension for the decoder to see at generation time what it was trained on."""
        self.eval()
        z = self.posterior(batch.showers, batch.conditions, generator)[0]
        return self._prior_noise(z, batch.conditions)[0]

    def prior_log_prob(self, z: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(N,) log p(z | c) for transformed conditions."""
        eps, log_sigma = self._prior_noise(z, conditions)
        return _log_normal(eps) - log_sigma.sum(dim=1)

    def _prior_noise(self, z, conditions) -> tuple[torch.Tensor, torch.Tensor]:
        """ε = (z − μ(c)) / σ(c), and log σ(c)."""
        mean, log_sigma = self.prior_parameters(conditions)
        return (z - mean) * torch.exp(-log_sigma), log_sigma

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
        kl = (log_q - self.prior_log_prob(z, batch.conditions)).mean()
        decoded = self._decode(z, batch.conditions)
        residual = decoded - batch.showers
        reconstruction = 0.5 * (residual / cfg.reconstruction_sigma).pow(2).sum(dim=1).mean()
        loss = reconstruction + cfg.kl_weight * kl
        logs = {"reconstruction": reconstruction.item(), "kl": kl.item()}
        if cfg.energy_sigma is not None:
            miss = self.response_input(decoded) - self.response_input(batch.showers)
            energy = 0.5 * (miss / cfg.energy_sigma).pow(2).mean()
            loss = loss + energy
            logs["reconstruction_energy"] = energy.item()
        optimizer = optimizers["vae"]
        if cfg.lr_half_life is not None:  # a function of the step alone: resumes exactly
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * 0.5 ** (step / cfg.lr_half_life)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return logs | {"loss": loss.item()}


def _log_normal(eps: torch.Tensor) -> torch.Tensor:
    """(N,) log N(ε; 0, 1) summed over the latent dimensions."""
    return -0.5 * (eps**2 + _LOG_2PI).sum(dim=1)
