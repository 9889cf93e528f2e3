"""The π⁰ of the nyu source in Geant4: it decays before the calorimeter, two photons arrive, and
their opening angle follows the decay's kinematics.

Simulates π⁰ of the ``nyu`` source (10-100 GeV unless --energy-range) fired at the ``lcd-ecal``
face as ``caloforge simulate`` fires them (from the source's ``flight`` upstream), records every
particle that crosses the face and kills it there, so no shower is simulated. Reports what
arrives per event, the energy it carries against the π⁰'s, how far apart the two photons reach
the face, and their opening angle θ against θ_min = 2 arcsin(m / E):

- an isotropic two-body decay shares the energy as z = E₁ / (E₁ + E₂) uniform in [0, 1] (up to
  the π⁰'s β), and θ ≈ θ_min / (2 √(z (1 − z))): the median of θ / θ_min is 2 / √3 = 1.155 and
  P(θ < 1.5 θ_min) = √(1 − 1/1.5²) = 0.745;
- the invariant mass of the two photons, √(2 E₁ E₂ (1 − cos θ)), is the π⁰'s 134.98 MeV;
- 1.17 % of π⁰ decay to e⁺e⁻γ (Dalitz, PDG), three particles.

Usage: python benchmarks/pi0_decay.py [--n 2000] [--energy-range 10GeV:100GeV] [--seed 1]
Prints a summary and one JSON line. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

import numpy as np
from scipy import stats

from caloforge.detectors import elements_of_detector, load_detector
from caloforge.geant4.app import Geant4App
from caloforge.geant4.datasets import resolve_data
from caloforge.geant4.run import event_seeds
from caloforge.sources import load_source, parse_energy, sample_primaries, with_energy

PI0_MASS = 134.9768  # MeV, PDG 2024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--energy-range", default="10GeV:100GeV")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    lo, hi = (parse_energy(x) for x in args.energy_range.split(":"))
    source = with_energy(load_source("nyu"), energy_range=(lo, hi))
    source = source.model_copy(update={"particles": ("pi0",)})
    detector = load_detector("lcd-ecal")
    arrivals: dict[int, list] = defaultdict(list)

    def record(event, pdg, energy, position, direction) -> bool:
        arrivals[event].append((pdg, energy, np.asarray(direction), np.asarray(position)))
        return True  # killed at the face: no shower

    app = Geant4App(
        detector,
        resolve_data(elements_of_detector(detector)),
        "emstandard",
        0.7,
        face=record,
        flight_mm=source.flight,
    )
    primaries = sample_primaries(source, 0, args.n, args.seed)
    app.run(primaries, event_seeds(args.seed, 0, args.n))

    kinds = Counter(tuple(sorted(hit[0] for hit in arrivals[k])) for k in range(args.n))
    total = primaries.energy + PI0_MASS  # the gun's energy is kinetic
    ratio, z, theta, theta_min, mass, apart = [], [], [], [], [], []
    for k in range(args.n):
        hits = arrivals[k]
        ratio.append(sum(hit[1] for hit in hits) / total[k])
        if [hit[0] for hit in hits] != [22, 22]:
            continue
        (_, e1, d1, x1), (_, e2, d2, x2) = hits
        angle = np.arccos(np.clip(d1 @ d2, -1, 1))
        z.append(e1 / (e1 + e2))
        theta.append(angle)
        theta_min.append(2 * np.arcsin(PI0_MASS / total[k]))
        mass.append(np.sqrt(2 * e1 * e2 * (1 - np.cos(angle))))
        apart.append(np.hypot(*(x1 - x2)[:2]))
    z, theta, theta_min, mass, apart = map(np.asarray, (z, theta, theta_min, mass, apart))
    flight = source.flight + 1.0  # the gun starts 1 mm further upstream
    r = theta / theta_min
    result = {
        "events": args.n,
        "energy_range_mev": [lo, hi],
        "arrivals": {" ".join(map(str, key)) or "none": n for key, n in kinds.most_common()},
        "pi0_reaching_face": kinds.get((111,), 0),
        "two_photon_fraction": len(theta) / args.n,
        "energy_carried_over_pi0": [float(np.min(ratio)), float(np.max(ratio))],
        "median_theta_over_theta_min": float(np.median(r)),
        "expected_median": 2 / np.sqrt(3),
        "fraction_below_1_5_theta_min": float(np.mean(r < 1.5)),
        "expected_fraction": float(np.sqrt(1 - 1 / 1.5**2)),
        "min_theta_over_theta_min": float(r.min()),
        "theta_min_mrad_at_10_and_100_gev": [
            2e3 * np.arcsin(PI0_MASS / 10e3),
            2e3 * np.arcsin(PI0_MASS / 100e3),
        ],
        "share_ks_pvalue_vs_uniform": float(stats.kstest(z, "uniform").pvalue),
        "pair_mass_mev": [float(np.mean(mass)), float(np.std(mass))],
        "flight_mm": flight,
        "median_separation_at_face_mm": float(np.median(apart)),
        "median_separation_over_flight_x_theta": float(np.median(apart / (flight * theta))),
    }
    for key, value in result.items():
        print(f"{key:32s} {value}")
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
