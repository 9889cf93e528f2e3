"""Geant4 seconds per shower on this machine, per built-in detector and energy.

One worker process (one core), electrons at normal incidence on the face centre (photons for
atlas-like), the physics list and cut of the defaults; the time per shower is taken between the
first and the last finished event, so Geant4's initialisation is not counted. This is the
baseline every model's speed-up is measured against.

Usage: python benchmarks/geant4_speed.py [--energies 1,10,50] [--detectors lhcb-ecal,...]
Prints a table and one JSON line. Never run as a test.
"""

from __future__ import annotations

import argparse
import json

from caloforge.detectors import builtin_detectors, load_detector
from caloforge.sources import source_from_yaml
from caloforge.timing import geant4_ms_per_shower

EVENTS_PER_GEV = 60.0
"""Events timed at each energy: about 60 GeV of showers in all, at least 4 events."""


def source(particle: str, energy_gev: float):
    return source_from_yaml(
        f"name: speed\nparticles: [{particle}]\n"
        f"energy: {{kind: fixed, value: {energy_gev * 1e3}}}\nconditions: [energy]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--energies", default="1,10,50", help="GeV, comma-separated")
    parser.add_argument("--detectors", default=",".join(builtin_detectors()))
    args = parser.parse_args()
    energies = [float(e) for e in args.energies.split(",")]
    rows = []
    for name in args.detectors.split(","):
        detector = load_detector(name)
        particle = "gamma" if name == "atlas-like" else "e-"
        for energy in energies:
            n = max(4, int(EVENTS_PER_GEV / energy))
            ms = geant4_ms_per_shower(detector, source(particle, energy), n, seed=1)
            rows.append(
                {
                    "detector": name,
                    "particle": particle,
                    "energy_gev": energy,
                    "events": n,
                    "seconds_per_shower": ms / 1e3,
                }
            )
            print(f"{name:11s} {particle:6s} {energy:5g} GeV  {ms / 1e3:7.3f} s/shower  ({n} ev)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
