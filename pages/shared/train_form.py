"""The Train page's form: widgets keyed ``f_<setting>``, filled from a config and read back into one."""
from __future__ import annotations

import streamlit as st

import aelab
from aelab.config import (
    DEVICES,
    FAMILIES,
    OPTIMIZERS,
    PRECISIONS,
    ConfigError,
    RunConfig,
    format_value,
    pinned_device,
    setting_names,
    switch_family,
    with_overrides,
)
from aelab.i18n import N_
from aelab.presets import PRESETS, RESERVED_QUERY_KEYS, share_params, start_of
from pages.shared import model_forms, state
from pages.shared.i18n import _, error_message

CUSTOM = "custom"
FAMILY_LABELS = {"autoencoder": N_("Autoencoder"), "gan": N_("GAN"), "classifier": N_("Classifier")}
NOT_IN_FORM = {("data", "name"), ("data", "data_dir"), ("model", "family")}
SETTINGS = [(s, n, fams) for s, n, _, _, fams in setting_names() if (s, n) not in NOT_IN_FORM]
key, number = model_forms.key, model_forms.number


def form_value(value):
    return format_value(value) if isinstance(value, tuple) else value


def load_into_form(cfg: RunConfig) -> None:
    """Put ``cfg``'s values into the form's widgets: every family's own fields start from that family's
    version of ``cfg`` (so switching the family radio shows sensible values)."""
    for family in FAMILIES:
        for name, value in vars(switch_family(cfg.model, family)).items():
            st.session_state[key(name)] = form_value(value)
    for section in ("data", "model", "train"):
        for name, value in vars(getattr(cfg, section)).items():
            st.session_state[key(name)] = form_value(value)
    st.session_state[key("family")] = cfg.model.family
    st.session_state[key("objective")] = getattr(cfg.model, "objective", "plain")


def on_recipe_change() -> None:
    recipe = st.session_state[key("recipe")]
    data = aelab.DataConfig(name=state.current_dataset_name())
    load_into_form(aelab.preset(recipe, data.name) if recipe in PRESETS else RunConfig(data))


def init_form() -> None:
    """First visit: fill the form from the URL (a share link) or from the stacked recipe. Again if Streamlit
    dropped some of its fields since (it drops the state of widgets a run did not draw: seen once under load, as a
    KeyError on the next visit), from the URL, which holds the form's settings while the page is open."""
    filled = st.session_state.get("form_keys")
    if filled and all(k in st.session_state for k in filled):
        return
    params = st.query_params.to_dict()
    recipe = params.get("preset", "stacked")
    recipe = recipe if recipe in PRESETS else CUSTOM
    cfg = start_of(RunConfig(aelab.DataConfig(name=state.current_dataset_name()), preset=recipe))
    try:
        cfg = with_overrides(cfg, {k: v for k, v in params.items() if k not in RESERVED_QUERY_KEYS})
    except ConfigError as e:
        st.warning(_("The link's settings could not all be used ({reason}); the recipe's values are shown "
                     "instead.").format(reason=error_message(e)))
    st.session_state[key("recipe")] = recipe
    load_into_form(cfg)
    clamped = clamp_to_form()
    if clamped:
        st.warning(_("The link asks for values outside the form's range, so the form shows the nearest allowed "
                     "value: {moved}.").format(moved="; ".join(clamped)))
    st.session_state["form_keys"] = [k for k in st.session_state if isinstance(k, str) and k.startswith("f_")]


def clamp_to_form() -> list[str]:
    """Bring every number of the form within its range (``FORM_BOUNDS``) and say which were moved."""
    moved = []
    for name, (lo, hi) in model_forms.FORM_BOUNDS.items():
        value = st.session_state.get(key(name))
        if isinstance(value, (int, float)) and not lo <= value <= hi:
            st.session_state[key(name)] = min(max(value, lo), hi)
            moved.append(f"{name} {value:g} → {st.session_state[key(name)]:g}")
    return moved


def address(cfg: RunConfig) -> dict[str, str]:
    """The Train page's address for ``cfg`` (its share link), keeping the reserved keys it does not set."""
    kept = {k: v for k, v in st.query_params.to_dict().items() if k in RESERVED_QUERY_KEYS}
    return {**kept, **share_params(cfg, state.public_data_name(cfg.data.name))}


def form_config() -> RunConfig:
    """The configuration the widgets describe, validated: the Start button's one check."""
    ss = st.session_state
    family = ss[key("family")]
    values = {f"{s}.{n}": ss[key(n)] for s, n, fams in SETTINGS if s != "model" or family in fams}
    if not (family == "autoencoder" and ss[key("arch")] == "dense" and ss[key("greedy")]):   # its inputs are hidden
        values.update({"train.greedy": False, "train.inner_lr": 0.0, "train.finetune_epochs": 0,
                       "train.finetune_lr": 0.0})
    if not (family == "autoencoder" and ss[key("objective")] == "variational"):   # β is a VAE's
        values.update({"train.beta_schedule": "constant", "train.beta_epochs": 0.0})
    cfg = with_overrides(RunConfig(aelab.DataConfig(name=state.current_dataset_name())), {"family": family, **values})
    if family == "autoencoder":
        cfg.model = cfg.model.with_objective(ss[key("objective")])
    recipe = ss[key("recipe")]
    cfg.preset = recipe if recipe in PRESETS else None
    return cfg.validate()


def training_inputs() -> None:
    st.markdown("**" + _("Training") + "**")
    opt = st.selectbox(_("Optimizer"), OPTIMIZERS, key=key("optimizer"), help=_("Keras's default epsilons."))
    number(st, _("Learning rate"), "lr", format="%.4g", help=_("Step size."))
    if opt in ("sgd", "rmsprop"):
        number(st, _("Momentum"), "momentum", step=0.1, help=_("0 for plain SGD."))
    if opt == "sgd":
        st.checkbox(_("Nesterov"), key=key("nesterov"), help=_("Nesterov momentum (needs momentum > 0)."))
    if opt == "rmsprop":
        number(st, "ρ", "rho", step=0.01, help=_("Decay of the squared-gradient average."))
    b = st.columns(2)
    number(b[0], _("Batch size"), "batch_size", help=_("Images per step."))
    number(b[1], _("Epochs"), "epochs", help=_("Passes over the training set."))
    b = st.columns(2)
    number(b[0], _("Validation split"), "validation_split", step=0.05,
                      help=_("Last fraction of the training set, unshuffled (as Keras)."))
    number(b[1], _("Seed"), "seed", help=_("Same seed, same numbers."))
    pinned = pinned_device()
    if pinned:
        st.session_state[key("device")] = pinned
    b = st.columns(2)
    b[0].selectbox(_("Device"), DEVICES, key=key("device"), disabled=pinned is not None,
                   help=_("This server trains on {device}.").format(device=pinned) if pinned else
                   _("auto: cuda, then mps, then cpu."))
    b[1].selectbox(_("Precision"), PRECISIONS, key=key("precision"),
                   help=_("fp32 keeps the book's numbers. bf16 / fp16 run the training passes in 16 bits (faster "
                        "on GPUs); validation stays in fp32."))
    st.checkbox(_("Compile (torch.compile)"), key=key("compile"),
                help=_("Compiles the networks before the first step (seconds to a minute): faster steps on GPUs, "
                     "none measured on this CPU."))
    ss = st.session_state
    if ss[key("family")] == "autoencoder" and ss[key("arch")] == "dense":
        greedy_inputs()


def greedy_inputs() -> None:
    """Greedy layer-wise training (the book's "training one autoencoder at a time")."""
    if not st.checkbox(_("Greedy layer-wise"), key=key("greedy"),
                       help=_("Train one shallow autoencoder at a time, outer first, each for the epochs above; the "
                            "inner ones learn to reconstruct the codes of the outer ones (MSE).")):
        return
    b = st.columns(3)
    number(b[0], _("Inner learning rate"), "inner_lr", format="%.4g", help=_("0: the learning rate above."))
    number(b[1], _("Fine-tune epochs"), "finetune_epochs", help=_("Then train the stacked autoencoder as a whole."))
    number(b[2], _("Fine-tune rate"), "finetune_lr", format="%.4g", help=_("0: the learning rate above."))


def draw_form() -> None:
    c = st.columns([2, 3])
    recipes = {**{p: f"{p} — {_(PRESETS[p][0])}" for p in PRESETS}, CUSTOM: _("custom model")}
    c[0].selectbox(_("Recipe"), list(recipes), key=key("recipe"), on_change=on_recipe_change, format_func=recipes.get,
                   help=_("The book's recipes (HOML ch. 17). Changing any value below keeps the recipe as a start."))
    c[1].text_input(_("Run name (optional)"), key="run_name", placeholder=_("recipe-data-timestamp"),
                    help=_("Letters, digits, '.', '_' and '-'."))
    families = {k: _(label) for k, label in FAMILY_LABELS.items()}
    family = st.radio(_("Model family"), list(FAMILY_LABELS), key=key("family"), horizontal=True,
                      format_func=families.get,
                      help=_("Autoencoders (ch. 17's main subject), GANs (a generator against a discriminator), or "
                           "the small classifier that the quality measure of generated images uses."))
    model_col, objective_col, train_col = st.columns(3)
    model_forms.FORMS[family](model_col, objective_col)
    with train_col:
        training_inputs()
