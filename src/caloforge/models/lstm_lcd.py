"""The NYU study's slice-by-slice LSTM on the spiral-unrolled LCD ECAL (seed 003), and a
stochastic version that fixes its "mean experiment".

P(X | M, P) = Π_t P(X_t | X_<t, M, P), one layer (slice) at a time along the depth. The input at
step t is the previous slice (400 pixels; zeros at t = 0) with 10-wide embeddings of the
particle, the energy and the slice index; an LSTM of 800 units with a learned initial state;
dropout on its output; a dense head to the slice. Pixels are log-scaled: y = ln(1 + E / E_thr),
E_thr the detector's threshold, so an empty pixel is 0 and every read-out one is at least ln 2.
Training feeds the Geant4 slice in at every step (teacher forcing); generation feeds back its own.

``output``:

- ``l2`` (the seed's): the head predicts y, trained by mean squared error. The seed found that
  this predicts the "mean experiment": single events look like the average and the spread per
  layer is too narrow, since the L2 optimum is the conditional mean.
- ``mixture`` (the default): the head gives, for every pixel, the probability that it is empty
  and a mixture of ``components`` Gaussians in y for its value when it is not, trained by
  likelihood. Generation draws from it, with noise given to ``decode`` (two standard normals per
  pixel: one picks empty or a component through its normal CDF, one draws the value), so the
  network stays deterministic and exportable. What a draw puts below the threshold is read out
  as 0, and no draw goes above the largest pixel of the training data (a Gaussian tail in the
  log of the energy would otherwise make a cell of 10⁸ MeV now and then). Pixels of one slice
  are drawn independently given the past, so the slice's energy fluctuates by the sum of 400
  independent draws, where Geant4's pixels given the past are correlated (energy that goes to
  one cell does not go to its neighbour).
- ``slice-energy``: the mixture, plus each slice's energy drawn first. A second head gives the
  slice's s = ln(1 + E_slice / E_thr) its own zero class and Gaussian mixture, trained by
  likelihood; the pixel head sees s beside the LSTM's output, and the drawn pixels are rescaled
  to sum to E_slice. The slice's fluctuation given the past is then learned as such rather than
  left to independent pixels, as CaloFlow splits the energies per layer from the shape (Krause &
  Shih, arXiv:2106.05285). No drawn slice goes above the largest of the training data
  (``slice_upper``, fitted). The loss is the mean pixel NLL plus the mean slice NLL: the slice
  term weighs as much as all of a slice's pixels together, not as one of them. It is not the
  default: against ``mixture`` its core slices fluctuate more, its early slices are wider and
  γ and π⁰ are less separable.

The measurements of ``l2``, ``mixture`` and ``slice-energy`` are in the model cards of the
pretrained ``lcd-ecal-lstm-l2`` and ``lcd-ecal-lstm`` (``pretrained/NAME/README.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from caloforge.data.transforms import Log1p, Transform
from caloforge.detectors import detector_from_yaml
from caloforge.errors import CaloforgeError
from caloforge.models.base import TrainBatch
from caloforge.models.common import dropout
from caloforge.models.lcd import LCDConfig, LCDModel, unroll

__all__ = ["LSTMConfig", "SliceLSTM"]

MIN_SIGMA = 1e-3
"""Floor of a mixture component's width in y (its log is bounded below)."""


class LSTMConfig(LCDConfig):
    family: Literal["lstm-lcd"] = "lstm-lcd"
    hidden: int = Field(default=800, gt=0, description="width of the LSTM")
    embedding: int = Field(default=10, gt=0, description="width of each condition's embedding")
    dropout: float = Field(
        default=0.2, ge=0, lt=1, description="dropout on the LSTM's output during training"
    )
    output: Literal["mixture", "slice-energy", "l2"] = Field(
        default="mixture",
        description="per-pixel mixture, mixture with a drawn slice energy, or L2 regression",
    )
    components: int = Field(default=2, gt=0, description="Gaussians per pixel and slice energy")
    slice_upper: float | None = Field(
        default=None, description="the largest slice energy (MeV) in training, fitted"
    )
    lr: float = Field(default=1e-3, gt=0, description="Adam's learning rate")


class SliceLSTM(LCDModel):
    """Autoregressive LSTM over the layers of the unrolled shower."""

    config_class = LSTMConfig

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        layers, keep = self.image_shape
        width = config.embedding
        self.particle = nn.Linear(len(config.particles), width)
        self.energy = nn.Linear(len(config.conditions) - 1, width)
        self.slice = nn.Embedding(layers, width)
        self.lstm = nn.LSTM(keep + 3 * width, config.hidden, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(1, 1, config.hidden))
        self.c0 = nn.Parameter(torch.zeros(1, 1, config.hidden))
        per_value = 1 + 3 * config.components  # empty, then the mixture's weights, means, σ
        per_pixel = 1 if config.output == "l2" else per_value
        sliced = config.output == "slice-energy"
        self.head = nn.Linear(config.hidden + sliced, keep * per_pixel)
        if sliced:
            if config.slice_upper is None:
                raise CaloforgeError("output=slice-energy needs slice_upper, fitted by create")
            self.slice_head = nn.Linear(config.hidden, per_value)

    @classmethod
    def create(cls, config, showers, energy, conditions) -> SliceLSTM:
        if config.output == "slice-energy":
            spiral = unroll(config)
            image = spiral.forward(showers).reshape(len(showers), *spiral.image_shape)
            config = config.model_copy(update={"slice_upper": float(image.sum(axis=2).max())})
        return super().create(config, showers, energy, conditions)

    @classmethod
    def pixel_transform(cls, config: LCDConfig) -> Transform:
        return Log1p(detector_from_yaml(config.detector).threshold or 1e-3)

    @property
    def latent_dim(self) -> int:
        output = self.config.output
        pixels = 0 if output == "l2" else 2 * self.n_pixels
        return pixels + (2 * self.image_shape[0] if output == "slice-energy" else 0)

    @property
    def _pixels(self) -> Log1p:
        return self.shower_transform.steps[1]

    def _slice_energy(self, y: torch.Tensor) -> torch.Tensor:
        """Log-scaled pixels (…, keep) → the slice's s = ln(1 + E_slice / E_thr) (…)."""
        return torch.log(1 + (y.exp() - 1).sum(-1))

    def _inputs(self, previous: torch.Tensor, conditions: torch.Tensor, t0: int) -> torch.Tensor:
        """(N, T, keep + 3 · width) LSTM inputs for slices t0 .. t0 + T − 1."""
        # Broadcast against the events' zeros rather than expanded to a batch size, which an
        # exporter would record as a constant.
        none = torch.zeros_like(previous[..., :1])  # (N, T, 1)
        continuous, particle = self.split(conditions)
        fixed = torch.cat([self.particle(particle), self.energy(continuous)], dim=1)
        index = self.slice(torch.arange(t0, t0 + previous.shape[1], device=previous.device))
        return torch.cat([previous, fixed[:, None] + none, index + none], dim=2)

    def _heads(self, h: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """LSTM outputs after dropout (N, T, hidden) and, for ``slice-energy``, the slices' s
        (N, T) → per-pixel parameters (N, T, keep, per pixel)."""
        if s is not None:
            h = torch.cat([h, s[..., None]], dim=-1)
        return self.head(h).reshape(*h.shape[:2], self.image_shape[1], -1)

    def _initial(self, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        none = torch.zeros_like(conditions[None, :, :1])  # (1, N, 1)
        return self.h0 + none, self.c0 + none

    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        layers, keep = self.image_shape
        output = self.config.output
        y_max = self._pixels.y_max
        if output == "slice-energy":  # no drawn slice above the largest in training
            per_slice = noise[:, self.n_pixels * 2 :].reshape(-1, layers, 2)
            s_max = math.log1p(self.config.slice_upper / self._pixels.scale)
        if output != "l2":
            noise = noise[:, : self.n_pixels * 2].reshape(-1, layers, keep, 2)
        state = self._initial(conditions)
        previous = torch.zeros_like(conditions[:, None, :1]).expand(-1, -1, keep)
        slices = []
        for t in range(layers):
            h, state = self._step(self._inputs(previous, conditions, t), state)  # no dropout
            s = None
            if output == "slice-energy":
                s_params = self.slice_head(h[:, 0])
                s = _draw(s_params, per_slice[:, t, 0], per_slice[:, t, 1]).clamp_max(s_max)
                s = s[:, None]
            params = self._heads(h, s)[:, 0]
            if output == "l2":
                y = params[..., 0]
            else:
                # no drawn pixel above the largest the training data had (see Log1p)
                y = _draw(params, noise[:, t, :, 0], noise[:, t, :, 1]).clamp_max(y_max)
            if s is not None:
                y = self._rescale(y, s[:, 0]).clamp_max(y_max)
            previous = y[:, None]
            slices.append(y)
        return torch.stack(slices, dim=1).flatten(1)

    def _step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One step of ``self.lstm`` on inputs (N, 1, in): its equations on its weights, as two
        matrix products. libtorch's fused LSTM (oneDNN's RNN primitive) takes ~6 ms a call at
        batch 1, ten times reading the weights; this is what the exporters see too."""
        lstm = self.lstm
        h, c = state
        gates = F.linear(x[:, 0], lstm.weight_ih_l0, lstm.bias_ih_l0) + F.linear(
            h[0], lstm.weight_hh_l0, lstm.bias_hh_l0
        )
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c[0] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h[:, None], (h[None], c[None])

    def _rescale(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Log-scaled pixels (N, keep) rescaled in energy so that their slice's s is ``s``
        (N); a slice drawn with no pixel stays empty."""
        energy = y.exp() - 1  # in units of E_thr
        total = energy.sum(-1, keepdim=True)
        factor = (s[:, None].exp() - 1) / total.clamp_min(1e-30)
        return torch.log(1 + energy * factor)

    def loss(
        self, batch: TrainBatch, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """A batch's losses: the mean per-pixel squared error (l2) or negative log-likelihood,
        and for ``slice-energy`` the mean per-slice one of the slice energies; the training
        minimises their sum. Dropout's masks come from ``generator`` (the training step's), so
        that a resumed or data-parallel run draws what an uninterrupted one does."""
        n = len(batch)
        layers, keep = self.image_shape
        x = batch.showers.reshape(n, layers, keep)
        previous = torch.cat([x.new_zeros(n, 1, keep), x[:, :-1]], dim=1)
        c = batch.conditions
        out, _ = self.lstm(self._inputs(previous, c, 0), self._initial(c))
        h = dropout(out, self.config.dropout, generator)
        if self.config.output == "l2":
            return {"l2": ((self._heads(h, None)[..., 0] - x) ** 2).mean()}
        if self.config.output == "mixture":
            return {"nll": -_log_likelihood(self._heads(h, None), x).mean()}
        s = self._slice_energy(x)
        return {
            "nll": -_log_likelihood(self._heads(h, s), x).mean(),
            "slice_nll": -_log_likelihood(self.slice_head(h), s).mean(),
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), self.config.lr)}

    def train_step(
        self,
        batches: Sequence[TrainBatch],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        step: int,
    ) -> dict[str, float]:
        self.train()
        losses = self.loss(batches[0], generator)
        optimizers["model"].zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizers["model"].step()
        return {name: value.item() for name, value in losses.items()}


def _mixture(params: torch.Tensor):
    """Per-pixel parameters → (logit of empty, log-weights, means, widths)."""
    k = (params.shape[-1] - 1) // 3
    empty = params[..., 0]
    log_w = torch.log_softmax(params[..., 1 : 1 + k], dim=-1)
    mean = params[..., 1 + k : 1 + 2 * k]
    sigma = nn.functional.softplus(params[..., 1 + 2 * k :]) + MIN_SIGMA
    return empty, log_w, mean, sigma


def _log_likelihood(params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel log-likelihood of y (0: empty) under the zero class and the mixture."""
    empty, log_w, mean, sigma = _mixture(params)
    z = (y[..., None] - mean) / sigma
    log_normal = -0.5 * z**2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    filled = nn.functional.logsigmoid(-empty) + torch.logsumexp(log_w + log_normal, dim=-1)
    return torch.where(y > 0, filled, nn.functional.logsigmoid(empty))


def _draw(params: torch.Tensor, pick: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Pixels drawn from their distributions, given two standard normals per pixel.

    Φ(pick) is a uniform u: below P(empty) the pixel is empty; above, (u − P(empty)) /
    (1 − P(empty)) picks the component by its cumulative weight; the value is mean + σ · value.
    Comparisons and sums only, so it exports as it runs.
    """
    empty, log_w, mean, sigma = _mixture(params)
    u = 0.5 * (1 + torch.erf(pick / math.sqrt(2)))
    p_empty = torch.sigmoid(empty)
    v = ((u - p_empty) / (1 - p_empty).clamp_min(1e-12))[..., None]
    upper = torch.cumsum(log_w.exp(), dim=-1)
    upper = torch.cat([upper[..., :-1], torch.full_like(upper[..., -1:], 2.0)], dim=-1)
    lower = torch.cat([torch.zeros_like(upper[..., :1]), upper[..., :-1]], dim=-1)
    chosen = ((v >= lower) & (v < upper)).to(params.dtype)
    y = (chosen * (mean + sigma * value[..., None])).sum(-1)
    return torch.where(u < p_empty, torch.zeros_like(y), y.clamp_min(0))
