"""Does IAF do its job? How far each VAE's aggregated posterior is from N(0, 1).

Usage: python benchmarks/vae_iaf_check.py DATA.h5 MODEL [MODEL ...] [--n 5000]

For each ``vae-atlas`` model (say one trained with ``-o iaf_steps=0`` and one with IAF), one z is
drawn from q(z | x, c) for each of the first N showers of DATA (held-out Geant4 showers), and each
latent dimension's sample is compared with the N(0, 1) the decoder is sampled from at generation
time: mean, standard deviation and the Kolmogorov-Smirnov distance. Prints a table and one JSON
line. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from caloforge.data.showerfile import ShowerFile
from caloforge.models import load_model


def posterior_distances(model, data, seed: int) -> list[dict[str, float]]:
    batch = model.to_training(data.showers, data.incident_energies[:, 0], data.conditions)
    z = model.aggregated_posterior(batch, torch.Generator().manual_seed(seed)).numpy()
    return [
        {
            "mean": float(z[:, i].mean()),
            "std": float(z[:, i].std()),
            "ks": float(stats.kstest(z[:, i], "norm").statistic),
        }
        for i in range(z.shape[1])
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = ShowerFile(args.data).read(0, args.n)
    rows = {}
    for name in args.models:
        model = load_model(name)
        if model.family != "vae-atlas":
            parser.error(f"{name} is a {model.family} model, not vae-atlas")
        rows[name] = {
            "iaf_steps": model.config.iaf_steps,
            "dimensions": posterior_distances(model, data, args.seed),
        }
    print(f"{'model':40s} {'K':>2s} {'dim':>3s} {'mean':>8s} {'std':>8s} {'KS':>8s}")
    for name, row in rows.items():
        for i, d in enumerate(row["dimensions"]):
            print(
                f"{name[-40:]:40s} {row['iaf_steps']:2d} {i:3d} {d['mean']:8.3f} "
                f"{d['std']:8.3f} {d['ks']:8.3f}"
            )
        print(f"{'':40s}    mean KS {np.mean([d['ks'] for d in row['dimensions']]):.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
