"""The model columns of the Train form, one function per family: (model column, objective column)."""
from __future__ import annotations

import streamlit as st

from aelab.config import ACTIVATIONS, OBJECTIVES, OPTIMIZERS


def key(name: str) -> str:
    """The session-state key of a form widget: ``f_`` and the setting's name."""
    return f"f_{name}"


def autoencoder_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**Architecture**")
        arch = st.radio("Architecture", ["dense", "conv"], key=key("arch"), horizontal=True,
                        label_visibility="collapsed")
        if arch == "dense":
            st.text_input("Hidden layers", key=key("hidden"), help="Encoder sizes, comma-separated; "
                          "the decoder mirrors them.")
            st.number_input("Latent size", 1, 2048, key=key("latent"), help="Size of the code (the bottleneck).")
            st.checkbox("Tied weights", key=key("tied"), help="The decoder reuses the encoder's weights, transposed.")
        else:
            st.text_input("Channels", key=key("channels"), help="Conv layers, each followed by 2×2 max-pooling.")
            st.selectbox("Kernel size", [3, 5, 7], key=key("kernel_size"), help="Square kernels, 'same' padding.")
            st.number_input("Latent size", 0, 2048, key=key("latent"),
                            help="0: the last feature map is the code; otherwise a dense code layer of this size.")
        st.selectbox("Activation", ACTIVATIONS[:-1], key=key("activation"), help="Hidden layers' activation.")
        st.selectbox("Code activation", ("same", *ACTIVATIONS), key=key("code_activation"),
                     help="'same' as the hidden layers; sigmoid for KL sparsity; linear for a VAE's mean.")
    with objective_col:
        st.markdown("**Objective**")
        objective = st.radio("Objective", OBJECTIVES, key=key("objective"), horizontal=True,
                             label_visibility="collapsed")
        if objective == "denoising":
            if st.session_state[key("noise")] == "none":
                st.session_state[key("noise")] = "gaussian"
            noise = st.radio("Corruption", ["gaussian", "dropout"], key=key("noise"), horizontal=True,
                             help="Applied to the input in training only.")
            if noise == "gaussian" and not 0 < st.session_state[key("noise_level")] <= 1:
                st.session_state[key("noise_level")] = 0.2
            st.number_input("σ" if noise == "gaussian" else "Dropout rate", 0.0, 1.0, step=0.05, key=key("noise_level"),
                            help="Standard deviation of the Gaussian noise, or the fraction of pixels dropped.")
        elif objective == "sparse":
            if st.session_state[key("sparsity")] == "none":
                st.session_state[key("sparsity")] = "l1"
            if not st.session_state[key("sparsity_weight")] > 0:
                st.session_state[key("sparsity_weight")] = 1e-3
            kind = st.radio("Penalty", ["l1", "kl"], key=key("sparsity"), horizontal=True,
                            help="L1 on the codes, or KL between each unit's mean activation and a target rate.")
            st.number_input("Weight", 0.0, 10.0, step=1e-3, format="%.4g", key=key("sparsity_weight"),
                            help="How strongly the penalty counts against reconstruction.")
            if kind == "kl":
                st.number_input("Target rate", 0.01, 0.99, step=0.01, key=key("sparsity_target"),
                                help="Desired mean activation of each code unit (needs sigmoid codes).")
        elif objective == "variational":
            st.number_input("β (KL weight)", 0.0, 100.0, step=0.1, key=key("beta"),
                            help="1 is the standard VAE; larger values trade reconstruction for a smoother "
                                 "latent space.")
        st.selectbox("Reconstruction loss", ["bce", "mse"], key=key("loss"),
                     help="Binary cross-entropy (the book's) or mean squared error, per pixel.")


def architecture_inputs(dense_help: str, conv_help: str, size_field: str, size_label: str, size_help: str) -> None:
    arch = st.radio("Architecture", ["dense", "conv"], key=key("arch"), horizontal=True, label_visibility="collapsed")
    if arch == "dense":
        st.text_input("Hidden layers", key=key("hidden"), help=dense_help)
    else:
        st.text_input("Channels", key=key("channels"), help=conv_help)
        st.selectbox("Kernel size", [3, 5, 7], key=key("kernel_size"), help="Square kernels, 'same' padding.")
    st.number_input(size_label, 1, 2048, key=key(size_field), help=size_help)


def gan_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**Networks**")
        architecture_inputs("Discriminator sizes, comma-separated; the generator mirrors them (the book: 150,100).",
                            "Discriminator channels, stride-2 convs; the generator mirrors them with transposed "
                            "convs (the book's DCGAN: 64,128).",
                            "codings", "Codings size", "Length of the random vector the generator turns into an image.")
        st.selectbox("Generator activation", ACTIVATIONS[:-1], key=key("activation"))
        st.selectbox("Discriminator activation", ACTIVATIONS[:-1], key=key("d_activation"),
                     help="leaky_relu is LeakyReLU(0.2), as in the book's DCGAN.")
        st.number_input("Discriminator dropout", 0.0, 0.9, step=0.1, key=key("d_dropout"),
                        help="After each discriminator layer (the DCGAN uses 0.4).")
        st.checkbox("Batch norm in the generator", key=key("batch_norm"))
        st.selectbox("Generator output", ["sigmoid", "tanh"], key=key("output"),
                     help="tanh: the images are scaled to [-1, 1] for both networks (the DCGAN).")
    with objective_col:
        st.markdown("**Adversarial training**")
        st.caption("Each step trains the discriminator on real images and fresh fakes, then the generator to make "
                   "the (frozen) discriminator call its fakes real. The optimizer on the right is the generator's.")
        st.number_input("Discriminator steps per generator step", 1, 10, key=key("d_steps"))
        st.number_input("Label smoothing", 0.0, 0.45, step=0.05, key=key("label_smoothing"),
                        help="Real images are labelled 1 − this for the discriminator (0.1 is common).")
        st.selectbox("Discriminator optimizer", ("same", *OPTIMIZERS), key=key("d_optimizer"),
                     help="'same': the generator's optimizer.")
        st.number_input("Discriminator learning rate", 0.0, 10.0, format="%.4g", key=key("d_lr"),
                        help="0: the generator's learning rate.")


def classifier_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**Architecture**")
        architecture_inputs("Hidden layers before the feature layer.", "Conv layers, each followed by 2×2 max-pooling.",
                            "features", "Feature size",
                            "The penultimate layer: the features the Fréchet distance compares.")
        st.selectbox("Activation", ACTIVATIONS[:-1], key=key("activation"))
    with objective_col:
        st.markdown("**Objective**")
        st.caption("Cross-entropy on the data set's labels. The classifier is the feature extractor of the quality "
                   "measure on the Generate page.")
        st.number_input("Dropout before the head", 0.0, 0.9, step=0.1, key=key("dropout"))


FORMS = {"autoencoder": autoencoder_form, "gan": gan_form, "classifier": classifier_form}
