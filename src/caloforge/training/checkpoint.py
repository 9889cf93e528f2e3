"""Checkpoints: weights, optimizer states and loop state in one safetensors file, no pickle.

Everything random in a step is a function of (seed, step) and the batch order a function of
(seed, epoch), so weights, optimizer states and the step number are all a resumed run needs to
continue exactly where the interrupted one stopped.

Each checkpoint carries a SHA-256 of its tensors and metadata, and the one before it is kept
(``previous.safetensors``): a checkpoint cut short or corrupted (a node lost while it was written
to a network filesystem) is found on resume, which falls back to the newest intact one and says
so, or refuses in one line when none is intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from caloforge.data.showerfile import CaloforgeWarning
from caloforge.errors import CaloforgeError
from caloforge.models.base import save_weights

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
) -> None:
    """Write the model, the optimizers and the loop ``state`` (JSON-able) atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"loop": state}
    for name, optimizer in optimizers.items():
        saved = optimizer.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, values in saved["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{name}.{pid}.{key}"] = value
                else:
                    plain.setdefault(str(pid), {})[key] = value
        meta[f"optimizer.{name}"] = {"param_groups": saved["param_groups"], "plain": plain}
    path.parent.mkdir(parents=True, exist_ok=True)
    meta["sha256"] = _digest(tensors, meta)
    if path.exists():
        os.replace(path, previous_path(path))
    save_weights(tensors, path, meta)


def previous_path(path: Path) -> Path:
    """Where the checkpoint before ``path``'s newest is kept."""
    return path.with_name("previous" + path.suffix)


def _digest(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """SHA-256 of the tensors (names, dtypes, shapes, bytes) and the metadata but itself."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint's metadata and tensors, checked against its digest."""
    try:
        with safe_open(path, framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        meta = {k: json.loads(v) for k, v in raw.items()}
    except Exception as exc:  # safetensors raises its own, JSON and OS errors alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CaloforgeError(first) from None
    if "sha256" in meta and _digest(tensors, meta) != meta["sha256"]:
        raise CaloforgeError("its checksum does not match its contents")
    if "loop" not in meta:
        raise CaloforgeError("it holds no training state")
    return meta, tensors


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Restore the model and the optimizers from ``path``; returns the loop state."""
    candidates = [p for p in (path, previous_path(path)) if p.exists()]
    if not candidates:
        raise CaloforgeError(f"no checkpoint at {path}; nothing to resume")
    broken = []
    for candidate in candidates:
        try:
            meta, tensors = _read(candidate)
            break
        except CaloforgeError as exc:
            broken.append(f"{candidate.name} ({exc})")
    else:
        raise CaloforgeError(f"no intact checkpoint in {path.parent}: {'; '.join(broken)}")
    if broken:
        warnings.warn(
            f"checkpoint {broken[0]} is damaged; resuming from {candidate.name} "
            f"(step {meta['loop']['step']})",
            CaloforgeWarning,
            stacklevel=2,
        )
    model.load_state_dict(
        {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    )
    for name, optimizer in optimizers.items():
        saved = meta.get(f"optimizer.{name}")
        if saved is None:
            raise CaloforgeError(f"checkpoint {path} has no state for optimizer {name!r}")
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optimizer.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, field = key[len(prefix) :].split(".", 1)
                state.setdefault(int(pid), {})[field] = value
        for pid, values in saved["plain"].items():
            state.setdefault(int(pid), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return meta["loop"]
