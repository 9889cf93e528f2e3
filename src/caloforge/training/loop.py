"""The training loop every model family shares.

``train`` reads a shower file, holds out a seeded split for evaluation, fits the family's
preprocessing on the rest, and runs ``model.train_step`` for the requested number of steps. It
logs losses to ``training_log.jsonl``, checkpoints every ``checkpoint_every`` steps (and when
stopped by Ctrl-C or ``max_time``), evaluates on the held-out split every ``eval_every`` steps
keeping the best weights by the mean separation power of the high-level features, and at the end
(or when stopped by ``max_time``) writes the model directory with the best weights and its
metrics.json.

Randomness: the batches of epoch e are a permutation drawn from (seed, e); everything random
inside step s (noise, interpolation weights) comes from a torch.Generator seeded from (seed, s).
A resumed run therefore continues exactly, and ends with the weights an uninterrupted run would.

Device: the networks and the training split live on ``settings.device`` (``cpu``, ``cuda``,
``cuda:N``), and a step's generator is made there, so its draws are the device's: the same seed
on the same kind of device repeats a run, and a run resumed on another kind continues from the
checkpoint with that device's draws. The held-out evaluations and the model directory are made
on the CPU, as ``caloforge generate`` would.

Data-parallel: started by torchrun (``caloforge train --nproc N``), every process runs this loop
on its own parts of the data; ``caloforge.training.distributed`` says how the runs stay one.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import math
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from caloforge import stopping
from caloforge.data.showerfile import VISIBLE, ShowerFile
from caloforge.errors import CaloforgeError, argument, checked, invalid_value
from caloforge.evaluation.classifier import MIN_SAMPLES
from caloforge.evaluation.observables import apply_threshold
from caloforge.files import locked
from caloforge.models import get_family
from caloforge.models.base import GenerativeModel, ModelConfig, read_config
from caloforge.models.common import shard
from caloforge.training import distributed
from caloforge.training.checkpoint import load_checkpoint, previous_path, save_checkpoint
from caloforge.training.distributed import AveragingOptimizer, World
from caloforge.training.launch import LOST_RANKS

__all__ = ["TrainResult", "TrainingSettings", "train", "training_device"]

LOG = "training_log.jsonl"
LAST = "checkpoints/last.safetensors"
BEST = "checkpoints/best.safetensors"


class TrainingSettings(BaseModel):
    """How to train (saved in the model's config.json under ``training``)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=20_000, gt=0)
    batch_size: int = Field(default=64, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(default=500, gt=0)
    eval_every: int = Field(default=1000, gt=0)
    log_every: int = Field(default=50, gt=0)
    holdout_fraction: float = Field(default=0.1, gt=0, lt=1)
    eval_events: int = Field(default=2000, ge=MIN_SAMPLES)
    max_events: int | None = Field(default=None, gt=0)
    device: str = Field(
        default="cpu", description="torch device the networks train on: cpu, cuda or cuda:N"
    )
    data_parts: int = Field(
        default=1,
        gt=0,
        description="parts the training split is cut into, each with its own batches; a "
        "global batch takes batch_size / data_parts from every part, and any number of "
        "processes that divides it gives the same run",
    )


@dataclass(frozen=True)
class TrainResult:
    directory: Path
    step: int
    steps: int
    seconds: float
    best_score: float | None
    complete: bool


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, 0x7EA1, step]).generate_state(1, np.uint64)[0] >> 1)


class _Data:
    """The training split as transformed tensors, and the held-out split in physical units.

    Under data-parallel training a rank holds only the events of its parts of the training split
    (``parts``, in global part order, with their offsets in ``showers``); rank 0 also reads the
    held-out split and, for a new model, the whole training split to fit the preprocessing.
    """

    def __init__(self, path: Path, settings: TrainingSettings, world: World, fit_all: bool):
        f = ShowerFile(path)
        if len(f) < 10:
            raise CaloforgeError(f"{f.path} has {len(f)} events; training needs at least 10")
        self.file = f
        if f.energy_unit is not None and f.energy_unit.kind != VISIBLE:
            raise CaloforgeError(
                f"{f.path} holds {f.energy_unit}; models learn caloforge's visible MeV: convert "
                "it with `caloforge convert --from calochallenge`"
            )
        n = min(len(f), settings.max_events or len(f))
        order = np.random.default_rng([settings.seed, 0x401D]).permutation(n)
        n_hold = max(2, min(int(n * settings.holdout_fraction), settings.eval_events))
        if n_hold < MIN_SAMPLES:
            # Refused now, not after the training: the evaluation at its end needs them.
            raise CaloforgeError(
                f"{f.path}: {n} events leave {n_hold} for the held-out evaluation at the end "
                f"of training, which needs {MIN_SAMPLES}; train on at least "
                f"{math.ceil(MIN_SAMPLES / settings.holdout_fraction)} events"
            )
        hold, fit = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        parts = settings.data_parts
        if parts > len(fit):
            raise CaloforgeError(
                f"{f.path}: {len(fit)} training events cannot be cut into {parts} parts "
                "(one per process at least)"
            )
        if settings.batch_size % parts:
            raise CaloforgeError(
                f"the batch size {settings.batch_size} must be a multiple of the data's "
                f"{parts} parts"
            )
        if parts % world.size:
            raise CaloforgeError(
                f"this run's data is in {parts} parts; train it with a number of processes that "
                f"divides {parts}, not {world.size}"
            )
        bounds = [p * len(fit) // parts for p in range(parts + 1)]
        owned = range(world.rank * parts // world.size, (world.rank + 1) * parts // world.size)
        self.parts = [
            (p, bounds[p] - bounds[owned.start], bounds[p + 1] - bounds[p]) for p in owned
        ]
        self.part_size = bounds[1] - bounds[0] if parts > 1 else len(fit)
        self.detector = f.detector
        if self.detector is None:
            raise CaloforgeError(f"{f.path} records no detector; convert it with caloforge first")
        self.condition_names = f.condition_names
        mine = fit[bounds[owned.start] : bounds[owned.stop]]
        # Positions in the training split: per-event random draws of the preprocessing.
        self.rows = np.arange(bounds[owned.start], bounds[owned.stop]) if parts > 1 else None
        # Models learn what the detector reads out: nothing below its threshold.
        self.showers, self.energy, self.conditions = self._read(mine)
        self.fit_all = self._read(fit) if fit_all else None
        self.holdout = self._read(hold, threshold=False) if world.main else None

    def _read(self, rows: np.ndarray, threshold: bool = True):
        """Showers (thresholded), energies and conditions of the sorted file rows ``rows``."""
        data = self.file.read(int(rows[0]), int(rows[-1]) + 1)
        take = rows - rows[0]
        showers = data.showers[take]
        if threshold:
            showers = apply_threshold(showers, self.detector.threshold)
        return showers, data.incident_energies[take, 0], data.conditions[take]

    def __len__(self) -> int:
        return len(self.showers)


def _batch_indices(
    dataset: _Data, batch_size: int, parts: int, seed: int, batch: int, cache: dict
) -> np.ndarray:
    """Indices (into the rank's tensors) of its share of global batch ``batch``: every part's
    epochs are seeded permutations of the part, the tail dropped."""
    size = batch_size // parts
    per_epoch = max(1, dataset.part_size // size)
    epoch, within = divmod(batch, per_epoch)
    if epoch not in cache:
        cache.clear()
        cache[epoch] = {
            p: np.random.default_rng(
                [seed, 0xE90C, epoch] if parts == 1 else [seed, 0xE90C, epoch, p]
            ).permutation(n)
            for p, _, n in dataset.parts
        }
    return np.concatenate(
        [
            offset + cache[epoch][p][within * size : (within + 1) * size]
            for p, offset, _ in dataset.parts
        ]
    )


@checked
def train(
    family: str,
    data: str | Path,
    out: str | Path,
    *,
    settings: TrainingSettings | None = None,
    model_options: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_time: float | None = None,
    steps: int | None = None,
    device: str | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a model of ``family`` on a shower file into the model directory ``out``.

    Arguments:
        family: a registered family name (``caloforge models`` lists them).
        data: the training shower file.
        out: the model directory to write.
        settings: steps, batch size, seed, checkpoint/eval/log intervals.
        model_options: the family's hyperparameters (fields of its config).
        resume: continue from ``out``'s last checkpoint; its config and settings are reused.
        overwrite: replace an existing model directory.
        max_time: stop (with a checkpoint) after this many seconds; resume continues.
        steps: with ``resume``, a new total number of steps (to train a finished model further).
        device: the torch device to train on (default: the settings' ``device``; with
            ``resume``, the one the model was trained on).
        progress: called after every step with (step, steps, last losses).
    """
    world = distributed.start()
    how = {"resume": resume, "overwrite": overwrite, "max_time": max_time, "steps": steps}
    # Rank 0 alone writes the directory; a second training into it is refused while it runs.
    lock = locked(out, f"model directory {out}") if world.main else contextlib.nullcontext()
    try:
        with stopping.on_request(), lock:
            return _train(
                world, family, data, out, settings, model_options, device, progress, **how
            )
    finally:
        distributed.stop()


def _train(
    world,
    family,
    data,
    out,
    settings,
    model_options,
    device,
    progress,
    *,
    resume,
    overwrite,
    max_time,
    steps,
) -> TrainResult:
    out = Path(out)
    started = time.perf_counter()
    if resume:
        config = read_config(out)
        if config.family != family:
            raise CaloforgeError(f"{out} holds a {config.family!r} model, not {family!r}")
        settings = TrainingSettings.model_validate(config.training["settings"])
        if steps is not None:
            settings = settings.model_copy(update={"steps": steps})
            config.training["settings"]["steps"] = steps
        if device is not None:
            settings = settings.model_copy(update={"device": device})
            config.training["settings"]["device"] = device
        if str(Path(data).resolve()) != config.training["data"]["path"]:
            raise CaloforgeError(f"{out} was trained on {config.training['data']['path']}")
    else:
        if steps is not None:
            raise CaloforgeError("a new number of steps goes with --resume; else use settings")
        if world.main and out.exists() and any(out.iterdir()) and not overwrite:
            raise CaloforgeError(f"{out} exists; use --overwrite or --resume")
        settings = settings or TrainingSettings()
        if device is not None:
            settings = settings.model_copy(update={"device": device})
        if world.parallel and "data_parts" not in settings.model_fields_set:
            settings = settings.model_copy(update={"data_parts": world.size})
    on = training_device(settings.device)
    if world.parallel and on.type != "cpu":
        raise CaloforgeError(
            f"data-parallel training runs its processes on the CPU; train on {on} with one "
            "process (--nproc 1)"
        )
    with argument("family"):
        cls: type[GenerativeModel] = get_family(family)
    dataset = _Data(Path(data), settings, world, fit_all=not resume and world.main)
    if resume:
        if len(dataset.file) != config.training["data"]["n_events"]:
            raise CaloforgeError(f"{dataset.file.path} changed since {out} was trained on it")
        model = cls(config)
        if (steps is not None or device is not None) and world.main:
            model.save_config(out)
    elif world.main:
        model = _new_model(cls, dataset, settings, model_options or {})
        dataset.fit_all = None
        out.mkdir(parents=True, exist_ok=True)
        last = out / LAST
        for stale in (out / LOG, last, previous_path(last), out / BEST, out / "metrics.json"):
            stale.unlink(missing_ok=True)
        model.save(out)
    distributed.barrier(world)
    if not resume and not world.main:
        model = cls.load(out).train()  # the preprocessing and initial weights rank 0 made
    model.to(on)  # before the optimizers are made, so that their states live there too
    optimizers = model.optimizers()
    loop = {"step": 0, "best_score": None, "best_step": None, "seconds": 0.0}
    if resume:
        loop = load_checkpoint(out / LAST, model, optimizers)
        if world.main:
            _truncate_log(out / LOG, loop["step"])
    if world.parallel:
        optimizers = {k: AveragingOptimizer(v, world) for k, v in optimizers.items()}
    made = model.to_training(dataset.showers, dataset.energy, dataset.conditions, rows=dataset.rows)
    train_set = type(made)(*(t.to(on) for t in (made.showers, made.conditions, made.energy)))
    return _run(
        world,
        model,
        optimizers,
        train_set,
        dataset,
        settings,
        out,
        loop,
        started,
        max_time,
        progress,
    )


def training_device(name: str) -> torch.device:
    """The torch device called ``name``, refused in one line if this machine has none such."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CaloforgeError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise CaloforgeError(f"caloforge trains on cpu or cuda, not {device.type}")
    if not torch.cuda.is_available():
        raise CaloforgeError(f"device {name}: torch {torch.__version__} sees no CUDA GPU here")
    if (device.index or 0) >= torch.cuda.device_count():
        raise CaloforgeError(f"device {name}: this machine has {torch.cuda.device_count()} GPUs")
    return device


def _on_cpu(model: GenerativeModel) -> GenerativeModel:
    """The model itself if it trains on the CPU, else a copy there (to be evaluated)."""
    if next(model.parameters()).device.type == "cpu":
        return model
    return copy.deepcopy(model).cpu()


def _new_model(cls, dataset: _Data, settings: TrainingSettings, options: dict) -> GenerativeModel:
    from caloforge import __version__

    try:
        config = cls.config_class(
            detector=dataset.detector.to_yaml(),
            conditions=dataset.condition_names,
            seed=settings.seed,
            caloforge_version=__version__,
            training={
                "settings": settings.model_dump(),
                "data": {
                    "path": str(dataset.file.path.resolve()),
                    "n_events": len(dataset.file),
                    "producer": dataset.file.producer,
                    "seed": dataset.file.seed,
                    "source": dataset.file.attrs.get("source"),
                    "selection": dataset.file.attrs.get("selection", ""),
                },
            },
            **options,
        )
    except ValidationError as exc:
        unknown = [e["loc"][0] for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unknown:
            valid = sorted(set(cls.config_class.model_fields) - _CONFIG_FIELDS)
            close = difflib.get_close_matches(str(unknown[0]), valid, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise CaloforgeError(
                f"{cls.family} has no option {unknown[0]!r}; {hint}its options: {', '.join(valid)}"
            ) from None
        raise invalid_value(exc, lambda name: f"model option {name}") from None
    torch.manual_seed(settings.seed)  # initial weights: the one global draw, made from the seed
    return cls.create(config, *dataset.fit_all)


_LOST_RANK = re.compile(r"gloo|Connection (reset|closed)|Broken pipe|timed out", re.I)
"""What a collective operation says when another rank has gone."""

_CONFIG_FIELDS = set(ModelConfig.model_fields)
"""What every family's config holds and the loop sets: not options a user gives."""


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint: the resumed run writes them again."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _run(
    world, model, optimizers, train_set, dataset, settings, out, loop, started, max_time, progress
):
    from caloforge.training.validation import holdout_score

    main = world.main
    log = (out / LOG).open("a") if main else None
    step = loop["step"]
    cache: dict = {}
    k = model.batches_per_step
    losses: dict[str, float] = {}
    stopped = signalled = None
    at_boundary = True  # the weights and optimizers are those of the end of step `step`
    try:
        while step < settings.steps:
            timed_out = max_time is not None and time.perf_counter() - started > max_time
            asked = stopping.requested()
            if (timed_out or asked or world.parallel) and distributed.any_rank(
                world, bool(timed_out or asked)
            ):
                stopped, signalled = True, asked or (None if timed_out else signal.SIGTERM)
                break
            at_boundary = False
            batches = []
            for j in range(k):
                idx = torch.as_tensor(
                    _batch_indices(
                        dataset,
                        settings.batch_size,
                        settings.data_parts,
                        settings.seed,
                        step * k + j,
                        cache,
                    ),
                    device=train_set.showers.device,
                )
                batches.append(
                    type(train_set)(
                        train_set.showers[idx], train_set.conditions[idx], train_set.energy[idx]
                    )
                )
            generator = torch.Generator(train_set.showers.device).manual_seed(
                _step_seed(settings.seed, step)
            )
            with shard(world.rank, world.size, settings.data_parts):
                losses = model.train_step(batches, optimizers, generator, step)
            step += 1
            loop["step"] = step
            at_boundary = True
            if step % settings.log_every == 0 or step == settings.steps:
                losses = distributed.mean_over_ranks(world, losses)
                if main:
                    timing = {"seconds": round(time.perf_counter() - started, 3)}
                    if world.parallel:
                        timing["allreduce_seconds"] = round(
                            sum(o.seconds for o in optimizers.values()), 3
                        )
                    _log(log, {"step": step, **losses, **timing})
            if main and (step % settings.eval_every == 0 or step == settings.steps):
                score = holdout_score(_on_cpu(model), dataset.holdout, seed=settings.seed)
                _log(log, {"step": step, "holdout_mean_separation_power": score})
                if loop["best_score"] is None or score < loop["best_score"]:
                    loop["best_score"], loop["best_step"] = score, step
                    model.save_weights_to(out / BEST)
            if main and (step % settings.checkpoint_every == 0 or step == settings.steps):
                _checkpoint(out, model, optimizers, loop, started)
            if main and progress is not None:
                progress(step, settings.steps, losses)
    except RuntimeError as exc:
        if not world.parallel or not _LOST_RANK.search(str(exc)):
            raise
        if main:
            log.close()
        first = str(exc).strip().splitlines()[0][:160]
        raise CaloforgeError(
            f"rank {world.rank} {LOST_RANKS} at step {step} ({first}); the last "
            "checkpoint is kept, continue with --resume"
        ) from None
    except KeyboardInterrupt:
        # Raised mid-step (a second Ctrl-C), the weights may be half updated: only a state at a
        # step's end is saved.
        if main and at_boundary:
            _checkpoint(out, model, optimizers, loop, started)
        if main:
            log.close()
        kept = "checkpoint saved" if at_boundary else "the last checkpoint kept"
        raise CaloforgeError(
            f"interrupted at step {step}; {kept}; continue with --resume"
        ) from None
    if stopped and main:
        _checkpoint(out, model, optimizers, loop, started)
    if main:
        log.close()
    if signalled:
        distributed.barrier(world)
        raise stopping.Stopped(
            f"stopped by {stopping.signal_name(signalled)} at step {step}; checkpoint saved, "
            "continue with --resume",
            signalled,
        )
    complete = step >= settings.steps
    if main and (complete or (stopped and step > 0)):
        # Stopped by max_time, the directory is a usable model all the same: the best weights
        # so far, their maps and metrics; the checkpoint stays for --resume.
        _finish(model, out, dataset, settings, loop)
    distributed.barrier(world)  # the model directory is complete before any rank returns
    return TrainResult(out, step, settings.steps, loop["seconds"], loop["best_score"], complete)


def _log(handle, record: dict) -> None:
    handle.write(json.dumps(record) + "\n")
    handle.flush()


def _checkpoint(out, model, optimizers, loop, started) -> None:
    """Save the loop's state, its training time counted up to now."""
    now = time.perf_counter()
    loop["seconds"] = loop.get("seconds", 0.0) + now - loop.pop("_since", started)
    loop["_since"] = now
    save_checkpoint(out / LAST, model, optimizers, {k: v for k, v in loop.items() if k != "_since"})


def _finish(model, out: Path, dataset: _Data, settings: TrainingSettings, loop: dict) -> None:
    """Save the best weights as the model and write metrics.json from the held-out split."""
    from caloforge.evaluation.evaluate import write_metrics_json
    from caloforge.training.validation import holdout_metrics

    model.cpu()
    if (out / BEST).exists():
        model.load_weights_from(out / BEST)
    model.after_training(dataset.showers, dataset.energy, dataset.conditions)
    model.save(out)
    metrics = holdout_metrics(model, dataset, seed=settings.seed)
    metrics["best_step"] = loop["best_step"]
    write_metrics_json(metrics, out)
