"""The batch-system recipes in deploy/ parse, and call caloforge with options it has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from caloforge.cli import app

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


@pytest.mark.parametrize("script", sorted(DEPLOY.glob("slurm/*.sbatch")), ids=lambda p: p.name)
def test_slurm_scripts_are_valid_bash(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "#SBATCH" in script.read_text()


def test_kubernetes_manifests_parse_as_their_kinds():
    kinds = {}
    for path in DEPLOY.glob("kubernetes/*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            kinds[doc["kind"]] = doc
    job = kinds["Job"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert "JOB_COMPLETION_INDEX" in job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    replicas = kinds["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}


def test_recipes_use_options_caloforge_has():
    import typer.main

    commands = {c.name: c for c in typer.main.get_command(app).commands.values()}
    for path in DEPLOY.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        for command in ("simulate", "train"):
            options = {o for p in commands[command].params for o in p.opts}
            pattern = rf"(?:caloforge|CALOFORGE)\"?,?\s+\"?{command}\b[^\n]*(?:\n\s+--[^\n]*)*"
            for line in re.findall(pattern, text):
                for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line):
                    assert option in options, f"{path.name}: caloforge {command} has no {option}"
