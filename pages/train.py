"""Train: pick a recipe or build a model, start it in the background, watch it learn."""
import os

import numpy as np
import streamlit as st

import aelab
from aelab import figures
from aelab.config import ACTIVATIONS, OPTIMIZERS, ConfigError, RunConfig, flat_fields, with_overrides
from aelab.jobs import JobRefused, registry
from aelab.presets import BOOK_VAL_LOSS, PRESETS
from pages import common

common.through_router()

CUSTOM = "custom"
OBJECTIVES = ("plain", "denoising", "sparse", "variational")
FAMILY_LABELS = {"autoencoder": "Autoencoder", "gan": "GAN", "classifier": "Classifier"}
FORM_FIELDS = [(s, n) for s, n, _, _ in flat_fields() if (s, n) not in (("data", "name"), ("data", "data_dir"))]


def key(name: str) -> str:
    return f"f_{name}"


def base_config(recipe: str, data: str) -> RunConfig:
    return aelab.preset(recipe, data) if recipe in PRESETS else RunConfig(aelab.DataConfig(name=data))


def load_into_form(cfg: RunConfig) -> None:
    """Put ``cfg``'s values into the form's widgets."""
    for section, name in FORM_FIELDS:
        value = getattr(getattr(cfg, section), name)
        st.session_state[key(name)] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    m = cfg.model
    st.session_state[key("objective")] = ("variational" if m.variational else "sparse" if m.sparsity != "none"
                                          else "denoising" if m.noise != "none" else "plain")


def on_recipe_change() -> None:
    load_into_form(base_config(st.session_state[key("recipe")], common.current_dataset_name()))


def init_form() -> None:
    """First visit: fill the form from the URL (a share link) or from the stacked recipe."""
    if st.session_state.get("form_ready"):
        return
    params = st.query_params.to_dict()
    recipe = params.pop("preset", "stacked")
    recipe = recipe if recipe in PRESETS else CUSTOM
    cfg = base_config(recipe, common.current_dataset_name())
    try:
        cfg = with_overrides(cfg, {k: v for k, v in params.items() if k != "data"})
    except ConfigError as e:
        st.warning(f"The link's settings could not all be used ({e}); the recipe's values are shown instead.")
    st.session_state[key("recipe")] = recipe
    load_into_form(cfg)
    st.session_state["form_ready"] = True


def form_config() -> RunConfig:
    """The configuration the widgets describe (validated)."""
    ss = st.session_state
    objective = ss[key("objective")] if ss[key("family")] == "autoencoder" else "plain"
    overrides = {f"{s}.{n}": ss[key(n)] for s, n in FORM_FIELDS}
    overrides["model.variational"] = objective == "variational"
    if objective != "denoising":
        overrides["model.noise"] = "none"
    if objective != "sparse":
        overrides["model.sparsity"] = "none"
    if ss[key("family")] != "autoencoder":
        overrides["model.tied"] = False
    recipe = ss[key("recipe")]
    cfg = with_overrides(RunConfig(aelab.DataConfig(name=common.current_dataset_name())), overrides)
    cfg.preset = recipe if recipe in PRESETS else None
    return cfg.validate()


def share_params(cfg: RunConfig) -> dict[str, str]:
    """Query parameters for a share link: the recipe and every value that differs from it."""
    base = base_config(cfg.preset or CUSTOM, cfg.data.name)
    params = {"preset": cfg.preset or CUSTOM, "data": cfg.data.name}
    for section, name in FORM_FIELDS:
        value = getattr(getattr(cfg, section), name)
        if value != getattr(getattr(base, section), name):
            params[name] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return params


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
                            help="1 is the standard VAE; larger values trade reconstruction for a smoother latent space.")
        st.selectbox("Reconstruction loss", ["bce", "mse"], key=key("loss"),
                     help="Binary cross-entropy (the book's) or mean squared error, per pixel.")


def architecture_inputs(dense_help: str, conv_help: str, latent_label: str, latent_help: str) -> None:
    arch = st.radio("Architecture", ["dense", "conv"], key=key("arch"), horizontal=True, label_visibility="collapsed")
    if arch == "dense":
        st.text_input("Hidden layers", key=key("hidden"), help=dense_help)
    else:
        st.text_input("Channels", key=key("channels"), help=conv_help)
        st.selectbox("Kernel size", [3, 5, 7], key=key("kernel_size"), help="Square kernels, 'same' padding.")
    if not st.session_state[key("latent")] >= 1:
        st.session_state[key("latent")] = 30
    st.number_input(latent_label, 1, 2048, key=key("latent"), help=latent_help)


def gan_form(model_col, objective_col) -> None:
    with model_col:
        st.markdown("**Networks**")
        architecture_inputs("Discriminator sizes, comma-separated; the generator mirrors them (the book: 150,100).",
                            "Discriminator channels, stride-2 convs; the generator mirrors them with transposed "
                            "convs (the book's DCGAN: 64,128).",
                            "Codings size", "Length of the random vector the generator turns into an image.")
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
                            "Feature size", "The penultimate layer: the features the Fréchet distance compares.")
        st.selectbox("Activation", ACTIVATIONS[:-1], key=key("activation"))
    with objective_col:
        st.markdown("**Objective**")
        st.caption("Cross-entropy on the data set's labels. The classifier is the feature extractor of the quality "
                   "measure on the Generate page.")
        st.number_input("Dropout before the head", 0.0, 0.9, step=0.1, key=key("d_dropout"))


def draw_form() -> None:
    c = st.columns([2, 3])
    c[0].selectbox("Recipe", [*PRESETS, CUSTOM], key=key("recipe"), on_change=on_recipe_change,
                   format_func=lambda p: f"{p} — {PRESETS[p][0]}" if p in PRESETS else "custom model",
                   help="The book's recipes (HOML ch. 17). Changing any value below keeps the recipe as a start.")
    c[1].text_input("Run name (optional)", key="run_name", placeholder="recipe-data-timestamp",
                    help="Letters, digits, '.', '_' and '-'.")

    family = st.radio("Model family", list(FAMILY_LABELS), key=key("family"), horizontal=True,
                      format_func=FAMILY_LABELS.get,
                      help="Autoencoders (ch. 17's main subject), GANs (a generator against a discriminator), or "
                           "the small classifier that the quality measure of generated images uses.")
    model_col, objective_col, train_col = st.columns(3)
    {"gan": gan_form, "classifier": classifier_form}.get(family, autoencoder_form)(model_col, objective_col)
    with train_col:
        st.markdown("**Training**")
        opt = st.selectbox("Optimizer", OPTIMIZERS, key=key("optimizer"), help="Keras's default epsilons.")
        st.number_input("Learning rate", 1e-6, 10.0, format="%.4g", key=key("lr"), help="Step size.")
        if opt in ("sgd", "rmsprop"):
            st.number_input("Momentum", 0.0, 0.99, step=0.1, key=key("momentum"), help="0 for plain SGD.")
        if opt == "sgd":
            st.checkbox("Nesterov", key=key("nesterov"), help="Nesterov momentum (needs momentum > 0).")
        if opt == "rmsprop":
            st.number_input("ρ", 0.01, 0.999, step=0.01, key=key("rho"), help="Decay of the squared-gradient average.")
        b = st.columns(2)
        b[0].number_input("Batch size", 1, 4096, key=key("batch_size"), help="Images per step.")
        b[1].number_input("Epochs", 1, 500, key=key("epochs"), help="Passes over the training set.")
        b = st.columns(2)
        b[0].number_input("Validation split", 0.01, 0.5, step=0.05, key=key("validation_split"),
                          help="Last fraction of the training set, unshuffled (as Keras).")
        b[1].number_input("Seed", 0, 2**31 - 1, key=key("seed"), help="Same seed, same numbers.")
        st.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key=key("device"), help="auto: cuda, then mps, then cpu.")


def last(history: dict, k: str, fmt: str = ".4f") -> str:
    return format(history[k][-1], fmt) if history.get(k) else "–"


def draw_live(job, snap) -> None:
    """Progress, curves and the per-epoch preview (reconstructions, or a GAN's fixed-noise samples)."""
    cfg = job.cfg
    family = cfg.model.family
    if snap.status == "starting":
        st.info("Starting: loading the data set and building the model…", icon=":material/hourglass_top:")
    done = (max(snap.epoch - 1, 0) + snap.batch / snap.batches) / snap.epochs if snap.batches else 0.0
    label = {"running": f"Epoch {snap.epoch}/{snap.epochs} · batch {snap.batch}/{snap.batches} · "
                        f"loss {snap.loss:.4f}", "finished": "Finished", "stopped": "Stopped",
             "failed": "Failed", "starting": "Starting"}[snap.status]
    st.progress(min(done, 1.0) if snap.status != "finished" else 1.0, text=label)
    h = snap.history
    cols = st.columns(4)
    cols[0].metric("Epochs done", f"{h['epoch'][-1]:g}" if h.get("epoch") else "0")
    if family == "gan":
        cols[1].metric("Discriminator loss", last(h, "d_loss"), help="Training, last epoch")
        cols[2].metric("Generator loss", last(h, "g_loss"), help="Training, last epoch")
    elif family == "classifier":
        cols[1].metric("Training loss", last(h, "loss"))
        cols[2].metric("Validation accuracy", last(h, "val_acc", ".2%"))
    else:
        cols[1].metric("Training loss", last(h, "loss"))
        cols[2].metric("Validation loss", last(h, "val_loss"))
    cols[3].metric("Seconds / epoch", f"{np.median(h['seconds']):.2f}" if h.get("seconds") else "–")
    left, right = st.columns([3, 2])
    if family == "gan":
        left.plotly_chart(figures.gan_figure(h, snap.traces, cfg.train.epochs), key=f"gan-{job.id}")
    else:
        reference = BOOK_VAL_LOSS.get(cfg.preset) if cfg.data.name == "fashion-mnist" else None
        left.plotly_chart(figures.loss_figure(h, snap.trace, reference, "book, epoch 10", cfg.train.epochs),
                          key=f"loss-{job.id}")
        terms = figures.terms_figure(h)
        if terms is not None:
            right.plotly_chart(terms, key=f"terms-{job.id}")
    with right:
        draw_frames(job, snap)
    if snap.status == "failed":
        st.error(f"Training failed: {snap.error}", icon=":material/error:")


def draw_frames(job, snap) -> None:
    """The latest preview while training; afterwards a slider plays the epochs back."""
    if not snap.frames:
        return
    frame = len(snap.frames) - 1
    if snap.done and len(snap.frames) > 1:
        frame = st.slider("Epoch", 0, len(snap.frames) - 1, len(snap.frames) - 1, key=f"frame-{job.id}",
                          help="Play training back: the preview after each epoch (0 = before training).")
    images = snap.frames[frame]
    if snap.preview_input is not None:
        st.markdown(f"**Fixed validation images** (top) **and their reconstructions** (bottom), epoch {frame}")
        images = np.concatenate([snap.preview_input, images])
        ncols = len(snap.preview_input)
    else:
        st.markdown(f"**The same {len(images)} random codes through the generator**, epoch {frame}")
        ncols = 8
    st.image(figures.image_grid(images, ncols=ncols), width="stretch", output_format="PNG")


def job_panel() -> None:
    job = registry().get(st.session_state.get("job_id"))
    if job is None:
        return
    st.divider()
    st.subheader(f"Run {job.name}" if job.name else "Current training")
    if job.alive:
        @st.fragment(run_every=float(os.environ.get("AELAB_LIVE_REFRESH_S", "2.0")))
        def live():
            snap = job.snapshot()
            if st.button("Stop", key="stop", icon=":material/stop:", help="Stops after the current batch; "
                         "the epochs done are saved."):
                job.stop()
            draw_live(job, snap)
            if snap.done:
                st.rerun()
        live()
        return
    snap = job.snapshot()
    if snap.run_name and st.session_state.get("activated_job") != job.id:
        common.set_active_run("run", snap.run_name)
        st.session_state["activated_job"] = job.id
        st.rerun()   # redraw the sidebar with the new active run
    if snap.run_name:
        st.success(f"Run **{snap.run_name}** saved ({snap.status}) and is now the active run. "
                   f"Look at it on the Reconstructions, Latent space or Generate pages.", icon=":material/check:")
    draw_live(job, snap)


st.title("Train")
init_form()
draw_form()
cfg = None
with common.guard("Checking the settings"):
    cfg = form_config()
    st.query_params.from_dict(share_params(cfg))
running = registry().get(st.session_state.get("job_id"))
busy = running is not None and running.alive
if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=cfg is None or busy,
             key="start", help="Trains in the background; you can switch pages and come back."):
    try:
        name = st.session_state.get("run_name") or None
        if name:
            aelab.runs.check_name(name)
        job = registry().start(cfg, common.user_runs_dir(), owner=common.session_id(), name=name)
        st.session_state["job_id"] = job.id
    except (JobRefused, aelab.RunError, ConfigError) as e:
        st.error(str(e), icon=":material/block:")
if cfg is not None:
    st.caption("Share link: this page's address holds the settings; anyone opening it gets the same form.")
job_panel()
