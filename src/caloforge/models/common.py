"""What several model families share: dense layers, a Wasserstein GAN's training step and
WGAN-GP's penalty, the energy-fraction preprocessing of the dense families, the shower axis of a
one-layer cartesian readout.

References:
    | M. Arjovsky, S. Chintala, L. Bottou, "Wasserstein GAN", arXiv:1701.07875.
    | I. Gulrajani et al., "Improved Training of Wasserstein GANs", arXiv:1704.00028.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from pydantic import Field

from caloforge.data.transforms import Chain, EnergyFraction, LogColumns, Standardize, Transform
from caloforge.errors import CaloforgeError
from caloforge.evaluation.observables import RING_EDGES
from caloforge.models.base import GenerativeModel, ModelConfig
from caloforge.seeds import states

__all__ = [
    "AXIS_CONDITIONS",
    "FractionConfig",
    "FractionModel",
    "LocallyConnected2d",
    "PartBatchNorm3d",
    "axis_centre",
    "centroids",
    "cube_shape",
    "data_parts",
    "dropout",
    "fit_axis",
    "gradient_penalty",
    "mlp",
    "part_layers",
    "partition",
    "require_conditions",
    "seeded_generator",
    "seeded_generators",
    "shard",
    "shard_rand",
    "shard_randn",
    "wgan_step",
]

AXIS_CONDITIONS = ("px", "py", "pz", "x", "y")
"""The conditions that place the shower: momentum and entry point on the calorimeter's face."""


Losses = tuple[torch.Tensor, dict[str, float]]
"""A loss to minimise and what to log of it."""


def wgan_step(
    model: GenerativeModel,
    batches: Sequence,
    optimizers: dict[str, torch.optim.Optimizer],
    generator: torch.Generator,
    *,
    latent: int,
    critics: Sequence[torch.nn.Module],
    critic_loss: Callable[[object, torch.Tensor], Losses],
    generator_loss: Callable[[object, torch.Tensor], Losses],
    after_critic_step: Callable[[], None] | None = None,
    chunk: int | None = None,
) -> dict[str, float]:
    """One step of a Wasserstein GAN (Arjovsky et al.): one critic update per batch against the
    generator's showers for that batch's conditions (no gradient to the generator), then one
    generator update on the last batch's conditions with the critics frozen.

    ``critic_loss(batch, fake)`` and ``generator_loss(batch, fake)`` give each family's losses
    (a gradient penalty, a second critic, a regressor); ``after_critic_step`` runs after each
    critic update (weight clipping). The noise of every update is drawn from ``generator`` for
    the global batch, so data-parallel ranks draw what one process would.

    ``chunk``: the critics see a batch ``chunk`` showers at a time, each chunk's loss weighted by
    its share of the batch and its gradient accumulated, the generator's through one backward
    pass from the accumulated gradient of its showers. The gradients are the whole batch's (to
    rounding) when the losses are means of per-shower terms with no batch statistics; only for
    such losses. It keeps a critic's feature maps small: glibc maps every block over 32 MB afresh
    from the kernel, page by page, on each call, which made a training step of the NYU MLP WGAN
    (32 × 10⁴ features a shower) take 13 times its arithmetic.
    """
    logs: dict[str, float] = {}
    for batch in batches:
        noise = shard_randn((len(batch), latent), generator)
        with torch.no_grad():
            fake = model.generate_transformed(noise, batch.conditions)
        optimizers["critic"].zero_grad(set_to_none=True)
        logs = _backward(critic_loss, batch, fake, chunk)
        optimizers["critic"].step()
        if after_critic_step is not None:
            after_critic_step()
    batch = batches[-1]
    for critic in critics:
        critic.requires_grad_(False)
    try:
        noise = shard_randn((len(batch), latent), generator)
        fake = model.generate_transformed(noise, batch.conditions)
        optimizers["generator"].zero_grad(set_to_none=True)
        if chunk is None or chunk >= len(batch):
            generator_logs = _backward(generator_loss, batch, fake, None)
        else:
            showers = fake.detach().requires_grad_(True)
            generator_logs = _backward(generator_loss, batch, showers, chunk)
            fake.backward(showers.grad)
        optimizers["generator"].step()
    finally:
        for critic in critics:
            critic.requires_grad_(True)
    return logs | generator_logs


def _backward(loss_of, batch, fake: torch.Tensor, chunk: int | None) -> dict[str, float]:
    """Backpropagate ``loss_of(batch, fake)``, ``chunk`` showers at a time (``wgan_step``);
    its logs averaged over the chunks by their sizes."""
    n = len(batch)
    if chunk is None or chunk >= n:
        loss, logs = loss_of(batch, fake)
        loss.backward()
        return logs
    total: dict[str, float] = {}
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        weight = len(fake[rows]) / n
        loss, logs = loss_of(batch[rows], fake[rows])
        (loss * weight).backward()
        for key, value in logs.items():
            total[key] = total.get(key, 0.0) + weight * value
    return total


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *context: torch.Tensor,
    generator: torch.Generator,
    one_sided: bool = False,
) -> torch.Tensor:
    """WGAN-GP's penalty: the mean of (‖∇ₓ critic(x̂, *context)‖ − 1)² at points x̂ drawn
    uniformly on the lines between real and generated samples.

    The gradient is taken with respect to the critic's sample input only, so a critic of the
    total energy is penalised on that one input, not on the cells it was summed from.

    ``one_sided``: the Lipschitz penalty max(0, ‖∇‖ − 1)² of Petzka et al. (arXiv:1709.08894),
    which penalises only slopes above 1. A critic of one input needs it: its slope can change
    sign only by passing through 0, which the two-sided penalty charges λ for, so a critic that
    starts (or is pushed) the wrong way round stays there.

    Example:
        >>> critic = lambda x: 3.0 * x.sum(dim=1, keepdim=True)  # gradient norm 3 * sqrt(2)
        >>> g = torch.Generator().manual_seed(0)
        >>> p = gradient_penalty(critic, torch.zeros(4, 2), torch.ones(4, 2), generator=g)
        >>> round(p.item(), 4) == round((3 * 2**0.5 - 1) ** 2, 4)
        True
    """
    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = shard_rand(shape, generator)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, *context).sum(), mixed, create_graph=True)
    excess = grad.flatten(1).norm(dim=1) - 1
    return (excess.clamp_min(0) if one_sided else excess).pow(2).mean()


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


class LocallyConnected2d(torch.nn.Module):
    """A 2D convolution whose filter differs at every output position (Keras'
    ``LocallyConnected2D``): what the location-aware GAN (arXiv:1701.05927) uses, since a
    calorimeter image is not translation invariant.

    The input's k × k patches are cut with strided slices (one per kernel offset), stacked to
    (positions, batch, in · k · k), and multiplied with each position's own weights in one
    batched matrix product. ``unfold`` would cut the same patches but exports to ONNX as
    Im2Col, which ONNX Runtime lacks; slices and a batched product export anywhere. Weight:
    (positions, in · k · k, out), ordered (kernel row, kernel column, input channel); bias: one
    per output channel and position.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: tuple[int, int],
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        h, w = (size + 2 * padding for size in input_size)
        self.output_size = ((h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1)
        if min(self.output_size) < 1:
            raise CaloforgeError(f"a {kernel_size} x {kernel_size} kernel exceeds {input_size}")
        positions = self.output_size[0] * self.output_size[1]
        fan_in = in_channels * kernel_size**2
        bound = 1 / fan_in**0.5  # PyTorch's default for Conv2d and Linear
        self.weight = torch.nn.Parameter(
            torch.empty(positions, fan_in, out_channels).uniform_(-bound, bound)
        )
        self.bias = torch.nn.Parameter(
            torch.empty(out_channels, *self.output_size).uniform_(-bound, bound)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, (oh, ow) = self.kernel_size, self.stride, self.output_size
        if self.padding:
            x = torch.nn.functional.pad(x, (self.padding,) * 4)
        patches = torch.stack(
            [
                x[:, :, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s]
                for i in range(k)
                for j in range(k)
            ],
            dim=1,
        )  # (N, k·k, C, oh, ow)
        patches = patches.flatten(1, 2).flatten(2).permute(2, 0, 1)  # (oh·ow, N, k·k·C)
        out = torch.bmm(patches, self.weight)  # (oh·ow, N, out)
        return out.permute(1, 2, 0).reshape(-1, self.weight.shape[2], oh, ow) + self.bias


def cube_shape(detector, family: str) -> tuple[int, int, int]:
    """(layers, ny, nx) of a detector of equal cartesian layers, whose showers are 3D images;
    a one-line error naming ``family`` for any other."""
    from caloforge.detectors import CartesianBinning

    layers = detector.readout_layers
    if (
        not all(isinstance(layer.readout, CartesianBinning) for layer in layers)
        or len({layer.readout.shape for layer in layers}) != 1
    ):
        raise CaloforgeError(f"{family} needs a detector of equal cartesian layers (a 3D image)")
    return (len(layers), *layers[0].readout.shape)


def require_conditions(family: str, conditions: tuple[str, ...], needed: tuple[str, ...]) -> None:
    """Refuse data whose conditions lack what the family is conditioned on."""
    missing = [name for name in needed if name not in conditions]
    if missing:
        raise CaloforgeError(
            f"{family} is conditioned on {', '.join(needed)}; the data's conditions are "
            f"{', '.join(conditions)}"
        )


class FractionConfig(ModelConfig):
    """What the dense energy-fraction families (``FractionModel``) share in their config."""

    response: tuple[float, float] | None = Field(
        default=None,
        description="mean and std of E_tot/E_inc in the training data (fitted): the scale of "
        "the total-energy input or term",
    )


class FractionModel(GenerativeModel):
    """Base of the dense families conditioned on the energy (the ATLAS GAN and VAE).

    Cells are fractions of the incident energy, each standardised with its own mean and spread
    in the training data (a linear map, so sums of cells stay sums); conditions are
    standardised, the energy as its log. The config's ``latent`` is the noise size.

    Each cell has its own scale because the layers' cells differ by 10⁴ in typical energy: with
    one scale for all cells, the strips' cells were near 0 for the networks, and the strip
    widths and centres were the worst observables of both families (separation power 0.5–0.8).
    Measured on a development split of atlas-like (7 500 training showers, 2 500 held out,
    10 000 steps): per-cell scales brought the mean separation power over the 42 observables
    from 0.27 to 0.07 for the VAE and from 0.23 to 0.11 for the GAN (energy critic at weight 1).

    ``response_input`` gives each shower's E_tot/E_inc, standardised with the training data's
    mean and spread, differentiably from the transformed cells: the GAN's energy critic judges
    it, the VAE reconstructs it.
    """

    def __init__(self, config: FractionConfig):
        super().__init__(config)
        require_conditions(self.family, config.conditions, ("energy",))

    @classmethod
    def default_transforms(cls, config: ModelConfig) -> tuple[Transform, Transform]:
        return (
            Chain([EnergyFraction(), Standardize()]),
            Chain([LogColumns([config.conditions.index("energy")]), Standardize()]),
        )

    @classmethod
    def create(cls, config, showers, energy, conditions) -> FractionModel:
        response = showers.sum(axis=1) / energy
        config = config.model_copy(update={"response": (response.mean(), response.std())})
        return super().create(config, showers, energy, conditions)

    @property
    def latent_dim(self) -> int:
        return self.config.latent

    @property
    def scaling(self) -> Standardize:
        """The per-cell scale and shift between energy fractions and transformed cells."""
        return self.shower_transform.steps[1]

    def non_negative(self, output: torch.Tensor) -> torch.Tensor:
        """Transformed cells from a network's output read as scaled energy fractions, with a
        ReLU on them (0 is an empty cell) and the standardisation's shift applied after it, so
        that no cell is negative and what trains is what is generated, with no clamp."""
        zero = self.scaling.forward(output.new_zeros(1, output.shape[1]))
        return torch.relu(output) + zero

    def response_input(self, transformed: torch.Tensor) -> torch.Tensor:
        """(N, 1) standardised E_tot/E_inc of transformed showers, differentiable."""
        fractions = self.scaling.inverse(transformed)
        mean, std = self.config.response
        return (fractions.sum(dim=1, keepdim=True) - mean) / std


def centroids(showers: np.ndarray, detector) -> np.ndarray:
    """(N, 2) energy-weighted column and row of each shower on a one-layer cartesian readout,
    in cells from the first cell's centre; NaN for an empty shower."""
    from caloforge.evaluation.observables import centres_and_widths

    readout = detector.readout_layers[0].readout
    ny, nx = readout.shape
    mm = centres_and_widths(showers, detector)
    column = mm["centre_x"][:, 0] / readout.dx + (nx - 1) / 2
    row = mm["centre_y"][:, 0] / readout.dy + (ny - 1) / 2
    empty = showers.sum(axis=1) <= 0
    return np.where(empty[:, None], np.nan, np.column_stack([column, row]))


def partition(
    detector, rings: Sequence[float] = RING_EDGES, *, layer_rings: bool = False
) -> np.ndarray:
    """(n_cells,) the part of every cell, for a model that draws the energy breakdown first
    (``EnergyParts``): the readout layers of a multi-layer detector, or with ``layer_rings``
    the rings within each of them; rings of a one-layer readout. A ring is cut around its
    layer's middle cell (the cell a centred model puts the shower axis in) at the distances
    ``rings`` in that layer's cells (by default the evaluation's rings around the centroid);
    the rings a layer does not reach are dropped.

    Example:
        >>> from caloforge.detectors import load_detector
        >>> np.bincount(partition(load_detector("lhcb-ecal")))  # cells per ring
        array([  1,  24,  84,  84, 707])
        >>> np.bincount(partition(load_detector("atlas-like"), layer_rings=True))
        array([  1,  14,   6,   1,  14,  18,  12, 123,   1,  24,  24,   1,  19,
                 8])
    """
    layers = detector.readout_layers
    if len(layers) > 1 and not layer_rings:
        return detector.cell_layer.copy()
    edges = np.asarray(rings, dtype=np.float64)
    if len(edges) == 0 or (edges <= 0).any() or (np.diff(edges) <= 0).any():
        raise CaloforgeError(f"ring edges must be positive and increasing, not {tuple(rings)}")
    parts = np.concatenate(
        [i * (len(edges) + 1) + _rings(detector, layer, edges) for i, layer in enumerate(layers)]
    )
    return np.searchsorted(np.unique(parts), parts)


def part_layers(detector, parts: np.ndarray) -> np.ndarray:
    """(n_parts,) the readout layer of every part of ``partition``'s ``parts``."""
    return detector.cell_layer[np.unique(parts, return_index=True)[1]]


def _rings(detector, layer, edges: np.ndarray) -> np.ndarray:
    """The ring of each of a layer's cells around its middle cell, cut at ``edges`` cells."""
    from caloforge.detectors import CartesianBinning

    readout = layer.readout
    if not isinstance(readout, CartesianBinning):
        raise CaloforgeError(
            f"no energy parts can be derived for {detector.name}: its readout layer "
            f"{layer.name} is not cartesian (rings need cells in rows and columns)"
        )
    ny, nx = readout.shape
    rows, cols = np.mgrid[:ny, :nx]
    r = np.hypot(cols - (nx - 1) // 2, rows - (ny - 1) // 2).ravel()
    return np.searchsorted(edges, r, side="right")


def _axis_features(conditions, names: Sequence[str]):
    px, py, pz, x, y = (conditions[:, list(names).index(n)] for n in AXIS_CONDITIONS)
    columns = [x * 0 + 1, x, y, px / pz, py / pz]
    if isinstance(conditions, np.ndarray):
        return np.stack(columns, axis=1)
    return torch.stack(columns, dim=1)


def fit_axis(
    centres: np.ndarray, conditions: np.ndarray, names: Sequence[str]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Least-squares fit of the showers' centroids (``centroids``) to (1, x, y, px/pz, py/pz):
    where a straight track would put the shower's centre."""
    features = _axis_features(conditions, names)
    keep = np.isfinite(centres).all(axis=1)
    fits = [np.linalg.lstsq(features[keep], c[keep], rcond=None)[0] for c in centres.T]
    return tuple(float(v) for v in fits[0]), tuple(float(v) for v in fits[1])


def axis_centre(
    conditions: torch.Tensor, axis: Sequence[Sequence[float]], names: Sequence[str]
) -> torch.Tensor:
    """(N, 2) column and row of the fitted axis (``fit_axis``) for physical conditions.

    In double precision: a model's profile can be steep, and a centre off by float32's 1e-6 of
    a cell moves its logits by 1e-5, as much as PyTorch and ONNX Runtime may differ.
    """
    features = _axis_features(conditions.to(torch.float64), names)
    return features @ torch.tensor(axis, dtype=torch.float64).T


# Random draws of a training step. Under data-parallel training (caloforge.training.distributed)
# each rank holds its rows of the global batch; drawing for the global batch and keeping those rows
# makes a step's randomness, hence the run, the same whatever the number of processes.

_SHARD: tuple[int, int, int] = (0, 1, 1)  # (this rank's index, ranks, data parts of the run)


@contextlib.contextmanager
def shard(index: int, count: int, parts: int | None = None) -> Iterator[None]:
    """Inside: draws for a batch are those of the global batch's rows owned by rank ``index``,
    and batch statistics are those of each of the run's ``parts`` (default: one per rank)."""
    global _SHARD
    previous, _SHARD = _SHARD, (index, count, parts or count)
    try:
        yield
    finally:
        _SHARD = previous


def data_parts(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This rank's batch ``x`` cut into the run's data parts it holds (``shard``), for a
    statistic of a batch that must not depend on how many processes share it."""
    _, ranks, parts = _SHARD
    local = max(1, parts // ranks)
    return x.chunk(local) if len(x) % local == 0 else (x,)


class PartBatchNorm3d(torch.nn.BatchNorm3d):
    """Batch normalisation by the statistics of each data part of the batch ("ghost" batch
    normalisation, arXiv:1705.08741), so that a training step is the same whatever the number of
    processes sharing the batch.

    In training, each of the batch's data parts (``shard``'s ``parts``; one outside training
    loops) is normalised by its own mean and variance, and the running statistics move by the
    mean of all the run's parts' statistics (one all-reduce of them over the ranks). With one
    part it is ``BatchNorm3d``; in evaluation it is ``BatchNorm3d`` with the running statistics,
    and exports as one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        _, ranks, _ = _SHARD
        groups = data_parts(x)
        dims = (0, 2, 3, 4)
        out = []
        means, variances = [], []
        for g in groups:
            out.append(
                torch.nn.functional.batch_norm(
                    g, None, None, self.weight, self.bias, True, 0.0, self.eps
                )
            )
            means.append(g.detach().mean(dims))
            variances.append(g.detach().var(dims, unbiased=True))
        with torch.no_grad():
            stats = torch.stack([torch.stack(means).sum(0), torch.stack(variances).sum(0)])
            if ranks > 1 and torch.distributed.is_initialized():
                torch.distributed.all_reduce(stats)
            stats /= len(groups) * (ranks if ranks > 1 else 1)
            self.running_mean.lerp_(stats[0], self.momentum)
            self.running_var.lerp_(stats[1], self.momentum)
            self.num_batches_tracked += 1
        return torch.cat(out)


def dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Dropout with its mask drawn from ``generator`` for this rank's rows (``shard_rand``), so
    that a resumed or data-parallel step draws what an uninterrupted one-process step draws;
    the identity without a generator (evaluation) or with ``p`` = 0."""
    if generator is None or p == 0:
        return x
    keep = shard_rand(tuple(x.shape), generator) >= p
    return x * keep / (1 - p)


def rows(n_local: int) -> slice:
    """This rank's rows of a global batch of ``count`` equal local batches."""
    index = _SHARD[0]
    return slice(index * n_local, (index + 1) * n_local)


def _global(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0] * _SHARD[1], *shape[1:])


def shard_randn(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``torch.randn(shape)`` for this rank's rows of the global batch (shape[0] local rows)."""
    if _SHARD[1] == 1:
        return torch.randn(shape, generator=generator, device=generator.device)
    return torch.randn(_global(shape), generator=generator, device=generator.device)[rows(shape[0])]


def shard_rand(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``torch.rand(shape)`` for this rank's rows of the global batch (shape[0] local rows)."""
    if _SHARD[1] == 1:
        return torch.rand(shape, generator=generator, device=generator.device)
    return torch.rand(_global(shape), generator=generator, device=generator.device)[rows(shape[0])]


def seeded_generator(*key: int) -> torch.Generator:
    """A torch generator that is a function of ``key`` alone (seed, stream tag, index): the noise
    of a generation batch, of a hybrid run's event, of a training event's preprocessing."""
    return seeded_generators([key])[0]


def seeded_generators(keys) -> list[torch.Generator]:
    """``seeded_generator(*key)`` for each row of ``keys`` (N, k), its seeds hashed at once."""
    return [torch.Generator().manual_seed(int(s)) for s in states(keys, 1, np.uint64)[:, 0] >> 1]
