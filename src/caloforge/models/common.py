"""What several model families share: dense layers, WGAN-GP's penalty, the energy-fraction
preprocessing of the dense families.

References:
    | I. Gulrajani et al., "Improved Training of Wasserstein GANs", arXiv:1704.00028.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from caloforge.data.transforms import Chain, EnergyFraction, LogColumns, Standardize, Transform
from caloforge.errors import CaloforgeError
from caloforge.models.base import GenerativeModel, ModelConfig

__all__ = ["FractionModel", "gradient_penalty", "mlp", "require_conditions"]


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *context: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """WGAN-GP's penalty: the mean of (‖∇ₓ critic(x̂, *context)‖ − 1)² at points x̂ drawn
    uniformly on the lines between real and generated samples.

    The gradient is taken with respect to the critic's sample input only, so a critic of the
    total energy is penalised on that one input, not on the cells it was summed from.

    Example:
        >>> critic = lambda x: 3.0 * x.sum(dim=1, keepdim=True)  # gradient norm 3 * sqrt(2)
        >>> g = torch.Generator().manual_seed(0)
        >>> p = gradient_penalty(critic, torch.zeros(4, 2), torch.ones(4, 2), generator=g)
        >>> round(p.item(), 4) == round((3 * 2**0.5 - 1) ** 2, 4)
        True
    """
    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, *context).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def mlp(
    inputs: int, hidden: tuple[int, ...], outputs: int, slope: float = 0.2
) -> torch.nn.Sequential:
    """Dense layers with LeakyReLU between them and none after the last."""
    layers: list[torch.nn.Module] = []
    width = inputs
    for units in hidden:
        layers += [torch.nn.Linear(width, units), torch.nn.LeakyReLU(slope)]
        width = units
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, outputs))


def require_conditions(family: str, conditions: tuple[str, ...], needed: tuple[str, ...]) -> None:
    """Refuse data whose conditions lack what the family is conditioned on."""
    missing = [name for name in needed if name not in conditions]
    if missing:
        raise CaloforgeError(
            f"{family} is conditioned on {', '.join(needed)}; the data's conditions are "
            f"{', '.join(conditions)}"
        )


class FractionModel(GenerativeModel):
    """Base of the dense families conditioned on the energy (the ATLAS GAN and VAE).

    Cells are fractions of the incident energy divided by one scale for all cells (a linear
    map, so sums of cells stay sums); conditions are standardised, the energy as its log. The
    config's ``latent`` is the noise size.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        require_conditions(self.family, config.conditions, ("energy",))

    @classmethod
    def default_transforms(cls, config: ModelConfig) -> tuple[Transform, Transform]:
        return (
            Chain([EnergyFraction(), Standardize(per_feature=False)]),
            Chain([LogColumns([config.conditions.index("energy")]), Standardize()]),
        )

    @property
    def latent_dim(self) -> int:
        return self.config.latent
