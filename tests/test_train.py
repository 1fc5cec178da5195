import threading

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from aelab.config import AutoencoderConfig, TrainConfig
from aelab.latent import CodeRecorder
from aelab.models import build_model
from aelab.optim import make_optimizer
from aelab.train import Callback, PreviewRecorder, Trainer, TrainingDiverged, resolve_device

SMALL = AutoencoderConfig(hidden=(32,), latent=8)


def fit(digits, model_cfg=SMALL, callbacks=(), stop=None, read_every=None, **train):
    cfg = TrainConfig(**{"lr": 0.5, "epochs": 2, "batch_size": 64, **train})
    model = build_model(model_cfg, digits.image_shape, cfg.seed)
    return model, Trainer(cfg, list(callbacks), stop, loss_read_every=read_every).fit(model, digits.split(0.1))


def test_history_and_learning(digits):
    previews, codes = PreviewRecorder(), CodeRecorder(n_images=50)
    _, result = fit(digits, callbacks=[previews, codes], epochs=3)
    h = result.history
    assert h["epoch"] == [1.0, 2.0, 3.0] and result.status == "finished"
    assert {"loss", "val_loss", "recon", "val_recon", "seconds"} <= set(h)
    assert h["val_loss"][-1] < h["val_loss"][0]
    # the recording callbacks: before training and after each epoch
    assert previews.latest.shape == (8, 8, 8) and len(previews.frames) == 4 and previews.inputs.shape == (8, 8, 8)
    timeline = codes.timeline()
    assert timeline["codes"].shape == (4, 50, 8) and timeline["code_labels"].shape == (50,)
    assert not np.array_equal(timeline["codes"][0], timeline["codes"][-1])


def test_term_history_for_vae_and_sparse(digits):
    _, vae = fit(digits, AutoencoderConfig(hidden=(32,), latent=2, variational=True, code_activation="linear"),
                 optimizer="rmsprop", lr=1e-3)
    assert {"kl", "val_kl", "nelbo", "val_nelbo"} <= set(vae.history)
    # loss = recon + KL / pixels (beta 1)
    assert vae.history["val_loss"][-1] == pytest.approx(vae.history["val_recon"][-1] + vae.history["val_kl"][-1] / 64,
                                                        rel=1e-4)
    _, sparse = fit(digits, AutoencoderConfig(hidden=(32,), latent=16, code_activation="sigmoid", sparsity="kl",
                                        sparsity_weight=0.05))
    assert "val_sparsity" in sparse.history


def test_same_seed_same_numbers(digits):
    cfg = AutoencoderConfig(hidden=(32,), latent=8, noise="gaussian", noise_level=0.2)
    a, ra = fit(digits, cfg)
    b, rb = fit(digits, cfg)
    c, rc = fit(digits, cfg, seed=7)
    assert ra.history["val_loss"] == rb.history["val_loss"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert ra.history["val_loss"] != rc.history["val_loss"]


def test_stop_is_honoured_within_one_batch(digits):
    stop = threading.Event()
    seen = []

    class StopAfterThree(Callback):
        def on_batch_end(self, state):
            seen.append((state.epoch, state.batch))
            if state.batch == 3:
                stop.set()

    _, result = fit(digits, callbacks=[StopAfterThree()], stop=stop, epochs=5)
    assert result.status == "stopped" and result.stopped_at == (1, 3)
    assert seen[-1] == (1, 3)
    assert result.history["epoch"] == [pytest.approx(3 / 22)]   # 1350 images / 64 = 22 batches
    assert np.isfinite(result.history["val_loss"][0])


def test_non_finite_loss_stops_with_a_clear_message(digits):
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch \d+/\d+.*smaller learning rate"):
        fit(digits, AutoencoderConfig(hidden=(32,), latent=8, activation="linear"), lr=1e30)


def test_losses_read_in_groups_give_the_same_numbers_and_name_the_batch_that_diverged(digits):
    # off the CPU the trainer reads the losses every 50 batches (no host synchronisation per batch); forced here
    _, every = fit(digits)
    _, grouped = fit(digits, read_every=7)   # 22 batches an epoch: reads after 7, 14, 21 and 22
    assert grouped.history["loss"] == pytest.approx(every.history["loss"], rel=1e-12)
    assert grouped.history["val_loss"] == every.history["val_loss"]
    messages = []
    for read_every in (None, 7):
        with pytest.raises(TrainingDiverged) as e:
            fit(digits, AutoencoderConfig(hidden=(32,), latent=8, activation="linear"), lr=1e30, read_every=read_every)
        messages.append(str(e.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(digits, precision):
    _, fp32 = fit(digits, epochs=3)
    model, mixed = fit(digits, epochs=3, precision=precision)
    assert all(p.dtype == torch.float32 for p in model.parameters())   # autocast: fp32 weights, low-precision passes
    assert mixed.history["val_loss"] != fp32.history["val_loss"]        # it did run in lower precision
    assert mixed.history["val_loss"][-1] == pytest.approx(fp32.history["val_loss"][-1], abs=5e-3)
    assert mixed.history["val_loss"][-1] < mixed.history["val_loss"][0]


def test_compiled_steps_give_the_same_numbers(digits):
    # batch 45: 1,350 training images in 30 full batches, so one compilation serves every step
    called = set()

    class StepNetwork(Callback):
        def on_batch_end(self, state):
            called.add(type(state.model.stepped("model")).__name__)

    model, compiled = fit(digits, callbacks=[StepNetwork()], batch_size=45, epochs=1, compile=True)
    assert called == {"OptimizedModule"}   # every step went through torch.compile's module
    _, eager = fit(digits, batch_size=45, epochs=1)
    assert compiled.history["val_loss"][0] == pytest.approx(eager.history["val_loss"][0], abs=1e-5)
    assert "_orig_mod" not in "".join(model.state_dict())   # the saved weights are the plain model's


def test_callbacks_see_every_batch_and_epoch(digits):
    events = []

    class Recorder(Callback):
        def on_train_begin(self, s): events.append("begin")
        def on_batch_end(self, s): events.append("batch")
        def on_epoch_end(self, s): events.append(("epoch", s.epoch, previews.latest.shape))
        def on_train_end(self, s): events.append(("end", s.status))

    previews = PreviewRecorder()   # callbacks run in order: the preview is recorded before Recorder sees it
    fit(digits, callbacks=[previews, Recorder()], epochs=2)
    assert events[0] == "begin" and events[-1] == ("end", "finished")
    assert events.count("batch") == 2 * 22
    assert ("epoch", 2, (8, 8, 8)) in events


@pytest.mark.parametrize("name", ["sgd", "adam", "nadam", "rmsprop"])
def test_optimizers(name):
    p = [torch.nn.Parameter(torch.ones(3))]
    opt = make_optimizer(p, TrainConfig(optimizer=name, lr=0.1, momentum=0.5 if name == "sgd" else 0.0))
    p[0].sum().backward()
    opt.step()
    assert (p[0] < 1).all()


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_gives_torchs_numbers_to_the_bit(momentum, nesterov):
    gen = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 7)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = make_optimizer(ours, TrainConfig(optimizer="sgd", lr=0.3, momentum=momentum, nesterov=nesterov))
    reference = torch.optim.SGD(theirs, lr=0.3, momentum=momentum, nesterov=nesterov)
    for i in range(6):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for params, optimizer in ((ours, opt), (theirs, reference)):
            optimizer.zero_grad(set_to_none=True)
            assert all(p.grad is None for p in params)
            for p, g in zip(params, grads):
                if i != 2 or p.dim() == 2:   # a step where a weight has no gradient: it keeps still
                    p.grad = g.clone()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    # its state is torch's: a checkpoint of either continues in the other
    reference.load_state_dict(opt.state_dict())
    assert opt.state_dict()["state"].keys() == ({0, 1, 2} if momentum else set())
    opt.zero_grad(set_to_none=False)   # torch's form: the gradients kept, as zeros
    assert all(p.grad is not None and not p.grad.any() for p in ours)


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_step_hooks_and_the_profiler_still_see_our_optimisers(optimizer):
    w = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer([w], TrainConfig(optimizer=optimizer, lr=0.1))
    seen = []
    w.grad = torch.ones(3)
    opt.step()   # nothing watching
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    opt.step()
    global_pre = register_optimizer_step_pre_hook(lambda o, a, k: seen.append("global"))
    opt.step()
    pre.remove(), post.remove(), global_pre.remove()
    opt.step()
    assert seen == ["pre", "post", "global", "pre", "post"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    assert any(e.name.startswith("Optimizer.step#") for e in prof.events())
    assert w.detach().lt(1).all()   # and the steps did update the weight
    loss_calls = []
    assert opt.step(lambda: loss_calls.append(1) or torch.tensor(2.0)).item() == 2.0 and loss_calls == [1]


def test_adam_is_fused_and_follows_the_loop_form():
    gen = torch.Generator().manual_seed(1)
    ours = torch.nn.Parameter(torch.randn(40, generator=gen))
    theirs = torch.nn.Parameter(ours.detach().clone())
    opt = make_optimizer([ours], TrainConfig(optimizer="adam", lr=1e-2))
    reference = torch.optim.Adam([theirs], lr=1e-2, eps=1e-7, foreach=False)
    assert opt.defaults["fused"]
    for _ in range(30):
        g = torch.randn(40, generator=gen)
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        reference.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_follows_keras_with_epsilon_inside_the_root(momentum):
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50, generator=gen))
    expected, v, m = p.detach().clone(), torch.zeros(50), torch.zeros(50)
    opt = make_optimizer([p], TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, momentum=momentum))
    for i in range(20):   # gradients from 1 down to 1e-5: where the two forms of RMSprop part
        g = torch.randn(50, generator=gen) * 10.0 ** -(i % 6)
        p.grad = g.clone()
        opt.step()
        v = 0.9 * v + 0.1 * g * g                        # Keras / TensorFlow
        m = momentum * m + 1e-3 * g / torch.sqrt(v + 1e-7)
        expected -= m
    assert torch.allclose(p.detach(), expected, atol=1e-7)
    torch_form = torch.nn.Parameter(torch.zeros(1))
    other = torch.optim.RMSprop([torch_form], lr=1e-3, alpha=0.9, eps=1e-7)
    torch_form.grad = torch.full((1,), 1e-6)
    other.step()
    assert torch_form.item() < -2e-3   # PyTorch's form takes a step of ~lr / sqrt(0.1) on a 1e-6 gradient


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")
