"""Code diagnostics on hand-made codes and weights: activation histograms, a VAE's KL per dimension."""
import math

import numpy as np
import pytest
import torch

import aelab
from aelab import diagnostics, figures
from aelab.config import AutoencoderConfig
from aelab.models import build_model


def test_gaussian_kl_per_dimension_by_hand():
    mean = torch.tensor([[0.0, 1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(4.0)]])
    kl = diagnostics.gaussian_kl_per_dim(mean, logvar)[0].tolist()
    assert kl == pytest.approx([0.0, 0.5, 0.5 * (4 - 1 - math.log(4))])


def test_a_vae_with_two_collapsed_dimensions_has_two_active_units(digits):
    vae = build_model(AutoencoderConfig(hidden=(16,), latent=4, variational=True, code_activation="linear"),
                      digits.image_shape)
    with torch.no_grad():   # every image: mean (2, -2, 0, 0), variance 1 -> KL 2, 2, 0, 0 nats
        vae.to_mean.weight.zero_()
        vae.to_mean.bias.copy_(torch.tensor([2.0, -2.0, 0.0, 0.0]))
        vae.to_logvar.weight.zero_()
        vae.to_logvar.bias.zero_()
    d = diagnostics.code_diagnostics(vae, digits.x_test[:50])
    assert d.codes.shape == (50, 4) and d.kl_per_dim.tolist() == pytest.approx([2.0, 2.0, 0.0, 0.0])
    assert d.active_units == 2 and d.sparsity_target is None
    assert d.unit_means.tolist() == pytest.approx([2.0, -2.0, 0.0, 0.0])
    fig = figures.kl_figure(d.kl_per_dim, diagnostics.ACTIVE_KL_NATS)
    assert fig.layout.title.text.endswith("2 of 4 active") and list(fig.data[0].x[:2]) in (["z0", "z1"], ["z1", "z0"])


def test_plain_and_sparse_codes_have_no_kl_and_a_sparse_target(digits):
    sparse = aelab.preset("sparse-kl", "digits").model   # the book's: 300 sigmoid codes, target rate 0.1
    model = build_model(sparse, digits.image_shape)
    d = diagnostics.code_diagnostics(model, digits.x_test[:30])
    assert d.kl_per_dim is None and d.active_units is None and d.sparsity_target == sparse.sparsity_target
    everything, means = figures.activation_figures(d.codes, d.sparsity_target)
    assert sum(everything.data[0].y) == d.codes.size and sum(means.data[0].y) == d.codes.shape[1]
    assert any(f"target {sparse.sparsity_target:g}" in a.text for a in means.layout.annotations)
    plain = diagnostics.code_diagnostics(build_model(AutoencoderConfig(hidden=(16,), latent=8), digits.image_shape),
                                         digits.x_test[:30])
    assert plain.sparsity_target is None and np.isfinite(plain.codes).all()
