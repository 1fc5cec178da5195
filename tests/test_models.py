"""One test per architecture x objective: shapes, finite loss, learning, weights change, save/load."""
import itertools
from dataclasses import replace

import pytest
import torch

import aelab
from aelab.config import AutoencoderConfig, ConfigError, DataConfig, RunConfig, TrainConfig
from aelab.data import to_float
from aelab.models import build_model
from aelab.runs import RunStore

ARCHS = {
    "dense": AutoencoderConfig(arch="dense", hidden=(32,), latent=8),
    "dense-tied": AutoencoderConfig(arch="dense", hidden=(32,), latent=8, tied=True),
    "conv": AutoencoderConfig(arch="conv", channels=(8, 16), latent=0),
    "conv-dense-code": AutoencoderConfig(arch="conv", channels=(8, 16), latent=8),
    "rnn": AutoencoderConfig(arch="rnn", hidden=(16,), latent=8),
}
OBJECTIVES = {
    "plain": {},
    "gaussian": {"noise": "gaussian", "noise_level": 0.2},
    "dropout": {"noise": "dropout", "noise_level": 0.3},
    "l1": {"sparsity": "l1", "sparsity_weight": 1e-3},
    "kl": {"sparsity": "kl", "sparsity_weight": 0.05, "code_activation": "sigmoid"},
    "variational": {"variational": True, "code_activation": "linear"},
    "mse": {"loss": "mse"},
    "linear-output": {"loss": "mse", "output": "linear"},
    "code-noise": {"code_noise": 2.0, "code_activation": "sigmoid"},
}
INVALID = {("dense-tied", "variational"), ("conv", "variational"), ("rnn", "variational"), ("conv", "code-noise"),
           ("rnn", "code-noise")}
COMBOS = [(a, o) for a, o in itertools.product(ARCHS, OBJECTIVES) if (a, o) not in INVALID]


def make(arch, objective, image_shape=(1, 8, 8), seed=0):
    return build_model(replace(ARCHS[arch], **OBJECTIVES[objective]), image_shape, seed)


def recon_loss(model, x):
    model.eval()
    with torch.no_grad():
        return aelab.losses.reconstruction(model.decode(model.encode(x)), x, model.cfg.loss, model.cfg.output).item()


@pytest.mark.parametrize("arch, objective", COMBOS)
def test_architecture_x_objective(arch, objective, digits, tmp_path):
    torch.manual_seed(0)
    x = to_float(digits.x_train[:256])
    model = make(arch, objective)

    out = model(x[:16])
    assert out.logits.shape == (16, 1, 8, 8)
    recon = model.to_image(out.logits)
    assert recon.min() >= 0 and recon.max() <= 1
    assert out.z.shape == (16, model.latent_dim) and model.encode(x[:16]).shape == out.z.shape
    assert torch.isfinite(out.loss) and out.loss.ndim == 0
    assert "recon" in out.terms
    if objective in ("l1", "kl"):
        assert out.terms["sparsity"] > 0
    if objective == "variational":
        assert {"kl", "nelbo"} <= set(out.terms)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_before = recon_loss(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(60):
        xb = x[(step * 32) % 256:][:32]
        out = model(xb)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert recon_loss(model, x) < 0.95 * loss_before
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before), f"unchanged: {set(before) - set(changed)}"

    cfg = RunConfig(DataConfig("digits"), model.cfg, TrainConfig())
    run = RunStore(tmp_path).save(model, cfg, {"epoch": [1.0]}, {"image_shape": [1, 8, 8]})
    loaded = run.load_model()
    model.eval()
    assert torch.equal(loaded.encode(x[:16]), model.encode(x[:16]))
    assert torch.equal(loaded.decode(model.encode(x[:16])), model.decode(model.encode(x[:16])))


def test_tied_decoder_shares_encoder_weights():
    model = make("dense-tied", "plain", (1, 28, 28))
    untied = make("dense", "plain", (1, 28, 28))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # tied: the decoder keeps only its biases (32 + 64)
    assert n(untied) - n(model) == 8 * 32 + 32 * 784
    with torch.no_grad():
        model.to_code[0].weight.mul_(0)
    assert model.decoder[0].tied_to[0].weight.abs().sum() == 0


def test_a_tied_layer_is_the_transpose_with_the_same_gradients():
    encoder = torch.nn.Linear(12, 5)
    tied = aelab.models.layers.TiedLinear(encoder)
    torch.nn.init.normal_(tied.bias)
    x, h = torch.randn(4, 12), torch.randn(4, 5)
    expected = h @ encoder.weight.detach() + tied.bias.detach()
    assert torch.allclose(tied(h), expected, atol=1e-6)
    (tied(h).square().sum() + encoder(x).square().sum()).backward()
    reference = torch.nn.Linear(12, 5)
    reference.load_state_dict(encoder.state_dict())
    bias = tied.bias.detach().clone().requires_grad_()
    (torch.nn.functional.linear(h, reference.weight.t(), bias).square().sum()
     + reference(x).square().sum()).backward()
    assert torch.allclose(encoder.weight.grad, reference.weight.grad, atol=1e-5)
    assert torch.allclose(tied.bias.grad, bias.grad, atol=1e-5)


def test_keras_initialisation_is_glorot_uniform_with_zero_bias():
    model = build_model(AutoencoderConfig(hidden=(100,), latent=30), (1, 28, 28), seed=1)
    w = model.trunk[1].weight
    limit = (6 / (784 + 100)) ** 0.5
    assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit
    assert model.trunk[1].bias.abs().sum() == 0
    assert torch.equal(w, build_model(AutoencoderConfig(hidden=(100,), latent=30), (1, 28, 28), seed=1).trunk[1].weight)


@pytest.mark.parametrize("size", [(1, 28, 28), (1, 8, 8), (1, 20, 13), (3, 32, 32)])
def test_conv_decoder_restores_any_input_size(size):
    for latent in (0, 12):
        model = build_model(AutoencoderConfig(arch="conv", channels=(4, 8), latent=latent), size)
        assert model.decode(model.encode(torch.rand(2, *size))).shape == (2, *size)


def test_book_conv_shapes():
    model = build_model(AutoencoderConfig(arch="conv", channels=(16, 32, 64), latent=0), (1, 28, 28))
    assert model.latent_dim == 64 * 3 * 3
    convt = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.padding, m.output_padding) for m in convt] == [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((1, 1), (1, 1))]


def test_too_many_pooling_steps_is_a_config_error():
    with pytest.raises(ConfigError, match="pooling"):
        build_model(AutoencoderConfig(arch="conv", channels=(4, 8, 16, 32)), (1, 8, 8))


def test_noise_only_in_training():
    model = make("dense", "gaussian")
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)
    model.train()
    assert not torch.equal(model(x).logits, model(x).logits)


def test_sampling_needs_a_vae():
    with pytest.raises(TypeError, match="variational"):
        make("dense", "plain").sample(4)
    assert make("dense", "variational").sample(4).shape == (4, 1, 8, 8)


def test_rounded_accuracy_is_the_books_metric_and_recorded_per_epoch(digits):
    from aelab.losses import rounded_accuracy

    x = torch.tensor([[0.0, 0.4, 0.5, 0.6, 1.0]])   # rounds (half to even) to 0, 0, 0, 1, 1
    logits = torch.tensor([[-1.0, 1.0, -0.1, 0.2, 3.0]])   # sigmoid rounds to 0, 1, 0, 1, 1
    assert rounded_accuracy(x, logits).item() == pytest.approx(0.8)
    cfg = aelab.preset("stacked", "digits")
    cfg.model.hidden, cfg.model.latent, cfg.train.epochs = (16,), 4, 2
    h = aelab.train(cfg, evaluate=False).fit.history
    assert len(h["val_rounded_acc"]) == len(h["rounded_acc"]) == 2 and 0.5 < h["val_rounded_acc"][-1] <= 1
    mse = aelab.preset("stacked", "digits")
    mse.model.loss, mse.train.epochs = "mse", 1
    assert "val_rounded_acc" not in aelab.train(mse, evaluate=False).fit.history   # BCE autoencoders only


def test_dropout_layer_drops_at_its_rate_scales_the_rest_and_only_in_training():
    from aelab.models.layers import Dropout

    layer, x = Dropout(0.4), torch.ones(200_000)
    torch.manual_seed(0)
    y = layer.train()(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.6, abs=0.005)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.6))   # inverted dropout: the mean stays 1
    assert torch.equal(layer.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
    xg = torch.ones(1000, requires_grad=True)
    layer.train()(xg).sum().backward()
    grads = xg.grad.unique().tolist()   # gradients flow through the kept elements only, scaled as they are
    assert len(grads) == 2 and grads[0] == 0.0 and grads[1] == pytest.approx(1 / 0.6)


@pytest.mark.parametrize("target", [0.1, 0.02, 0.5])
def test_kl_sparsity_is_the_sum_of_bernoulli_kls_and_their_gradient(target):
    """The fused form (a BCE less the target's entropy) against KL(t || r) written out, value and gradient."""
    from aelab.losses import kl_sparsity

    z = (torch.rand(32, 300, generator=torch.Generator().manual_seed(1)) ** 3).requires_grad_()
    rate = z.mean(0)
    by_hand = (target * torch.log(target / rate) + (1 - target) * torch.log((1 - target) / (1 - rate))).sum()
    (expected,) = torch.autograd.grad(by_hand, z)
    fused = kl_sparsity(z, target)
    (grad,) = torch.autograd.grad(fused, z)
    assert fused.item() == pytest.approx(by_hand.item(), rel=1e-5) and fused.item() > 0
    assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-7)
    at_target = torch.full((4, 300), target, requires_grad=True)
    assert abs(kl_sparsity(at_target, target).item()) < 1e-4   # no penalty at the target rate
