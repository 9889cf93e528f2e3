"""What a cluster throws at long jobs: preemption signals, a full disk, damaged checkpoints and two
writers of one output. Each fault is made for real (signals to real processes, a file-size limit
on a real write) and the run resumed to what an undisturbed run gives."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors.numpy import load_file

from caloforge.data.showerfile import ShowerFile, partial_path
from caloforge.errors import CaloforgeError
from caloforge.files import locked
from caloforge.generation import generate
from caloforge.stopping import REQUEUE, Stopped
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY, option_args

CALOFORGE = [sys.executable, "-m", "caloforge"]


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _committed(partial: Path) -> int:
    """Events a running writer has committed to ``partial``, 0 while it cannot be read.

    Its size is no sign: the writer claims the disk space of an append before writing it.
    """
    try:
        with h5py.File(partial, "r", locking=False) as h5:
            return int(h5.attrs["n_committed"])
    except (OSError, KeyError, RuntimeError):
        return 0


def _showers(path) -> np.ndarray:
    return ShowerFile(path).read().showers


def test_train_stopped_by_sigusr1_requeues_and_resumes_exactly(tmp_path, lhcb_like):
    args = [
        *CALOFORGE, "train", "wgan-gp-lhcb", "--data", str(lhcb_like), "--steps", "40",
        "--batch-size", "32", "--checkpoint-every", "1000", "--eval-every", "1000",
        *option_args(TINY["wgan-gp-lhcb"]),
    ]  # fmt: skip
    straight = subprocess.run([*args, "--out", str(tmp_path / "a")], capture_output=True)
    assert straight.returncode == 0, straight.stderr[-2000:]
    out = tmp_path / "b"
    run = subprocess.Popen([*args, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    assert "/40 steps" in run.stderr.readline()  # the first step is done
    run.send_signal(signal.SIGUSR1)
    _, err = run.communicate(timeout=120)
    assert run.returncode == REQUEUE, err
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGUSR1 at step")
    assert "Traceback" not in err
    resumed = subprocess.run([*args[:7], "--out", str(out), "--resume"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_simulate_stopped_by_sigterm_keeps_its_events_and_resumes_to_the_same_file(tmp_path):
    args = [
        *CALOFORGE, "simulate", "lhcb-ecal", "--source", "lhcb", "--energy", "2GeV",
        "--n", "60", "--seed", "5", "--jobs", "2",
    ]  # fmt: skip
    out = tmp_path / "cut.h5"
    # A batch system signals every process of the job: the workers leave it to the parent.
    run = subprocess.Popen(
        [*args, "--out", str(out)], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    partial = partial_path(out)
    _wait_for(lambda: _committed(partial) > 0)
    os.killpg(run.pid, signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == REQUEUE, err
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM")
    kept = len(ShowerFile(partial))
    assert 0 < kept < 60 and f"{kept} events kept" in err
    resumed = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run([*args, "--jobs", "1", "--out", str(tmp_path / "a.h5")])
    assert straight.returncode == 0
    np.testing.assert_array_equal(_showers(out), _showers(tmp_path / "a.h5"))


def _workers(pid: int) -> list[int]:
    """The multiprocessing workers the process ``pid`` spawned."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_simulate_signalled_while_its_workers_start_stops_in_one_line(tmp_path):
    args = [
        *CALOFORGE, "simulate", "lhcb-ecal", "--source", "lhcb", "--energy", "2GeV",
        "--n", "20", "--seed", "5", "--jobs", "2", "--out", str(tmp_path / "early.h5"),
    ]  # fmt: skip
    run = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: len(_workers(run.pid)) == 2)  # still importing: an import takes seconds
    os.killpg(run.pid, signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == REQUEUE, err
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM"), err


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_a_killed_worker_ends_simulate_in_one_line_and_resume_finishes(tmp_path):
    args = [
        *CALOFORGE, "simulate", "lhcb-ecal", "--source", "lhcb", "--energy", "2GeV",
        "--n", "40", "--seed", "5", "--jobs", "2",
    ]  # fmt: skip
    out = tmp_path / "killed.h5"
    run = subprocess.Popen([*args, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    partial = partial_path(out)
    _wait_for(lambda: _committed(partial) > 0)
    os.kill(_workers(run.pid)[0], signal.SIGKILL)  # the system's out-of-memory killer
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    assert "Traceback" not in err and "worker process died" in err.strip().splitlines()[-1]
    resumed = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(ShowerFile(out)) == 40


def test_generate_stopped_by_sigterm_resumes_to_the_same_file(tmp_path, tiny_model, lhcb_like):
    kw = {"conditions_from": lhcb_like, "batch_size": 40, "seed": 2}
    generate(tiny_model, tmp_path / "a.h5", **kw)

    def terminate(done, total):
        if done == 80:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Stopped, match="stopped by SIGTERM: 80 showers kept") as stop:
        generate(tiny_model, tmp_path / "b.h5", progress=terminate, **kw)
    assert stop.value.exit_status == REQUEUE
    generate(tiny_model, tmp_path / "b.h5", resume=True, **kw)
    np.testing.assert_array_equal(_showers(tmp_path / "a.h5"), _showers(tmp_path / "b.h5"))


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_stops_generate_in_one_line_and_resume_finishes(
    tmp_path, tiny_model, lhcb_like
):
    common = ["--conditions-from", str(lhcb_like), "--batch-size", "20", "--seed", "2"]
    out = tmp_path / "g.h5"
    args = [*CALOFORGE, "generate", str(tiny_model), "--out", str(out), *common]
    full = subprocess.run(
        args, capture_output=True, text=True, preexec_fn=_file_size_limit(300_000)
    )
    assert full.returncode == 1, full.stderr[-2000:]
    assert len(full.stderr.strip().splitlines()) <= 2, full.stderr  # the progress line, the error
    last = full.stderr.strip().splitlines()[-1]
    assert (
        f"cannot write {partial_path(out)}: File too large" in last and "events committed" in last
    )
    kept = len(ShowerFile(partial_path(out)))  # what was committed is readable
    assert 0 < kept < 300 and f"{kept} events committed" in last
    again = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    generate(tiny_model, tmp_path / "a.h5", conditions_from=lhcb_like, batch_size=20, seed=2)
    np.testing.assert_array_equal(_showers(out), _showers(tmp_path / "a.h5"))


@pytest.mark.parametrize("command", ["select", "export", "evaluate"])
def test_a_full_disk_stops_other_writers_in_one_line(command, tmp_path, tiny_model, lhcb_like):
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"s{i}.h5")
        generate(tiny_model, shards[-1], conditions_from=lhcb_like, seed=i)
    args = {
        "select": ["select", str(shards[0]), "--out", str(tmp_path / "m.h5")],
        "export": ["export", str(tiny_model), "--out", str(tmp_path / "model.onnx")],
        "evaluate": [
            "evaluate",
            *map(str, shards),
            "--out",
            str(tmp_path / "e"),
            "--no-classifier",
        ],
    }[command]
    full = subprocess.run(
        [*CALOFORGE, *args], capture_output=True, text=True, preexec_fn=_file_size_limit(20_000)
    )
    assert full.returncode == 1, full.stderr[-2000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert errors and errors[0].startswith("error: cannot write"), full.stderr[-2000:]
    assert "Traceback" not in full.stderr


def test_a_full_disk_stops_a_checkpoint_in_one_line(tmp_path, lhcb_like):
    out = tmp_path / "m"
    args = [
        *CALOFORGE, "train", "wgan-gp-lhcb", "--data", str(lhcb_like), "--out", str(out),
        "--steps", "4", "--batch-size", "32", *option_args(TINY["wgan-gp-lhcb"]),
    ]  # fmt: skip
    # Big enough for the config and the first weights, too small for a checkpoint.
    full = subprocess.run(args, capture_output=True, text=True, preexec_fn=_file_size_limit(60_000))
    assert full.returncode == 1
    assert len(full.stderr.strip().splitlines()) == 1, full.stderr
    assert "cannot write" in full.stderr and "bytes written, the old file kept" in full.stderr


SETTINGS = TrainingSettings(steps=6, batch_size=32, checkpoint_every=2, eval_every=100)


def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, lhcb_like):
    options = TINY["wgan-gp-lhcb"]
    train("wgan-gp-lhcb", lhcb_like, tmp_path / "a", settings=SETTINGS, model_options=options)
    out = tmp_path / "b"
    train("wgan-gp-lhcb", lhcb_like, out, settings=SETTINGS, model_options=options, max_time=0)
    train("wgan-gp-lhcb", lhcb_like, out, resume=True, steps=4)  # checkpoints at 2 and 4
    last = out / "checkpoints" / "last.safetensors"
    data = bytearray(last.read_bytes())
    data[-100] ^= 0xFF  # one flipped bit in a tensor, as a failing disk or network would
    last.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged; resuming from previous.safetensors .step 2"):
        result = train("wgan-gp-lhcb", lhcb_like, out, resume=True, steps=6)
    assert result.complete
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # Neither intact: refused in one line.
    for name in ("last", "previous"):
        path = out / "checkpoints" / f"{name}.safetensors"
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CaloforgeError, match="no intact checkpoint"):
        train("wgan-gp-lhcb", lhcb_like, out, resume=True, steps=8)


def test_a_second_writer_of_one_output_is_refused_and_a_dead_ones_lock_is_not(
    tmp_path, lhcb_like, tiny_model, cli
):
    out = tmp_path / "m"
    with locked(out):
        with pytest.raises(CaloforgeError, match="being written by another process"):
            train("wgan-gp-lhcb", lhcb_like, out, settings=SETTINGS)
        code, _, err = cli(
            "generate", str(tiny_model), "--out", str(out), "--conditions-from", str(lhcb_like)
        )
        assert code == 1 and len(err.strip().splitlines()) == 1 and "another process" in err
    # A killed writer leaves its lock file; the kernel dropped its lock with the process.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from caloforge.files import locked\nwith locked({str(out)!r}):\n"
         "    import time; print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(CaloforgeError, match=f"pid {holder.pid}"):
        generate(tiny_model, out, conditions_from=lhcb_like)
    holder.kill()
    holder.wait()
    assert (tmp_path / "m.lock").exists()
    result = generate(tiny_model, out, conditions_from=lhcb_like)
    assert result.n_events == len(ShowerFile(lhcb_like))


def test_sigterm_to_a_data_parallel_launcher_reaches_the_ranks_and_requeues(tmp_path):
    from tests.conftest import write_atlas_like

    data = write_atlas_like(tmp_path / "atlas.h5", 600, seed=4)
    out = tmp_path / "m"
    run = subprocess.Popen(
        [
            *CALOFORGE, "train", "wgan-gp-atlas", "--data", str(data), "--out", str(out),
            "--steps", "2000", "--batch-size", "32", "--checkpoint-every", "1000",
            "--eval-every", "1000", "--nproc", "2", *option_args(TINY["wgan-gp-atlas"]),
        ],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "/2000 steps" in run.stderr.readline()
    run.send_signal(signal.SIGTERM)  # Kubernetes signals the container's first process only
    _, err = run.communicate(timeout=120)
    assert run.returncode == REQUEUE, err
    assert "error: stopped by SIGTERM at step" in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if line.startswith("error: stopped by SIGTERM at step")
    ]
    assert "Traceback" not in err
    assert (out / "checkpoints" / "last.safetensors").exists()


def _rank_pid(tag: str, rank: int) -> int | None:
    """The pid of local rank ``rank`` of the run whose environment carries ``tag``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if tag.encode() in env and f"LOCAL_RANK={rank}".encode() in env:
            return int(entry)
    return None


def test_a_lost_rank_ends_the_job_in_one_line_and_resume_finishes_it(tmp_path):
    from tests.conftest import write_atlas_like

    data = write_atlas_like(tmp_path / "atlas.h5", 600, seed=4)
    out = tmp_path / "m"
    args = [
        *CALOFORGE, "train", "wgan-gp-atlas", "--data", str(data),
        "--steps", "60", "--batch-size", "32", "--checkpoint-every", "5", "--eval-every", "1000",
        *option_args(TINY["wgan-gp-atlas"]),
    ]  # fmt: skip
    tag = f"CALOFORGE_TEST_RUN={tmp_path.name}"
    env = {**os.environ, tag.split("=")[0]: tag.split("=")[1], "TMPDIR": str(tmp_path)}
    run = subprocess.Popen(
        [*args, "--out", str(out), "--nproc", "2"], stderr=subprocess.PIPE, text=True, env=env
    )
    _wait_for(lambda: (out / "checkpoints" / "last.safetensors").exists())
    pid = _rank_pid(tag, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    _, err = run.communicate(timeout=120)
    assert time.monotonic() - killed < 60  # the other rank noticed, nothing hangs
    assert run.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"rank 1 (pid {pid}) ended by SIGKILL" in errors[0], err
    assert "Traceback" not in err
    report = errors[0].rpartition("torchrun's report: ")[2].rstrip(")")
    assert Path(report).parent == tmp_path and "Root Cause" in Path(report).read_text()
    resumed = subprocess.run(
        [*args, "--out", str(out), "--resume", "--nproc", "2"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run([*args, "--out", str(tmp_path / "a"), "--data-parts", "2"])
    assert straight.returncode == 0
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(out / "model.safetensors")
    for key in a:
        np.testing.assert_allclose(
            a[key], b[key], rtol=2e-4, atol=2e-6 + 1e-3 * np.abs(a[key]).max()
        )


def test_files_whose_attributes_lie_are_refused_in_one_line(tmp_path, lhcb_like, cli):
    import shutil

    import h5py

    from caloforge.detectors import load_detector

    lies = {
        "the detector it records (atlas-like) has 266": (
            "detector",
            load_detector("atlas-like").to_yaml(),
        ),
        "a sampling fraction lies in (0, 1]": ("sampling_fraction", -3.0),
        "n_committed 1000000": ("n_committed", 10**6),
    }
    for says, (key, value) in lies.items():
        path = tmp_path / f"{key}.h5"
        shutil.copy(lhcb_like, path)
        with h5py.File(path, "a") as f:
            f.attrs[key] = value
        code, _, err = cli("info", str(path))
        assert code == 1 and len(err.strip().splitlines()) == 1 and says in err, err


def test_an_onnx_file_that_is_not_caloforges_is_refused(tmp_path):
    import torch

    from caloforge.runtimes.onnx import OnnxSampler

    path = tmp_path / "other.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(path), dynamo=False)
    with pytest.raises(CaloforgeError, match="is not a caloforge model"):
        OnnxSampler(path)


def test_a_model_package_that_is_not_caloforges_is_refused(tmp_path):
    from caloforge.runtimes.aoti import AotiSampler

    path = tmp_path / "other.pt2"
    path.write_bytes(b"PK\x03\x04 not a package")
    with pytest.raises(CaloforgeError, match="cannot load model package"):
        AotiSampler(path)


def test_ctrl_c_stops_train_at_a_steps_end_with_status_130(tmp_path, lhcb_like):
    out = tmp_path / "m"
    run = subprocess.Popen(
        [
            *CALOFORGE, "train", "wgan-gp-lhcb", "--data", str(lhcb_like), "--out", str(out),
            "--steps", "400", "--batch-size", "32", "--checkpoint-every", "1000",
            *option_args(TINY["wgan-gp-lhcb"]),
        ],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "/400 steps" in run.stderr.readline()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: stopped by Ctrl-C at step")
    resumed = train("wgan-gp-lhcb", lhcb_like, out, resume=True, max_time=0)
    assert not resumed.complete and 0 < resumed.step < 400


def test_a_full_disk_stops_simulate_and_merge_in_one_line(tmp_path):
    args = [
        *CALOFORGE, "simulate", "lhcb-ecal", "--source", "lhcb", "--energy", "1GeV",
        "--n", "40", "--seed", "5",
    ]  # fmt: skip
    out = tmp_path / "s.h5"
    full = subprocess.run(
        [*args, "--out", str(out)], capture_output=True, text=True,
        preexec_fn=_file_size_limit(120_000),
    )  # fmt: skip
    assert full.returncode == 1, full.stderr[-2000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot write {partial_path(out)}" in errors[0], full.stderr
    assert "Traceback" not in full.stderr
    kept = len(ShowerFile(partial_path(out)))
    assert 0 < kept < 40 and f"{kept} events committed" in errors[0]
    again = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(ShowerFile(out)) == 40
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"shard{i}.h5")
        done = subprocess.run([*args, "--shard", f"{i}/2", "--out", str(shards[-1])])
        assert done.returncode == 0
    merged = subprocess.run(
        [*CALOFORGE, "merge", *map(str, shards), "--out", str(tmp_path / "m.h5")],
        capture_output=True, text=True, preexec_fn=_file_size_limit(120_000),
    )  # fmt: skip
    assert merged.returncode == 1 and "Traceback" not in merged.stderr
    assert merged.stderr.strip().splitlines()[-1].startswith("error: cannot write")
    np.testing.assert_array_equal(
        np.concatenate([_showers(s) for s in shards]), _showers(out)
    )  # the shards of a run are the run


def test_a_lost_machine_ends_both_in_one_line_each(tmp_path):
    import socket

    from tests.conftest import write_atlas_like

    data = write_atlas_like(tmp_path / "atlas.h5", 600, seed=4)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        master = f"127.0.0.1:{s.getsockname()[1]}"
    base = [
        *CALOFORGE, "train", "wgan-gp-atlas", "--data", str(data), "--out", str(tmp_path / "m"),
        "--steps", "5000", "--batch-size", "32", "--checkpoint-every", "5",
        "--eval-every", "100000", "--nnodes", "2", "--master", master, "--rdzv-timeout", "60",
        *option_args(TINY["wgan-gp-atlas"]),
    ]  # fmt: skip
    nodes = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "CALOFORGE_TEST_NODE": f"{tmp_path.name}-{rank}",
            "TMPDIR": str(tmp_path),
        }
        command = [*base, "--node-rank", str(rank)]
        nodes.append(subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env))
    _wait_for(lambda: (tmp_path / "m" / "checkpoints" / "last.safetensors").exists())
    pid = _rank_pid(f"CALOFORGE_TEST_NODE={tmp_path.name}-1", 0)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    errors = []
    for node in nodes:
        _, err = node.communicate(timeout=120)
        assert node.returncode == 1 and "Traceback" not in err, err[-2000:]
        errors.append([line for line in err.splitlines() if line.startswith("error:")])
    assert time.monotonic() - killed < 60
    assert len(errors[1]) == 1 and f"rank 1 (pid {pid}) ended by SIGKILL" in errors[1][0]
    assert len(errors[0]) == 1 and "lost the other ranks" in errors[0][0], errors[0]
