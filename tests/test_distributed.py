"""Data-parallel training under torchrun, on CPU with gloo: real launches of ``python -m aelab train``."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aelab import RunStore
from aelab.cli import main
from aelab.distributed import Context
from aelab.runs import Run

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
SMALL = ["--data", "digits", "--json", "--no-eval"]


def torchrun(*args, nproc=2, launch=("--standalone",), timeout=240, **popen):
    """``torchrun --nproc-per-node N ARGS`` from the repository root; the finished process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*TORCHRUN, *launch, "--nproc-per-node", str(nproc), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout, **popen)


def only_run(runs_dir: Path) -> Run:
    names = [p.name for p in runs_dir.iterdir()]
    assert len(names) == 1, names   # one run, and nothing half-written beside it
    return RunStore(runs_dir).open(names[0])


def test_shards_split_every_batch_once_and_weigh_it_exactly():
    for world in (1, 2, 3, 5):
        for n in (1, 2, 7, 31, 32):
            idx = torch.arange(100, 100 + n)
            parts = [Context(r, world, "gloo", torch.device("cpu")).shard(idx) for r in range(world)]
            real = [(i, s) for i, s in parts if s > 0]
            assert torch.equal(torch.cat([i for i, _ in real]), idx)            # every image once, in order
            assert sum(s for _, s in parts) / world == pytest.approx(1.0)       # the mean over the whole batch
            assert max(len(i) for i, _ in real) - min(len(i) for i, _ in real) <= 1
            assert all(len(i) == 1 for i, s in parts if s == 0)                 # an empty part steps at weight 0
            ranges = [Context(r, world, "gloo", torch.device("cpu")).shard_range(n) for r in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_a_convolutional_gan_with_batch_norm_trains_distributed(tmp_path):
    # the DCGAN: convolutions and transposed convolutions, two networks stepping in turn, synchronised batch norm
    p = torchrun("-m", "aelab", "train", "--preset", "dcgan", "--epochs", "1", "--channels", "8,16", *SMALL,
                 "--runs-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout)["status"] == "finished"
    model = only_run(tmp_path).load_model()   # a trained batch norm loads back as plain BatchNorm
    assert not any("Sync" in type(m).__name__ for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) > 0 for m in norms)
    images = model.sample(4)
    assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()


def test_synchronised_batch_norm_equals_batch_norm_on_the_whole_batch(tmp_path):
    out = tmp_path / "errors.json"
    p = torchrun(str(ROOT / "tests" / "ddp_script.py"), "batchnorm", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    errors = json.loads(out.read_text())
    assert set(errors) == {"BatchNorm2d", "BatchNorm1d"}
    for name, errs in errors.items():
        for what, err in errs.items():
            assert err < 1e-4, (name, what, err)


def test_a_failing_rank_ends_every_rank_and_writes_no_run(tmp_path):
    p = torchrun(str(ROOT / "tests" / "ddp_script.py"), "fail", "1", "--", "train", "--preset", "stacked",
                 "--epochs", "3", *SMALL, "--runs-dir", str(tmp_path))
    assert p.returncode != 0
    assert "error: rank 1: injected failure" in p.stderr
    assert p.stdout == ""
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_ctrl_c_stops_every_rank_and_saves_a_stopped_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "aelab", "train",
                             "--preset", "stacked", "--epochs", "300", *SMALL, "--runs-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    err_lines = []
    for line in proc.stderr:   # rank 0's progress: wait for the first epoch's line
        err_lines.append(line)
        if "val_loss" in line:
            break
    proc.send_signal(signal.SIGINT)   # what Ctrl-C in the terminal sends to torchrun
    out, err = proc.communicate(timeout=90)
    summary = json.loads(out)
    assert summary["status"] == "stopped" and 1 <= summary["epochs"] < 300, "".join(err_lines) + err
    run = only_run(tmp_path)
    assert run.meta["status"] == "stopped" and run.meta["distributed"]["world_size"] == 2


def test_two_nodes_meet_at_a_c10d_rendezvous_and_train_the_same_run_as_one_process(tmp_path, capsys):
    """Two torchrun agents (two "machines", one process each) meet at a c10d rendezvous and train one run;
    batch 31 splits 16 + 15, and the weighted mean makes their updates the single process's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flags = ["train", "--preset", "stacked", "--epochs", "2", "--batch-size", "31", *SMALL]
    args = [*TORCHRUN, *launch, "--nproc-per-node", "1", "-m", "aelab", *flags, "--runs-dir", str(tmp_path / "ddp")]
    nodes = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for _ in range(2)]
    outs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outs]
    (summary,) = [json.loads(out) for out, _ in outs if out.strip()]   # exactly one JSON object: rank 0's
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert summary["distributed"] == {"world_size": 2, "backend": "gloo",
                                      "devices": [f"{socket.gethostname()}:cpu"] * 2}
    assert main([*flags, "--runs-dir", str(tmp_path / "one")]) == 0
    one = json.loads(capsys.readouterr().out)
    assert abs(summary["val_loss"] - one["val_loss"]) < 1e-3
    run = only_run(tmp_path / "ddp")
    assert run.meta["distributed"]["world_size"] == 2 and run.trained_on == "2 x cpu (gloo)"   # the Runs page's
    ddp_curve, one_curve = run.history["val_loss"], only_run(tmp_path / "one").history["val_loss"]
    assert len(ddp_curve) == 2 and max(abs(a - b) for a, b in zip(ddp_curve, one_curve)) < 1e-3
