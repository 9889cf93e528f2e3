"""The CaloChallenge classifier test: how well can a network tell generated from reference?

A fully connected network is trained to separate reference showers (label 1) from generated
ones (label 0); the area under the ROC curve of its calibrated output on held-out showers is
the metric: 0.5 when the two samples are indistinguishable, 1 when they are disjoint.

References:
    | CaloChallenge 2022: a community challenge for fast calorimeter simulation
    | (Krause et al., 2024)
    | https://arxiv.org/abs/2410.21611

    | CaloFlow: fast and accurate generation of calorimeter showers with normalizing flows
    | (Krause and Shih, 2021)
    | https://arxiv.org/abs/2106.05285
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from caloforge.errors import CaloforgeError
from caloforge.evaluation.distances import _paired_samples

__all__ = [
    "MIN_SAMPLES",
    "PROTOCOL",
    "QUICK",
    "ClassifierResult",
    "ClassifierSettings",
    "boosted_auc",
    "classifier_auc",
    "low_level_inputs",
]

_SPLIT = (0.6, 0.2, 0.2)
# Inference runs in chunks so that a 2048-wide hidden layer never holds more than a few
# hundred MB of activations.
_INFERENCE_CHUNK = 10_000
# Calibrated probabilities are kept off 0 and 1, as CaloChallenge does, so that the
# cross-entropy behind the JSD stays finite.
_PROBABILITY_FLOOR = 1e-6
MIN_SAMPLES = 10
"""Fewest samples per input the classifier test accepts (a handful per split)."""


@dataclass(frozen=True)
class ClassifierResult:
    r"""The outcome of :func:`classifier_auc`.

    Attributes:
        auc: The ROC AUC of the calibrated output on the test split (raw, not folded: values
            below 0.5 mean the network learned an anti-correlated rule on the training split).
        jsd: The Jensen-Shannon divergence in bits, estimated as
            :math:`1 - \text{BCE} / \ln 2` from the calibrated output's binary cross-entropy
            on the test split, as CaloChallenge does. It lies in [0, 1] up to statistical
            noise, which on a few thousand showers can push it below zero.
        n_train: The number of training showers, both classes together.
        n_val: The number of validation showers (epoch selection and calibration).
        n_test: The number of test showers, both classes together.
        epochs: The number of epochs run.
        best_epoch: The epoch (counted from 1) of the best validation accuracy, whose weights
            were used.
        settings: The name of the settings (``protocol`` or ``quick``).
    """

    auc: float
    jsd: float
    n_train: int
    n_val: int
    n_test: int
    epochs: int
    best_epoch: int
    settings: str


@dataclass(frozen=True)
class ClassifierSettings:
    """The network and training of the classifier test.

    Attributes:
        name: How results name these settings.
        hidden: Units per hidden layer.
        layers: Hidden layers.
        dropout: Dropout probability after each hidden layer.
        lr: Adam's learning rate.
        batch_size: Showers per step.
        epochs: Epochs run (fewer only when the validation accuracy reaches 1).
        standardise: Whether to standardise the inputs with the training split's mean and
            standard deviation (CaloChallenge does not).
    """

    name: str
    hidden: int
    layers: int
    dropout: float
    lr: float
    batch_size: int
    epochs: int
    standardise: bool = False


PROTOCOL = ClassifierSettings(
    name="protocol", hidden=2048, layers=3, dropout=0.0, lr=2e-4, batch_size=1000, epochs=50
)
"""CaloChallenge's classifier (``code/evaluate.py`` of CaloChallenge/homepage, its defaults):
an input layer and ``--cls_n_layer 2`` more, so three hidden layers of 2048, no dropout, Adam
2·10⁻⁴, batches of 1000, 50 epochs, the epoch of the best validation accuracy kept."""

QUICK = ClassifierSettings(
    name="quick",
    hidden=128,
    layers=2,
    dropout=0.0,
    lr=1e-3,
    batch_size=64,
    epochs=15,
    standardise=True,
)
"""A small network for the demo, tests and quick looks: a lower bound on separability, weaker
than :data:`PROTOCOL`; everything that prints its AUC says "quick". On a few hundred showers
its few steps need standardised inputs (on the demo's 300 showers: AUC 0.54 without, 0.89
with)."""


def low_level_inputs(
    showers: ArrayLike, incident_energies: ArrayLike, scale: float = 1.0
) -> np.ndarray:
    r"""The CaloChallenge low-level classifier inputs: :math:`\log_{10} E_\text{inc}` and the
    cell energies divided by :math:`E_\text{inc}`.

    The inputs are not standardised, as in CaloChallenge, so the ratios' scale matters:
    ``scale`` multiplies them, and :func:`caloforge.evaluation.evaluate` passes one over the
    reference's median response so that a file in visible MeV gives the network inputs of the
    size a calibrated CaloChallenge file gives it (E_tot/E_inc ≈ 1).

    Arguments:
        showers: The cell energies, with shape :math:`[n, \text{cells}]` or
            :math:`[n, *]` (flattened).
        incident_energies: The incident energies, with shape :math:`[n]` or :math:`[n, 1]`,
            all positive, in the same unit as the cells.
        scale: A factor applied to the ratios.

    Returns:
        The inputs, with shape :math:`[n, 1 + \text{cells}]`.

    Example:
        >>> low_level_inputs([[5.0, 15.0]], [10.0])
        array([[1. , 0.5, 1.5]])
    """
    showers = np.asarray(showers, dtype=np.float64)
    if showers.ndim < 2:
        raise CaloforgeError(f"showers must have shape [n_showers, n_cells], got {showers.shape}")
    showers = showers.reshape(showers.shape[0], -1)
    energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
    if energies.shape[0] != showers.shape[0]:
        raise CaloforgeError(
            f"{showers.shape[0]} showers but {energies.shape[0]} incident energies: "
            "give one energy per shower"
        )
    if not np.isfinite(showers).all():
        raise CaloforgeError("showers hold NaN or infinite cell energies: fix them first")
    if not (np.isfinite(energies).all() and (energies > 0).all()):
        raise CaloforgeError("incident energies must be finite and positive")
    ratios = showers * (scale / energies[:, None])
    return np.concatenate([np.log10(energies)[:, None], ratios], axis=1)


def _balanced_splits(ref, gen, seed: int) -> tuple[dict, dict]:
    """Features and labels (reference 1, generated 0) of the train, val and test splits: the
    larger sample subsampled to the smaller, each class shuffled and cut 60/20/20."""
    ref, gen = _paired_samples(ref, gen)
    n = min(ref.shape[0], gen.shape[0])
    if n < MIN_SAMPLES:
        raise CaloforgeError(
            f"the classifier test needs at least {MIN_SAMPLES} samples per input, got {n}"
        )
    rng = np.random.default_rng(seed)
    classes = [sample[rng.permutation(sample.shape[0])[:n]] for sample in (ref, gen)]
    parts = [_split(n, rng) for _ in classes]
    names = ("train", "val", "test")
    x = {
        name: np.concatenate([sample[part[i]] for sample, part in zip(classes, parts, strict=True)])
        for i, name in enumerate(names)
    }
    y = {name: np.repeat([1.0, 0.0], parts[0][i].size) for i, name in enumerate(names)}
    return x, y


def _split(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled indices of one class, cut 60/20/20 into train, validation and test."""
    order = rng.permutation(n)
    n_train, n_val = int(_SPLIT[0] * n), int(_SPLIT[1] * n)
    return np.split(order, [n_train, n_train + n_val])


def _network(features: int, settings: ClassifierSettings) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = features
    for _ in range(settings.layers):
        layers += [
            torch.nn.Linear(width, settings.hidden),
            torch.nn.LeakyReLU(),
            torch.nn.Dropout(settings.dropout),
        ]
        width = settings.hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))


@contextmanager
def _seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seeds torch's global generator for ``device`` and restores it on exit.

    Initialisation and dropout can only draw from the global generators.
    """
    cuda = []
    if device.type == "cuda":
        cuda = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


@torch.no_grad()
def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk).squeeze(1) for chunk in x.split(_INFERENCE_CHUNK)])


def _train(
    x: dict[str, torch.Tensor],
    y: dict[str, torch.Tensor],
    settings: ClassifierSettings,
    seed: int,
    device: torch.device,
) -> tuple[torch.nn.Module, int, int]:
    """Trains for the settings' epochs, keeping the weights of the best validation accuracy.

    As CaloChallenge: selection by accuracy, not by loss (the loss of a network that keeps
    learning to separate can rise through overconfidence while its accuracy still improves),
    and training ends early only at a validation accuracy of 1.
    """
    # float32 whatever torch's default dtype: the inputs are float32.
    model = _network(x["train"].shape[1], settings).to(device=device, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    loss_function = torch.nn.BCEWithLogitsLoss()
    shuffle = torch.Generator().manual_seed(seed)

    best_accuracy, best_epoch, best_state = -math.inf, 0, None
    epoch = 0
    while epoch < settings.epochs and best_accuracy < 1.0:
        epoch += 1
        model.train()
        order = torch.randperm(x["train"].shape[0], generator=shuffle).to(device)
        for batch in order.split(settings.batch_size):
            optimizer.zero_grad()
            loss_function(model(x["train"][batch]).squeeze(1), y["train"][batch]).backward()
            optimizer.step()
        accuracy = ((_logits(model, x["val"]) > 0).float() == y["val"]).float().mean().item()
        if accuracy > best_accuracy:
            best_accuracy, best_epoch = accuracy, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model, epoch, best_epoch


def classifier_auc(
    ref: ArrayLike,
    gen: ArrayLike,
    *,
    seed: int,
    settings: ClassifierSettings = PROTOCOL,
    device: str | torch.device = "cpu",
) -> ClassifierResult:
    r"""Trains a classifier to separate reference from generated samples and returns its AUC.

    The function takes a ready feature matrix: building it (:func:`low_level_inputs` for
    cells, or scaled high-level features) is the caller's business; it is standardised here
    only by settings that ask for it (not CaloChallenge's).

    The protocol is CaloChallenge's (``code/evaluate.py``):

    1. Reference samples are labelled 1, generated 0; the larger sample is randomly
       subsampled to the size of the smaller so the classes are balanced.
    2. Each class is shuffled and split 60/20/20 into train, validation and test.
    3. A fully connected network (:data:`PROTOCOL`: three hidden layers of 2048 with
       LeakyReLU) is trained with binary cross-entropy and Adam (learning rate 2·10⁻⁴,
       batches of 1000) for 50 epochs; the weights of the epoch with the best validation
       accuracy are kept, and training stops early only if that accuracy reaches 1.
    4. Isotonic regression fitted on the validation outputs calibrates the network's output
       into a probability; the AUC of the calibrated output on the test split is returned
       raw, as CaloChallenge reports it: not folded around 0.5.

    :data:`QUICK` trains a network of 2 × 128 on standardised inputs with batches of 64 and
    learning rate 10⁻³ for 15 epochs: for the demo, tests and quick looks, and weaker than the
    protocol.

    Results are deterministic for a given seed on a given machine and device (on a GPU,
    some kernels may add run-to-run noise). Torch's global random state is restored on
    return.

    Arguments:
        ref: The reference features, with shape :math:`[n, d]`.
        gen: The generated features, with shape :math:`[m, d]`.
        seed: The seed of the subsampling, split, initialisation and shuffling.
        settings: The network and training: :data:`PROTOCOL` or :data:`QUICK`.
        device: The torch device to train on.

    Returns:
        The AUC and the details of the run.

    References:
        | CaloChallenge 2022 (Krause et al., 2024)
        | https://arxiv.org/abs/2410.21611

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ref, gen = rng.normal(size=(2, 1000, 4))
        >>> result = classifier_auc(ref, gen + 3.0, seed=0, settings=QUICK)
        >>> result.auc > 0.95
        True
    """
    x_np, y_np = _balanced_splits(ref, gen, seed)
    device = torch.device(device)
    if settings.standardise:
        mean, std = x_np["train"].mean(axis=0), x_np["train"].std(axis=0)
        std[std == 0] = 1.0
        x_np = {name: (v - mean) / std for name, v in x_np.items()}
    x = {name: torch.as_tensor(v, dtype=torch.float32, device=device) for name, v in x_np.items()}
    y = {name: torch.as_tensor(v, dtype=torch.float32, device=device) for name, v in y_np.items()}

    with _seeded_torch(seed, device):
        model, epochs, best_epoch = _train(x, y, settings, seed, device)
    logits = {name: _logits(model, x[name]).double().cpu().numpy() for name in ("val", "test")}

    # Isotonic regression only uses the order of its inputs, so calibrating the logits
    # equals calibrating the sigmoid outputs, without the ties of sigmoids saturated at 1.
    calibrator = IsotonicRegression(
        y_min=_PROBABILITY_FLOOR, y_max=1.0 - _PROBABILITY_FLOOR, out_of_bounds="clip"
    ).fit(logits["val"], y_np["val"])
    probability = calibrator.predict(logits["test"])
    truth = y_np["test"]
    cross_entropy = -np.mean(truth * np.log(probability) + (1 - truth) * np.log1p(-probability))

    return ClassifierResult(
        auc=float(roc_auc_score(truth, probability)),
        jsd=float(1.0 - cross_entropy / math.log(2.0)),
        n_train=int(y_np["train"].size),
        n_val=int(y_np["val"].size),
        n_test=int(truth.size),
        epochs=epochs,
        best_epoch=best_epoch,
        settings=settings.name,
    )


def boosted_auc(ref: ArrayLike, gen: ArrayLike, *, seed: int) -> float:
    """A second opinion: the test AUC of a gradient-boosted tree ensemble (scikit-learn's
    HistGradientBoostingClassifier, its defaults) on the same balanced 60/20/20 split as
    :func:`classifier_auc`: it trains on the first 80 %, stopping early on a quarter of them
    that it draws itself (the size of the validation split), and is scored on the last 20 %.

    Trees split on thresholds, so they need no scaling of the inputs and see a difference in
    a few cells as readily as in many; a network and trees that agree make a robust number.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ref, gen = rng.normal(size=(2, 1000, 4))
        >>> boosted_auc(ref, gen + 3.0, seed=0) > 0.95
        True
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x, y = _balanced_splits(ref, gen, seed)
    fit_x = np.concatenate([x["train"], x["val"]])
    # A feature constant in the fitted showers (a cell never read out) can never split: leaving
    # it out gives the same trees, and saves binning it (most of a fine readout's cells).
    varied = fit_x.min(axis=0) < fit_x.max(axis=0)
    if varied.any():
        fit_x, x["test"] = fit_x[:, varied], x["test"][:, varied]
    model = HistGradientBoostingClassifier(
        early_stopping=True, validation_fraction=0.25, random_state=seed
    )
    # Its binning hands each feature to a thread pool: with tens of thousands of cells the
    # hand-offs cost more than the work (65 025 cells: 31 s with two threads, 11 s with one).
    threads = 1 if fit_x.shape[1] > _ONE_THREAD_FEATURES else None
    with threadpool_limits(threads, user_api="openmp"):
        model.fit(fit_x, np.concatenate([y["train"], y["val"]]))
        probability = model.predict_proba(x["test"])[:, 1]
    return float(roc_auc_score(y["test"], probability))


_ONE_THREAD_FEATURES = 10_000
"""Above this many features, boosted trees fit on one thread (see ``boosted_auc``)."""
