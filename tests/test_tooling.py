"""The setup helper and the benchmark entry points run on real inputs."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_apt_ensure_is_silent_when_packages_are_installed():
    p = subprocess.run([str(ROOT / "scripts" / "apt-ensure"), "bash", "coreutils"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""


def test_overhead_benchmark_runs_on_digits(capsys):
    from bench.overhead import main

    result = main(["--rounds", "1", "--data", "digits"])
    assert result["trainer_s"] > 0 and result["plain_s"] > 0
    assert result["ratio"] == result["trainer_s"] / result["plain_s"]
    assert "median s/epoch" in capsys.readouterr().out


def test_step_parts_split_a_training_step_and_replay_its_matrix_products():
    from bench.overhead import _Products, step_parts

    parts = step_parts("stacked", 2, "digits", batches=10)
    assert all(len(v) == 2 and min(v) > 0 for v in parts.values())
    for i in range(2):
        assert parts["step"][i] == pytest.approx(parts["forward"][i] + parts["backward"][i] + parts["optimizer"][i])
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    with _Products() as products:
        torch.addmm(torch.zeros(3), a, b.t()[:, :3]).sum()
    (func, operands, _), = products.calls
    assert operands[2].stride() == (1, 4) and torch.equal(func(*operands), torch.addmm(torch.zeros(3), a, b.t()[:, :3]))
    with pytest.raises(ValueError, match="not an autoencoder"):
        step_parts("gan", 1, "digits", batches=2)


def test_a_bench_run_keeps_other_sections_and_the_subsections_added_under_its_own(tmp_path):
    from bench.__main__ import previous_sections

    results = tmp_path / "RESULTS.md"
    results.write_text("# AE Lab benchmark results\n\n## The app\n\n| old table |\n\n### Memory, later\n\nnotes\n\n"
                       "### Start, later\n\nmore\n\n## Hostile files\n\nkept\n")
    others, subsections = previous_sections(results, ["The app", "GPU"])
    assert others == ["## Hostile files\n\nkept\n"]
    assert subsections == {"The app": ["### Memory, later\n\nnotes\n\n### Start, later\n\nmore", ""]}
    assert previous_sections(tmp_path / "missing.md", ["The app"]) == ([], {})


def test_load_benchmark_command_line_is_bounded_and_names_pages():
    from bench.load import PAGES, parse_args

    args = parse_args(["--visitors", "3", "--pages", "Home, Runs"])
    assert args.visitors == 3 and args.pages == [("Home", "AE Lab"), ("Runs", "Runs")]
    assert parse_args([]).pages == PAGES
    for bad in (["--pages", "Home,Nowhere"], ["--pages", ","], ["--visitors", "21"], ["--seconds", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_steady_benchmark_times_a_real_trainer_run_in_a_fresh_process():
    from bench.steady import measure

    m = measure("stacked", 4, threads=1, eval_batch=256)
    assert len(m["ms"]) == 5 and all(ms > 0 for ms in m["ms"])   # epochs 2..6, each 4 real steps
    assert m["faults_per_step"] >= 0


def test_bench_reports_spreads_the_host_and_its_kind():
    from bench.__main__ import cpu_model, host_speed, spread

    assert spread([3.0, 1.0, 2.0]) == "2.00 (1.00-3.00)"
    host = host_speed()
    assert host["python_mops"] > 1 and host["matmul_gflops_1t"] > 1
    assert "family" in cpu_model() or not Path("/proc/cpuinfo").exists()


def test_the_app_bench_finds_workers_started_from_any_thread():
    # A job's thread starts its worker and lives as long as the job: /proc lists the worker under that thread,
    # not under the server's main thread.
    import os
    import sys
    import threading

    from bench.app import children

    started, job_done = [], threading.Event()

    def job_thread():
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]))
        job_done.wait(30)

    thread = threading.Thread(target=job_thread)
    thread.start()
    try:
        while not started:
            thread.join(0.05)
        assert started[0].pid in children(os.getpid())
    finally:
        job_done.set()
        thread.join()
        started[0].kill()
        started[0].wait()


def test_the_app_bench_reads_pss_seldom_and_only_when_asked():
    # smaps_rollup walks every mapping of a process: read every 0.1 s it took half a core from the app measured
    import os
    import sys
    import time

    from bench.app import RssSampler

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    # PSS every 0.5 s, RSS every 0.1 s: RSS-only rows between them even where a loaded machine slows each read
    sampler = RssSampler(os.getpid(), pss_every=0.5)
    sampler.start()
    try:
        time.sleep(1.6)
        sampler.pss = False
        switched = time.perf_counter()
        time.sleep(0.6)
    finally:
        sampler.running = False
        sampler.join()
        child.kill()
        child.wait()
    rows = [(t, row) for t, row in sampler.samples if os.getpid() in row and child.pid in row]
    with_pss = [t for t, row in rows if row[os.getpid()][2] is not None]
    assert len(with_pss) >= 2 and all(b - a >= 0.49 for a, b in zip(with_pss, with_pss[1:]))   # every 0.5 s
    assert any(t < switched and row[os.getpid()][2] is None for t, row in rows)   # RSS read in between
    assert all(t < switched for t in with_pss)
    assert all(row[child.pid][2] is not None for t, row in rows if t in with_pss)   # all processes in a PSS row
    assert sampler.peak_total(0, shared_once=True) > 0   # rows without PSS are left out, not summed as None
    assert sampler.peak_total(switched, shared_once=True) == 0.0
    assert sampler.peak(switched) > 10   # this process's RSS, MiB


def test_the_bench_reports_the_cpu_time_stolen_by_the_hypervisor(monkeypatch):
    import os
    import time
    from pathlib import Path

    import bench.__main__ as bench

    (result, share) = bench.stolen(lambda x: x * 2, 21)
    assert result == 42 and 0.0 <= share <= 100.0
    # what /proc/stat says: 'cpu  user nice system idle iowait irq softirq steal ...', in jiffies over all CPUs
    steal = iter([1000, 1000 + 0.5 * (os.cpu_count() or 1) * 100 * 0.25])
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: f"cpu  1 2 3 4 5 6 7 {int(next(steal))} 0 0\n"
                        if str(self) == "/proc/stat" else real_read(self, *a, **k))
    monkeypatch.setattr(bench.os, "sysconf", lambda name: 100)
    _, share = bench.stolen(time.sleep, 0.5)
    assert 20 < share <= 25   # a quarter of the CPUs' time, over a call of at least 0.5 s


def test_the_app_bench_times_the_apps_projection_task_as_a_library_call(monkeypatch):
    from aelab import tasks
    from aelab.runs import examples_dir
    from bench.app import library_tsne

    calls = []
    projection = tasks.projection
    monkeypatch.setattr(tasks, "projection", lambda *a, **k: calls.append((a, k)) or projection(*a, **k))
    assert library_tsne(examples_dir(), n=150) > 0
    (run, n, method, dims), options = calls[0]
    assert (n, method, dims) == (150, "tsne", 2) and run.path.parent == examples_dir()
    assert options == {"seed": 0, "perplexity": 30.0, "learning_rate": "auto", "max_iter": 750}   # the page's


def test_gpu_benchmark_runs_its_cases_on_any_device(capsys):
    from bench.gpu import main

    main(["--device", "cpu", "--data", "digits", "--cases", "stacked-32", "--precisions", "fp32,bf16", "--no-ddp",
          "--json"])
    result = json.loads(capsys.readouterr().out)
    fp32, bf16 = result["rows"]
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16") and fp32["batch_size"] == 32
    assert 0 < bf16["val_loss"] < 1 and 0 < fp32["val_loss"] < 1 and fp32["val_loss"] != bf16["val_loss"]
    assert result["environment"]["torch"] == torch.__version__ and result["ddp"] is None


def test_gan_speed_bench_trains_a_preset_on_the_first_images_only():
    from bench.__main__ import GAN_STEPS
    from bench.gan import aelab_gan

    row = aelab_gan("gan", 0, epochs=2, images=3 * 32, samples=False)
    assert len(row["step_seconds"]) == 2 and "images" not in row
    assert all(abs(s - t / 3) < 1e-12 for s, t in zip(row["step_seconds"], row["seconds"]))   # 3 steps an epoch
    assert set(GAN_STEPS) == {"gan", "dcgan"} and all(epochs >= 6 for epochs, _ in GAN_STEPS.values())


def book_gan_record(steps: int, seed: int = 0) -> dict:
    """The book's simple-GAN loop written out in plain torch (Glorot-uniform kernels as (in, out), zero biases, SELU,
    a sigmoid output, the discriminator on 32 fakes then 32 reals, then the generator through it, Keras's RMSprop),
    recorded as `keras_ref.gan_lockstep` saves it."""
    import torch.nn.functional as F

    rng = torch.Generator().manual_seed(seed)
    weights = []
    for sizes in ((30, 100, 150, 784), (784, 150, 100, 1)):
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            limit = (6 / (n_in + n_out)) ** 0.5
            weights += [(torch.rand(n_in, n_out, generator=rng) * 2 - 1) * limit, torch.zeros(n_out)]
    record = {f"init{j}": w.numpy().copy() for j, w in enumerate(weights)}
    params = [w.clone().requires_grad_() for w in weights]
    generator, discriminator, squares = params[:6], params[6:], [torch.zeros_like(p) for p in params]

    def mlp(layers, x):   # x (B, n) -> the last layer's pre-activation
        for k in range(0, len(layers), 2):
            x = x @ layers[k] + layers[k + 1]
            x = F.selu(x) if k < len(layers) - 2 else x
        return x

    def rmsprop(layers, layer_squares, loss):
        with torch.no_grad():
            for p, v, grad in zip(layers, layer_squares, torch.autograd.grad(loss, layers)):
                v.mul_(0.9).addcmul_(grad, grad, value=0.1)
                p -= 1e-3 * grad / (v + 1e-7).sqrt()

    labels = torch.cat([torch.zeros(32, 1), torch.ones(32, 1)])
    for s in range(steps):
        x = torch.rand(32, 28, 28, generator=rng)
        z1, z2 = torch.randn(32, 30, generator=rng), torch.randn(32, 30, generator=rng)
        with torch.no_grad():
            fakes = torch.sigmoid(mlp(generator, z1))
        d_loss = F.binary_cross_entropy_with_logits(mlp(discriminator, torch.cat([fakes, x.reshape(32, -1)])), labels)
        rmsprop(discriminator, squares[6:], d_loss)
        g_loss = F.binary_cross_entropy_with_logits(mlp(discriminator, torch.sigmoid(mlp(generator, z2))),
                                                    torch.ones(32, 1))
        rmsprop(generator, squares[:6], g_loss)
        record.update({f"z1_{s}": z1.numpy(), f"z2_{s}": z2.numpy(), f"x_{s}": x.numpy(),
                       f"loss_{s}": np.array([d_loss.item(), g_loss.item()])})
    return record


def test_the_gan_preset_replays_the_books_loop_step_for_step():
    from bench.gan import first_step_apart, recorded_losses, replay_gan

    record = book_gan_record(steps=8)
    book = recorded_losses(record)
    ours = replay_gan(record)
    assert ours.shape == (8, 2) and first_step_apart(ours, book, tolerance=1e-5) is None
    assert abs(ours[0, 0] - book[0, 0]) < 1e-6 and not np.allclose(book[0], book[-1], atol=1e-2)   # it trains
    record["x_5"] = 1 - record["x_5"]   # another batch at step 5
    assert first_step_apart(replay_gan(record), book, tolerance=1e-5) == 5
    with pytest.raises(ValueError, match="layer 0"):
        replay_gan({**record, "init0": record["init0"].T})


# answers like keras_ref.py --lockstep: checks its arguments, saves the prepared record where it is asked to and
# prints where, as a JSON line
LOCKSTEP_STAND_IN = """import json, shutil, sys
args = sys.argv[1:]
assert args[args.index('--lockstep') + 1] == '6' and args[args.index('--seed') + 1] == '3', args
out = args[args.index('--lockstep-out') + 1]
shutil.copy(sys.argv[0].replace('keras_ref.py', 'prepared.npz'), out)
print(json.dumps({"preset": "gan", "lockstep": 6, "record": out}))
"""


def test_the_lockstep_report_replays_the_keras_record_beside_a_nudged_replay(tmp_path, monkeypatch):
    import bench.gan

    np.savez(tmp_path / "prepared.npz", **book_gan_record(steps=6))
    (tmp_path / "keras_ref.py").write_text(LOCKSTEP_STAND_IN)
    monkeypatch.setattr(bench.gan, "keras_python", lambda: Path(sys.executable))
    monkeypatch.setattr(bench.gan, "HERE", tmp_path)
    report = bench.gan.lockstep(6, seed=3).splitlines()
    assert report[0].startswith("seed 3, 6 steps: AE Lab parts from Keras at step None; AE Lab from itself nudged")
    assert report[2:4] == ["| step | Keras d / g loss | AE Lab d / g loss | AE Lab nudged d / g loss |",
                           "|---|---|---|---|"]
    assert [row.split(" | ")[0] for row in report[4:]] == [f"| {s}" for s in range(6)]   # every step of 6
    keras_cell, ours_cell = report[4].split(" | ")[1:3]
    assert keras_cell == ours_cell   # step 0, to 5 decimals


def test_a_failed_keras_run_raises_with_what_it_wrote_to_stderr(tmp_path, monkeypatch):
    import bench.gan

    (tmp_path / "keras_ref.py").write_text("import sys; print('half a line'); "
                                           "sys.exit('ValueError: no preset ' + sys.argv[2])")
    monkeypatch.setattr(bench.gan, "keras_python", lambda: Path(sys.executable))
    monkeypatch.setattr(bench.gan, "HERE", tmp_path)
    with pytest.raises(RuntimeError, match=r"keras_ref.py --presets wgan exited with 1: ValueError: no preset wgan"):
        bench.gan.keras_ref("--presets", "wgan")


def test_the_presets_bench_estimates_an_epoch_from_each_block_between_handoffs():
    from bench.__main__ import block_estimates, paired_blocks

    # fit 0: two epochs of 11 batches at 0.1 s (validation 0.5 s, then 0.25 s); fit 1: 12 batches at 0.2 s
    # (validation 1.0 s). Blocks of 4 batches, counted over the fits: block 2 (batches 9-12) spans fit 0's two
    # epochs, block 5 (21-24) its second epoch and fit 1; blocks 0 and 6 are the first of their fits.
    first = [[1.0 + 0.1 * i for i in range(11)], [10.0 + 0.1 * i for i in range(11)]]
    second = [[50.0 + 0.2 * i for i in range(12)]]
    first[0][4:] = [t + 5.0 for t in first[0][4:]]   # batch 5 ends after a 5 s handoff: block 1 starts after it
    run = {"batch_ends": [first, second], "validation_seconds": [0.5, 0.25, 1.0]}
    got = block_estimates(run, every=4)
    assert got.keys() == {1, 3, 4, 7}
    assert got[1] == pytest.approx(11 * 0.1 + 0.5)
    assert got[3] == pytest.approx(11 * 0.1 + 0.25) and got[4] == pytest.approx(11 * 0.1 + 0.25)
    assert got[7] == pytest.approx(12 * 0.2 + 1.0)
    # each block at its own pace, its first step (after the other tool's turn) left out
    slow = {"batch_ends": [[[0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 8.0, 9.0, 10.0]]], "validation_seconds": [0.5]}
    assert block_estimates(slow, every=3) == pytest.approx({1: 9 * 2.0 + 0.5, 2: 9 * 1.0 + 0.5})
    with pytest.raises(ValueError, match="no pace"):
        block_estimates(slow, every=1)
    # pairs: only the blocks that both tools kept, Keras's first
    other = {"batch_ends": [[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]], "validation_seconds": [0.0]}
    (pair,) = paired_blocks({"keras": slow, "aelab": other}, every=3)
    assert pair == pytest.approx((18.5, 6.0))


def test_the_presets_bench_clocks_every_batch_of_every_phase_of_a_real_run():
    import aelab
    from bench.__main__ import BatchClock

    cfg = aelab.with_overrides(aelab.preset("stacked-greedy", "digits"),
                               {"hidden": "32,16", "latent": 8, "epochs": 2, "finetune_epochs": 1, "batch_size": 128})
    ds = aelab.load_dataset("digits")
    split = ds.split(0.1)
    clock = BatchClock()
    fit = aelab.Trainer(cfg.train, callbacks=[clock]).fit(aelab.build_model(cfg.model, ds.image_shape, 0), split)
    batches = -(-len(split.x_train) // 128)
    assert [len(f) for f in clock.fits] == [2, 2, 2, 1]   # three greedy phases and the fine-tuning, per epoch
    ends = [t for f in clock.fits for e in f for t in e]
    assert all(len(e) == batches for f in clock.fits for e in f) and ends == sorted(ends)
    assert len(fit.history["train_seconds"]) == 7


# answers like keras_ref.py --serve: a run that asks for handoffs "trains" STAND_IN_BATCHES batches (it records the
# time of each), says {"handoff": n} after every `handoff` of them and waits for a line; it dies on a preset it does
# not know
STAND_IN_BATCHES = 12
KERAS_STAND_IN = f"""import json, sys, time
print('a warning on stdout')
print(json.dumps({{'ready': True, 'tensorflow': '0'}}), flush=True)
for line in sys.stdin:
    r = json.loads(line)
    if r['preset'] == 'dead':
        sys.exit('no such preset: dead')
    ends = []
    for n in range(1, {STAND_IN_BATCHES} + 1 if r.get('handoff') else 0):
        ends.append(time.perf_counter())
        if n % r['handoff'] == 0:
            print(json.dumps({{'handoff': n}}), flush=True)
            sys.stdin.readline()
    print(json.dumps({{'preset': r['preset'], 'epochs': r['epochs'], 'seen': r, 'batch_ends': [[ends]]}}), flush=True)
"""


def keras_stand_in(tmp_path, monkeypatch):
    import bench.__main__ as bench

    (tmp_path / "keras_ref.py").write_text(KERAS_STAND_IN)
    monkeypatch.setattr(bench, "keras_python", lambda: Path(sys.executable))
    monkeypatch.setattr(bench, "HERE", tmp_path)
    return bench


def test_the_keras_server_protocol_and_a_dead_server_says_why(tmp_path, monkeypatch):
    bench = keras_stand_in(tmp_path, monkeypatch)
    with bench.KerasServer() as keras:
        assert keras.tensorflow == "0"
        assert keras.run("vae", 1, batch_ends=True)["seen"] == {"preset": "vae", "epochs": 1, "batch_ends": True}
        assert keras.run("conv")["epochs"] is None
    with bench.KerasServer() as keras, \
            pytest.raises(RuntimeError, match=r"the Keras process ended \(exit 1\): no such preset: dead"):
        keras.run("dead")


def test_keras_and_a_real_aelab_run_take_turns_every_block_of_batches(tmp_path, monkeypatch):
    import aelab

    bench = keras_stand_in(tmp_path, monkeypatch)
    cfg = aelab.with_overrides(aelab.preset("stacked", "digits"), {"hidden": "32", "latent": 8, "epochs": 1,
                                                                    "batch_size": 128})
    ds = aelab.load_dataset("digits")
    split = ds.split(0.1)
    batches = -(-len(split.x_train) // 128)
    assert batches == STAND_IN_BATCHES - 1   # Keras has one batch more: finish() must let it train to its end
    clock = bench.BatchClock()
    with bench.KerasServer() as keras:
        keras.start("stacked", 1, every=3)
        aelab.Trainer(cfg.train, callbacks=[clock, bench.Handoff(keras, 3)]).fit(
            aelab.build_model(cfg.model, ds.image_shape, 0), split)
        result = keras.finish()
        keras.resume()   # the run has ended: nothing to resume
        assert keras.run("vae")["seen"] == {"preset": "vae", "epochs": None, "batch_ends": False}   # still serving
    with bench.KerasServer() as paused:
        paused.start("stacked", 1, every=3)   # and AE Lab's side fails: closing stops the paused run at once
    assert paused._proc.returncode == -signal.SIGKILL
    assert result["seen"] == {"preset": "stacked", "epochs": 1, "batch_ends": True, "handoff": 3}
    theirs, ours = result["batch_ends"][0][0], clock.fits[0][0]
    assert len(theirs) == STAND_IN_BATCHES and len(ours) == batches
    for j in range(0, batches, 3):   # Keras's block, then ours, then Keras's next
        assert max(theirs[j:j + 3]) < min(ours[j:j + 3])
        if j + 3 < len(theirs):
            assert max(ours[j:j + 3]) < min(theirs[j + 3:j + 6])


def test_the_fidelity_check_flags_a_moved_loss_and_a_distant_keras_twin():
    from bench.__main__ import autoencoder_presets
    from bench.fidelity import FIDELITY_EPOCHS, past_book_bound, table

    rows = {"stacked": {"epochs": 10, "aelab": 0.2875, "keras": 0.2887},
            "vae": {"epochs": 25, "aelab": 0.3210, "keras": 0.3160}, "conv": {"epochs": 5, "aelab": 0.27, "keras": 0.27}}
    lines = table(rows, {"stacked": {"aelab": 0.2872}, "vae": {"aelab": 0.3178}})
    assert lines[2] == "| `stacked` | 10 | 0.2875 | 0.2887 | -0.0012 | 0.2872 | +0.0003 |"
    assert lines[3] == ("| `vae` | 25 | 0.3210 | 0.3160 | +0.0050 (over 0.004) | 0.3178 | +0.0032 **over the limit** |")
    assert lines[4] == "| `conv` | 5 | 0.2700 | 0.2700 | +0.0000 |  |  |"   # no record yet
    assert set(FIDELITY_EPOCHS) <= {"recurrent", "stacked-greedy"}
    assert past_book_bound(rows) == [] and past_book_bound({"stacked": {**rows["stacked"], "aelab": 0.2905}}) == ["stacked"]
    assert "above the book's 0.29" in table({"stacked": {**rows["stacked"], "aelab": 0.2905}}, {})[2]
    # what make bench and the fidelity check run: the presets with a Keras twin
    assert len(autoencoder_presets()) == 12 and {"gan", "dcgan", "classifier"}.isdisjoint(autoencoder_presets())
    assert autoencoder_presets(["vae", "gan", "stacked"]) == ["stacked", "vae"]   # in the presets' order
