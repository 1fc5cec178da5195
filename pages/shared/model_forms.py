"""The model columns of the Train form, one function per family: (model column, objective column)."""
from __future__ import annotations

import streamlit as st

from aelab.config import ACTIVATIONS, AE_OUTPUTS, BETA_SCHEDULES, MAX_SEED, OBJECTIVES, OPTIMIZERS, OUTPUTS
from pages.shared.i18n import _

# The range of every number field of the form (a share link's value outside it is clamped, with a warning).
FORM_BOUNDS = {
    "latent": (0, 2048), "codings": (1, 2048), "features": (1, 2048), "noise_level": (0.0, 1.0),
    "sparsity_weight": (0.0, 10.0), "sparsity_target": (0.01, 0.99), "beta": (0.0, 100.0), "d_dropout": (0.0, 0.9),
    "d_steps": (1, 10), "label_smoothing": (0.0, 0.45), "d_lr": (0.0, 10.0), "dropout": (0.0, 0.9),
    "lr": (1e-6, 10.0), "momentum": (0.0, 0.99), "rho": (0.01, 0.999), "batch_size": (1, 4096), "epochs": (1, 500),
    "validation_split": (0.01, 0.5), "seed": (0, MAX_SEED), "code_noise": (0.0, 100.0),
    "inner_lr": (0.0, 10.0), "finetune_epochs": (0, 500), "finetune_lr": (0.0, 10.0), "beta_epochs": (0.0, 1000.0),
}


def key(name: str) -> str:
    """The session-state key of a form widget: ``f_`` and the setting's name."""
    return f"f_{name}"


def number(container, label: str, name: str, low=None, **kwargs):
    """A number field for setting ``name``, within its ``FORM_BOUNDS`` (``low`` raises the minimum)."""
    lo, hi = FORM_BOUNDS[name]
    return container.number_input(label, lo if low is None else low, hi, key=key(name), **kwargs)


def autoencoder_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**" + _("Architecture") + "**")
        arch = st.radio(_("Architecture"), ["dense", "conv", "rnn"], key=key("arch"), horizontal=True,
                        label_visibility="collapsed",
                        help=_("rnn: an LSTM reads the image row by row (the book's recurrent autoencoder)."))
        if arch == "dense":
            st.text_input(_("Hidden layers"), key=key("hidden"), help=_("Encoder sizes, comma-separated; "
                          "the decoder mirrors them. Empty: the code layer reads the pixels (a linear AE)."))
            number(st, _("Latent size"), "latent", low=1, help=_("Size of the code (the bottleneck)."))
            st.checkbox(_("Tied weights"), key=key("tied"),
                        help=_("The decoder reuses the encoder's weights, transposed."))
        elif arch == "rnn":
            st.text_input(_("LSTM sizes"), key=key("hidden"), help=_("Encoder LSTMs before the code LSTM, "
                          "comma-separated; the decoder mirrors them."))
            number(st, _("Latent size"), "latent", low=1, help=_("The code: the last LSTM's final state (tanh)."))
        else:
            st.text_input(_("Channels"), key=key("channels"), help=_("Conv layers, each followed by 2×2 max-pooling."))
            st.selectbox(_("Kernel size"), [3, 5, 7], key=key("kernel_size"), help=_("Square kernels, 'same' padding."))
            number(st, _("Latent size"), "latent",
                            help=_("0: the last feature map is the code; otherwise a dense code layer of this size."))
        if arch != "rnn":
            st.selectbox(_("Activation"), ACTIVATIONS, key=key("activation"), help=_("Hidden layers' activation."))
        st.selectbox(_("Code activation"), ("same", *ACTIVATIONS), key=key("code_activation"),
                     help=_("'same' as the hidden layers (rnn: the LSTM's tanh state); sigmoid for KL sparsity and "
                          "hashing; linear for a VAE's mean."))
        if arch != "rnn":
            number(st, _("Noise before the code layer (σ)"), "code_noise", step=1.0,
                   help=_("Gaussian noise on the code layer's input in training: with sigmoid codes, 15 makes them "
                        "nearly binary (the book's semantic hashing). 0: none."))
        if st.session_state[key("output")] not in AE_OUTPUTS:
            st.session_state[key("output")] = "sigmoid"
        st.selectbox(_("Output"), AE_OUTPUTS, key=key("output"),
                     help=_("sigmoid: images in (0, 1); linear: the identity, for MSE on unbounded data (a linear "
                          "autoencoder, which learns PCA's subspace)."))
    with objective_col:
        st.markdown("**" + _("Objective") + "**")
        objective = st.radio(_("Objective"), OBJECTIVES, key=key("objective"), horizontal=True,
                             label_visibility="collapsed")
        if objective == "denoising":
            if st.session_state[key("noise")] == "none":
                st.session_state[key("noise")] = "gaussian"
            noise = st.radio(_("Corruption"), ["gaussian", "dropout"], key=key("noise"), horizontal=True,
                             help=_("Applied to the input in training only."))
            if noise == "gaussian" and not 0 < st.session_state[key("noise_level")] <= 1:
                st.session_state[key("noise_level")] = 0.2
            number(st, "σ" if noise == "gaussian" else _("Dropout rate"), "noise_level", step=0.05,
                            help=_("Standard deviation of the Gaussian noise, or the fraction of pixels dropped."))
        elif objective == "sparse":
            if st.session_state[key("sparsity")] == "none":
                st.session_state[key("sparsity")] = "l1"
            if not st.session_state[key("sparsity_weight")] > 0:
                st.session_state[key("sparsity_weight")] = 1e-3
            kind = st.radio(_("Penalty"), ["l1", "kl"], key=key("sparsity"), horizontal=True,
                            help=_("L1 on the codes, or KL between each unit's mean activation and a target rate."))
            number(st, _("Weight"), "sparsity_weight", step=1e-3, format="%.4g",
                            help=_("How strongly the penalty counts against reconstruction."))
            if kind == "kl":
                number(st, _("Target rate"), "sparsity_target", step=0.01,
                                help=_("Desired mean activation of each code unit (needs sigmoid codes)."))
        elif objective == "variational":
            number(st, _("β (KL weight)"), "beta", step=0.1,
                            help=_("1 is the standard VAE; larger values trade reconstruction for a smoother "
                                 "latent space."))
            beta_schedule_inputs()
        st.selectbox(_("Reconstruction loss"), ["bce", "mse"], key=key("loss"),
                     help=_("Binary cross-entropy (the book's) or mean squared error, per pixel."))


def beta_schedule_inputs() -> None:
    """How β reaches its value: at once, warmed up, or in cycles (a training setting shown with β)."""
    st.caption(_("β weighs the KL term that pulls codes towards N(0, I): too much too early and the decoder learns "
               "to ignore the codes (posterior collapse; watch the active units). A schedule lets it start at 0."))
    kind = st.selectbox(_("β schedule"), BETA_SCHEDULES, key=key("beta_schedule"),
                        format_func={"constant": _("constant"), "warmup": _("warm-up (linear from 0)"),
                                     "cyclical": _("cyclical (Fu et al., 2019)")}.get,
                        help=_("Updated every step. Validation always weighs the KL with β itself (and with BCE "
                             "also reports the negative ELBO, β = 1), so runs stay comparable."))
    if kind == "constant":
        st.session_state[key("beta_epochs")] = 0.0
        return
    if not st.session_state[key("beta_epochs")] > 0:
        st.session_state[key("beta_epochs")] = 2.0
    number(st, _("Warm-up epochs") if kind == "warmup" else _("Epochs per cycle"), "beta_epochs", low=0.1, step=0.5,
           help=_("Epochs over which β rises from 0 to its value.") if kind == "warmup" else
                _("Each cycle rises from 0 to β over its first half, then holds β."))


def architecture_inputs(dense_help: str, conv_help: str, size_field: str, size_label: str, size_help: str) -> None:
    arch = st.radio(_("Architecture"), ["dense", "conv"], key=key("arch"), horizontal=True,
                    label_visibility="collapsed")
    if arch == "dense":
        st.text_input(_("Hidden layers"), key=key("hidden"), help=dense_help)
    else:
        st.text_input(_("Channels"), key=key("channels"), help=conv_help)
        st.selectbox(_("Kernel size"), [3, 5, 7], key=key("kernel_size"), help=_("Square kernels, 'same' padding."))
    number(st, size_label, size_field, help=size_help)


def gan_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**" + _("Networks") + "**")
        architecture_inputs(_("Discriminator sizes, comma-separated; the generator mirrors them (the book: 150,100)."),
                            _("Discriminator channels, stride-2 convs; the generator mirrors them with transposed "
                            "convs (the book's DCGAN: 64,128)."),
                            "codings", _("Codings size"),
                            _("Length of the random vector the generator turns into an image."))
        st.selectbox(_("Generator activation"), ACTIVATIONS[:-1], key=key("activation"))
        st.selectbox(_("Discriminator activation"), ACTIVATIONS[:-1], key=key("d_activation"),
                     help=_("leaky_relu is LeakyReLU(0.2), as in the book's DCGAN."))
        number(st, _("Discriminator dropout"), "d_dropout", step=0.1,
                        help=_("After each discriminator layer (the DCGAN uses 0.4)."))
        st.checkbox(_("Batch norm in the generator"), key=key("batch_norm"))
        if st.session_state[key("output")] not in OUTPUTS:
            st.session_state[key("output")] = "sigmoid"
        st.selectbox(_("Generator output"), OUTPUTS, key=key("output"),
                     help=_("tanh: the images are scaled to [-1, 1] for both networks (the DCGAN)."))
    with objective_col:
        st.markdown("**" + _("Adversarial training") + "**")
        st.caption(_("Each step trains the discriminator on real images and fresh fakes, then the generator to make "
                   "the (frozen) discriminator call its fakes real. The optimizer on the right is the generator's."))
        number(st, _("Discriminator steps per generator step"), "d_steps")
        number(st, _("Label smoothing"), "label_smoothing", step=0.05,
                        help=_("Real images are labelled 1 − this for the discriminator (0.1 is common)."))
        st.selectbox(_("Discriminator optimizer"), ("same", *OPTIMIZERS), key=key("d_optimizer"),
                     help=_("'same': the generator's optimizer."))
        number(st, _("Discriminator learning rate"), "d_lr", format="%.4g",
                        help=_("0: the generator's learning rate."))


def classifier_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**" + _("Architecture") + "**")
        architecture_inputs(_("Hidden layers before the feature layer."),
                            _("Conv layers, each followed by 2×2 max-pooling."),
                            "features", _("Feature size"),
                            _("The penultimate layer: the features the Fréchet distance compares."))
        st.selectbox(_("Activation"), ACTIVATIONS[:-1], key=key("activation"))
    with objective_col:
        st.markdown("**" + _("Objective") + "**")
        st.caption(_("Cross-entropy on the data set's labels. The classifier is the feature extractor of the quality "
                   "measure on the Generate page."))
        number(st, _("Dropout before the head"), "dropout", step=0.1)


FORMS = {"autoencoder": autoencoder_form, "gan": gan_form, "classifier": classifier_form}
