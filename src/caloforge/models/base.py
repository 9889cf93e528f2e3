"""The interface every generative model family implements, and its model directory.

A model maps noise and physical conditions to showers in MeV through ``decode``, a deterministic
function that holds the preprocessing transforms' constants: sampling draws the noise outside it,
so the same ``decode`` is what torch runs, what ONNX exports and what C++ calls. Training goes
through the shared loop in ``caloforge.training``; how one step updates which network (a GAN's
alternating updates, a flow's likelihood) is each family's own business, in ``train_step``.

Model directory (DESIGN.md): ``config.json`` (the validated config: family, detector, conditions,
fitted transforms, hyperparameters), ``model.safetensors`` (weights, never pickled),
``metrics.json`` (the evaluation at the end of training), ``training_log.jsonl``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from caloforge.data.transforms import Transform, transform_from_state
from caloforge.detectors import Detector, detector_from_yaml
from caloforge.errors import CaloforgeError
from caloforge.files import atomic_write_bytes, atomic_write_text
from caloforge.sources.spec import MOMENTUM, incident_energy

__all__ = ["GenerativeModel", "ModelConfig", "TrainBatch", "derived_conditions"]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


class ModelConfig(BaseModel):
    """What every family's config holds; families add their hyperparameters."""

    # Options come from the command line as YAML scalars: a version 1 is the string "1".
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    older_files: ClassVar[dict[str, Any]] = {}
    """Options added to a family after models of it were written, with the value that such an
    older config.json, which lacks them, was trained with: ``read_config`` fills them in, so an
    older model directory loads, generates and resumes as it was made."""

    family: str
    name: str = Field(default="", description="model name recorded in generated files")
    version: str = "0"
    detector: str = Field(description="the detector's YAML")
    conditions: tuple[str, ...]
    condition_range: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="min and max of each condition in the training data"
    )
    derived_range: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="min and max in the training data of what the conditions imply (see "
        "derived_conditions): the incident energy, and the slopes px/pz, py/pz",
    )
    shower_transform: dict[str, Any] = Field(default_factory=dict)
    condition_transform: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    training: dict[str, Any] = Field(default_factory=dict, description="the training settings")
    caloforge_version: str = ""


def derived_conditions(
    names: Sequence[str], conditions: np.ndarray, energy: np.ndarray
) -> dict[str, np.ndarray]:
    """What conditions imply beyond their own ranges: the incident energy (MeV) and, for
    momentum conditions, the direction's slopes px/pz and py/pz. A momentum's components can each
    lie in their training range while its size or angle does not. ``conditions``: (N, k) rows, or
    one row (k,) with a scalar ``energy``."""
    derived = {"energy": np.asarray(energy, dtype=np.float64)}
    if all(n in names for n in MOMENTUM):
        px, py, pz = (conditions[..., list(names).index(n)] for n in MOMENTUM)
        with np.errstate(divide="ignore", invalid="ignore"):
            derived["slope_x"], derived["slope_y"] = px / pz, py / pz
    return derived


class TrainBatch:
    """One batch of training data in the model's transformed space, plus its physical energies."""

    def __init__(self, showers: torch.Tensor, conditions: torch.Tensor, energy: torch.Tensor):
        self.showers = showers
        self.conditions = conditions
        self.energy = energy

    def __len__(self) -> int:
        return len(self.showers)

    def __getitem__(self, rows: slice) -> TrainBatch:
        return TrainBatch(self.showers[rows], self.conditions[rows], self.energy[rows])


class GenerativeModel(torch.nn.Module, ABC):
    """Base class of the model families.

    Subclasses set ``config_class``, build their networks in ``__init__`` from the config, and
    implement ``latent_dim``, ``generate_transformed`` (noise and transformed conditions to
    transformed showers), ``optimizers`` and ``train_step``. A family's name is written once, as
    the default of its config's ``family`` field; ``family`` is read from it.
    """

    family: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    batches_per_step: ClassVar[int] = 1
    """How many training batches one ``train_step`` consumes (a WGAN's critic iterations)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "config_class" in cls.__dict__:
            cls.family = cls.config_class.model_fields["family"].default

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.detector: Detector = detector_from_yaml(config.detector)
        self._shower_transform = (
            transform_from_state(config.shower_transform) if config.shower_transform else None
        )
        self._condition_transform = (
            transform_from_state(config.condition_transform) if config.condition_transform else None
        )

    # ------------------------------------------------------------------ preprocessing

    @classmethod
    @abstractmethod
    def default_transforms(cls, config: ModelConfig) -> tuple[Transform, Transform]:
        """Unfitted (shower transform, condition transform) of the family."""

    @classmethod
    def create(
        cls,
        config: ModelConfig,
        showers: np.ndarray,
        energy: np.ndarray,
        conditions: np.ndarray,
    ) -> GenerativeModel:
        """A new model whose transforms are fitted on training data (physical units)."""
        shower_t, condition_t = cls.default_transforms(config)
        shower_t.fit(showers, energy[:, None])
        condition_t.fit(conditions)
        ranges = {
            name: (float(conditions[:, i].min()), float(conditions[:, i].max()))
            for i, name in enumerate(config.conditions)
        }
        derived = {
            name: (float(values.min()), float(values.max()))
            for name, values in derived_conditions(config.conditions, conditions, energy).items()
        }
        config = config.model_copy(
            update={
                "shower_transform": shower_t.state(),
                "condition_transform": condition_t.state(),
                "condition_range": ranges,
                "derived_range": derived,
            }
        )
        return cls(config)

    @property
    def shower_transform(self) -> Transform:
        if self._shower_transform is None:
            raise CaloforgeError("the model's transforms were never fitted")
        return self._shower_transform

    @property
    def condition_transform(self) -> Transform:
        if self._condition_transform is None:
            raise CaloforgeError("the model's transforms were never fitted")
        return self._condition_transform

    def energy_of(self, conditions: torch.Tensor) -> torch.Tensor:
        """(N, 1) incident kinetic energy in MeV implied by physical conditions."""
        return incident_energy(conditions, self.config.conditions)

    def to_training(
        self,
        showers: np.ndarray,
        energy: np.ndarray,
        conditions: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> TrainBatch:
        """Physical arrays to the transformed tensors the networks train on.

        ``rows``: the events' positions in the training split when a process holds only part
        of it (data-parallel training with several data parts); a family that draws random
        numbers here draws them per event from (seed, row), so that every split of the data
        gets the same ones. None: the whole split, in order.
        """
        e = energy.reshape(-1, 1)
        x = self.shower_transform.forward(showers.astype(np.float64), e)
        c = self.condition_transform.forward(conditions.astype(np.float64))
        return TrainBatch(
            torch.as_tensor(x, dtype=torch.float32),
            torch.as_tensor(c, dtype=torch.float32),
            torch.as_tensor(e, dtype=torch.float32),
        )

    # ------------------------------------------------------------------ sampling

    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """Size of the noise vector per shower."""

    @abstractmethod
    def generate_transformed(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Transformed-space showers (N, n_cells) from noise and transformed conditions."""

    def decode(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Showers in MeV from noise and physical conditions, as the detector reads them out:
        deterministic, exportable."""
        c = self.condition_transform.forward(conditions)
        x = self.generate_transformed(noise, c)
        return self.read_out(
            self.shower_transform.inverse(x, self.energy_of(conditions)).clamp_min(0)
        )

    def check_conditions(self, conditions: np.ndarray) -> None:
        """Refuse physical conditions (N, k) the model cannot take, with a one-line error; a
        family with discrete conditions (particle codes) says which values it knows."""

    def read_out(self, showers: torch.Tensor) -> torch.Tensor:
        """The detector's read-out of generated showers: cells below its threshold are 0.

        "below" rather than "at or above": a NaN stays a NaN, for generate to refuse.
        """
        return torch.where(showers < self.detector.threshold, 0.0, showers)

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise for n showers."""
        return torch.randn(n, self.latent_dim, generator=generator)

    @torch.inference_mode()
    def sample(self, conditions: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Showers (N, n_cells) float32 MeV for physical conditions (N, k)."""
        self.eval()
        self.check_conditions(np.asarray(conditions))
        c = torch.as_tensor(np.asarray(conditions), dtype=torch.float32)
        return self.decode(self.noise(len(c), generator), c).numpy()

    # ------------------------------------------------------------------ training

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers, by name (their states are checkpointed)."""

    @abstractmethod
    def train_step(
        self,
        batches: Sequence[TrainBatch],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        step: int,
    ) -> dict[str, float]:
        """One training step on ``batches_per_step`` batches; returns losses to log."""

    def after_training(
        self, showers: np.ndarray, energy: np.ndarray, conditions: np.ndarray
    ) -> None:
        """What a family fits once its best weights are chosen, on the training split in
        physical units (the shared loop calls it before the model directory is written)."""

    # ------------------------------------------------------------------ directory

    def save(self, directory: str | Path) -> Path:
        """Write config.json and model.safetensors into ``directory``."""
        directory = self.save_config(directory)
        save_weights(self.state_dict(), directory / WEIGHTS)
        return directory

    def save_config(self, directory: str | Path) -> Path:
        """Write config.json only (atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / CONFIG, self.config.model_dump_json(indent=2) + "\n")
        return directory

    def save_weights_to(self, path: Path) -> None:
        """Only the weights, atomically (the best checkpoint of a training)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        save_weights(self.state_dict(), path)

    def load_weights_from(self, path: Path) -> None:
        self.load_state_dict(load_weights(path))

    @classmethod
    def load(cls, directory: str | Path) -> GenerativeModel:
        """A model from its directory (config.json + model.safetensors)."""
        directory = Path(directory)
        config = read_config(directory)
        if not isinstance(config, cls.config_class):
            raise CaloforgeError(f"{directory} holds a {config.family!r} model, not {cls.family!r}")
        model = cls(config)
        try:
            model.load_state_dict(load_weights(directory / WEIGHTS))
        except RuntimeError as exc:  # torch's message: a header, then what is missing
            lines = str(exc).strip().splitlines()
            what = lines[min(1, len(lines) - 1)].strip()
            what = what if len(what) <= 120 else what[:117] + "..."
            raise CaloforgeError(f"{directory}: weights do not fit its config: {what}") from None
        return model.eval()

    def describe(self) -> dict[str, Any]:
        """What a generated file records as its producer."""
        return {
            "kind": "model",
            "family": self.family,
            "name": self.config.name or self.family,
            "version": self.config.version,
            "caloforge_version": self.config.caloforge_version,
        }


def save_weights(tensors: dict[str, torch.Tensor], path: Path, meta: dict | None = None) -> None:
    """Safetensors, written atomically (a killed save never leaves a half file)."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {k: json.dumps(v) for k, v in (meta or {}).items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CaloforgeError(f"model directory {path.parent} has no {path.name}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CaloforgeError(f"{path} is corrupt or not safetensors: {exc}") from None


def read_config(directory: Path) -> ModelConfig:
    """Read and validate a model directory's config.json with its family's config class."""
    from caloforge.models import get_family

    path = directory / CONFIG
    if not directory.is_dir():
        raise CaloforgeError(f"no model directory {directory}")
    if not path.exists():
        raise CaloforgeError(f"model directory {directory} has no {CONFIG}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaloforgeError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "family" not in data:
        raise CaloforgeError(f"{path} does not name a model family")
    config_class = get_family(str(data["family"])).config_class
    try:
        return config_class.model_validate(config_class.older_files | data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CaloforgeError(f"{path} is not a valid model config: {where}: {err['msg']}") from None
