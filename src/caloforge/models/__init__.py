"""Generative model families, a registry of their names, and the pretrained models.

Families are imported only when used: listing them costs nothing.
"""

from __future__ import annotations

import importlib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from caloforge.errors import CaloforgeError, checked

__all__ = [
    "FAMILIES",
    "FamilyOption",
    "families",
    "family_options",
    "get_family",
    "load_model",
    "pretrained_models",
    "resolve_model",
]

FAMILIES: dict[str, tuple[str, str, str]] = {
    "wgan-gp-lhcb": (
        "caloforge.models.wgan_lhcb",
        "LHCbWGAN",
        "LHCb conditional WGAN-GP with a pretrained regressor (arXiv:1812.01319)",
    ),
    "wgan-gp-atlas": (
        "caloforge.models.wgan_atlas",
        "ATLASWGAN",
        "ATLAS dense conditional WGAN-GP with a critic of the total energy (seed 001)",
    ),
    "vae-atlas": (
        "caloforge.models.vae_atlas",
        "ATLASVAE",
        "ATLAS conditional VAE with an inverse-autoregressive-flow posterior (seed 001)",
    ),
    "flow-matching": (
        "caloforge.models.flow_matching",
        "FlowMatching",
        "conditional flow matching: an MLP velocity field integrated by an ODE (arXiv:2210.02747)",
    ),
    "flow-matching-student": (
        "caloforge.models.flow_matching",
        "FlowStudent",
        "one-step student of a flow-matching or energy-first teacher, distilled on its "
        "noise-shower pairs",
    ),
    "energy-first": (
        "caloforge.models.energy_first",
        "EnergyFirst",
        "energy first, then shape: flow matching of the energy per part (layers or rings), then "
        "of the cells given it, rescaled to it (arXiv:2106.05285, 2312.09290, 2405.09629)",
    ),
    "gan-3d": (
        "caloforge.models.gan3d",
        "GAN3D",
        "CERN's 3DGAN: 3D convolutions, energy and angle heads, physics losses (seed 002)",
    ),
    "lstm-lcd": (
        "caloforge.models.lstm_lcd",
        "SliceLSTM",
        "NYU slice-by-slice LSTM on spiral-unrolled showers, L2 or per-pixel likelihood (seed 003)",
    ),
    "wgan-mlp-lcd": (
        "caloforge.models.wgan_mlp_lcd",
        "MLPWGAN",
        "NYU dense WGAN with weight clipping on spiral-unrolled showers (seed 003)",
    ),
    "lagan-lcd": (
        "caloforge.models.lagan_lcd",
        "LAGAN",
        "NYU location-aware GAN: locally-connected layers on a 5x5x25 crop (seed 003)",
    ),
}
"""Family name -> (module, class, one-line description)."""


def families() -> dict[str, str]:
    """Family names and their descriptions."""
    return {name: description for name, (_, _, description) in FAMILIES.items()}


def get_family(name: str):
    """The GenerativeModel subclass of a family."""
    try:
        module, cls, _ = FAMILIES[name]
    except KeyError:
        known = ", ".join(FAMILIES)
        raise CaloforgeError(f"unknown model family {name!r}; families: {known}") from None
    return getattr(importlib.import_module(module), cls)


@dataclass(frozen=True)
class FamilyOption:
    """One option of a family, as ``caloforge models show`` lists it."""

    name: str
    type: str
    default: str
    description: str


def family_options(name: str) -> list[FamilyOption]:
    """The options a user may give a family (``train -o KEY=VALUE``): every field of its config
    but those every config holds and the training sets."""
    from caloforge.models.base import ModelConfig

    config = get_family(name).config_class
    options = []
    for key, field in config.model_fields.items():
        if key in ModelConfig.model_fields:
            continue
        kind = field.annotation
        plain = isinstance(kind, type) and not typing.get_args(kind)
        text = kind.__name__ if plain else str(kind).replace("typing.", "")
        default = field.get_default(call_default_factory=True)
        options.append(FamilyOption(key, text, repr(default), field.description or ""))
    return options


def pretrained_models() -> list[str]:
    """Names of the pretrained models that ship with caloforge."""
    folder = resources.files("caloforge") / "pretrained"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())


def resolve_model(name_or_dir: str | Path) -> Path:
    """The directory of a pretrained model name, or the given directory."""
    text = str(name_or_dir)
    if text in pretrained_models():
        return Path(str(resources.files("caloforge") / "pretrained" / text))
    path = Path(name_or_dir)
    if not path.is_dir():
        known = ", ".join(pretrained_models()) or "none"
        raise CaloforgeError(
            f"no model directory {path} and no pretrained model of that name (pretrained: {known})"
        )
    return path


@checked
def load_model(name_or_dir: str | Path):
    """A trained model from its directory or a pretrained model's name; not a training still
    running or stopped by a signal, whose directory holds the initial weights until it ends."""
    from caloforge.models.base import read_config
    from caloforge.training.loop import LAST, LOG

    directory = resolve_model(name_or_dir)
    begun = (directory / LOG).exists() or (directory / LAST).exists()
    if begun and not (directory / "metrics.json").exists():
        raise CaloforgeError(
            f"{directory} is a training that has not ended: its weights are the initial ones "
            "until it does (continue it with caloforge train --resume)"
        )
    config = read_config(directory)
    return get_family(config.family).load(directory)
