"""Generate: VAE and GAN samples side by side with a quality measure, then the active run's latent tools."""
import streamlit as st

import aelab
from aelab import generate, quality
from aelab.figures import class_share_figure
from aelab.jobs import JobRefused
from aelab.runs import find_classifier
from pages.shared import launch, state, widgets
from pages.shared.sidebar import through_router

through_router()

MAX_COMPARED = 3
QUALITY_SAMPLES = quality.DEFAULT_SAMPLES


def start(recipe: str, runs: dict) -> None:
    try:
        launch.start_job(aelab.preset(recipe, state.current_dataset_name()).validate(), runs=runs)
        st.switch_page("pages/train.py")
    except (JobRefused, aelab.ConfigError, aelab.DataError) as e:
        st.error(str(e), icon=":material/block:")


def quality_task(run, classifier_run):
    """The quality report of ``run`` against ``classifier_run``: from metrics.json when it was computed at
    training time with the same classifier, else computed once in a worker process (a task shared by all
    sessions); None while it is computed, {} when it failed (after saying why)."""
    saved = run.metrics.get("quality")
    if saved and saved.get("classifier") == classifier_run.name and saved.get("n_samples") == QUALITY_SAMPLES:
        return saved
    task = widgets.task("quality", run, classifier_run, QUALITY_SAMPLES, slot=f"quality:{run.name}")
    if task.finished and task.status != "finished":
        st.error(f"The quality measure failed: {task.error or 'cancelled'}", icon=":material/error:")
        return {}
    return task.result if task.finished else None


def compare_section(runs: dict) -> None:
    st.subheader("Samples side by side")
    active = state.active_run(runs)
    data_name = active.config.data.name if active else state.current_dataset_name()
    label = widgets.dataset_label(data_name)
    candidates = [k for k, r in runs.items() if r.config.model.generative and r.config.data.name == data_name]
    if not candidates:
        st.info(f"No VAE or GAN trained on {label} yet. A VAE learns a Gaussian code you can sample from; a GAN "
                "trains a generator against a discriminator.", icon=":material/info:")
        c = st.columns(3)
        for col, recipe in zip(c, ("vae", "gan", "dcgan")):
            if col.button(f"Train the {recipe} recipe", key=f"train_{recipe}", icon=":material/play_arrow:"):
                start(recipe, runs)
        return
    if "gen_compare" not in st.session_state:   # default: the active run if it generates, then one run per kind
        active_key = st.session_state.get("active_run")
        chosen, kinds = [], set()
        for k in ([active_key] if active_key in candidates else []) + candidates:
            kind = (runs[k].family, runs[k].config.model.arch)
            if kind not in kinds:
                chosen.append(k)
                kinds.add(kind)
        st.session_state["gen_compare"] = chosen[:MAX_COMPARED]
    st.session_state["gen_compare"] = [k for k in st.session_state["gen_compare"] if k in candidates]
    keys = st.multiselect("Generative runs", candidates, key="gen_compare", max_selections=MAX_COMPARED,
                          format_func=widgets.described(runs).get,
                          help=f"Up to {MAX_COMPARED} VAE or GAN runs on {label}, sampled with the same seed.")
    c = st.columns(2)
    seed = c[0].number_input("Seed", 0, 10_000, 0, key="gen_seed")
    temperature = c[1].slider("Temperature", 0.1, 2.0, 1.0, 0.1, key="gen_temp",
                              help="Scales the standard deviation of the codes z ~ N(0, I): lower is safer, "
                                   "higher is more varied.")
    if not keys:
        return
    classifier_run = find_classifier(data_name, runs.values())   # user runs first, newest first
    reports = {}
    for col, k in zip(st.columns(len(keys)), keys):
        run = runs[k]
        with col:
            st.markdown(f"**{run.name}** · {widgets.model_label(run)}, {run.epochs_done:g} epochs")
            widgets.images(generate.sample_prior(state.model_of(run), 40, temperature, seed), ncols=8)
            if classifier_run is not None:
                reports[run.name] = quality_task(run, classifier_run)
                q = reports[run.name]
                if q is None:
                    st.caption("Scoring 5,000 samples…")
                elif q:
                    m = st.columns(2)
                    m[0].metric("FID (domain)", f"{q['fid']:.2f}", help="Lower is better; see below.")
                    m[1].metric("Classes covered", f"{q['classes_covered']} / {len(q['class_shares'])}",
                                help="Classes the classifier predicts for at least half their test-set share.")
    if classifier_run is None:
        st.info(f"**Quality measure**: it needs a small classifier trained on {label} (none yet). Training it "
                "takes about 40 s on Fashion-MNIST and a few seconds on digits; it is then stored as a run.",
                icon=":material/info:")
        if st.button("Train the domain classifier", key="train_classifier", icon=":material/play_arrow:"):
            start("classifier", runs)
        return
    pending = [name for name, q in reports.items() if q is None]
    if pending:
        @st.fragment(run_every=2.0)
        def wait():
            if all(quality_task(runs[k], classifier_run) is not None for k in keys):
                st.rerun()
        wait()
        return
    reports = {name: q for name, q in reports.items() if q}   # without the failed ones (their errors are shown)
    if not reports:
        return
    ds = state.dataset(runs[keys[0]].config.data)
    first = next(iter(reports.values()))
    shares = {"test images": first["test_shares"], **{name: q["class_shares"] for name, q in reports.items()}}
    st.plotly_chart(class_share_figure(shares, ds.class_names), key="gen_shares")
    with st.expander("What do these numbers measure?", icon=":material/help:"):
        accuracy = first.get("classifier_accuracy")
        st.markdown(
            f"**FID (domain)** is a Fréchet distance, like the FID of the GAN literature, computed on the 128 "
            f"penultimate features of a small classifier trained on {label} (run **{classifier_run.name}**"
            + (f", {accuracy:.1%} test accuracy" if accuracy else "") + ") instead of Inception-v3: the distance "
            f"between Gaussians fitted to the features of {QUALITY_SAMPLES:,} samples and of the test images. Lower "
            f"is better; {QUALITY_SAMPLES:,} real training images score **{first['reference_fid']:.2f}**. It is "
            "not comparable with published FIDs, only between runs scored by the same classifier.\n\n"
            "**Classes covered**: the classifier's predicted class of every sample; a class counts as covered when "
            "it gets at least half its share among the test images. A generator that collapses onto a few "
            "garments (mode collapse) covers few classes. The chart shows the whole distribution.")


def latent_tools(run, ds) -> None:
    model = state.model_of(run)
    st.subheader(f"Explore {run.name}")
    left, right = st.columns(2)
    if run.family == "gan":
        with left:
            st.markdown("**Interpolation between two random codes**")
            a = st.columns(3)
            seed_a = a[0].number_input("Code A (seed)", 0, 10_000, 1, key="gen_za")
            seed_b = a[1].number_input("Code B (seed)", 0, 10_000, 2, key="gen_zb")
            steps = a[2].slider("Steps", 3, 15, 9, key="gen_steps")
            widgets.images(generate.interpolate_noise(model, seed_a, seed_b, steps), ncols=steps)
        return
    with left:
        st.markdown("**Interpolation**")
        a = st.columns(3)
        i = a[0].number_input("From test image", 0, len(ds.x_test) - 1, 0, key="gen_a")
        j = a[1].number_input("To test image", 0, len(ds.x_test) - 1, 1, key="gen_b")
        steps = a[2].slider("Steps", 3, 15, 9, key="gen_steps")
        st.caption(f"{ds.class_names[ds.y_test[i]]} → {ds.class_names[ds.y_test[j]]}, decoded from the "
                   "straight line between their codes")
        widgets.images(generate.interpolate(model, ds.x_test[i], ds.x_test[j], steps), ncols=steps)
    with right:
        st.markdown("**Traversal of one latent dimension**")
        b = st.columns(3)
        dim = b[0].number_input("Dimension", 0, model.latent_dim - 1, 0, key="gen_dim")
        span = b[1].slider("Span (±)", 0.5, 5.0, 3.0, 0.5, key="gen_span")
        k = b[2].number_input("Starting image", 0, len(ds.x_test) - 1, 0, key="gen_k")
        st.caption(f"Code of test image #{k} with dimension {dim} swept from −{span} to +{span}")
        widgets.images(generate.traverse(model, ds.x_test[k], dim, span, 9), ncols=9)
    if model.latent_dim == 2:
        st.markdown("**The 2-D manifold**: codes on a grid of Gaussian quantiles, decoded.")
        size = st.slider("Grid size", 5, 25, 15, key="gen_grid")
        widgets.images(generate.manifold_grid(model, size), width=640)
    else:
        st.caption(f"The manifold map needs a 2-D latent space (this VAE has {model.latent_dim}); train one with "
                   "latent size 2 to see it.")


st.title("Generate")
runs = state.all_runs()
if not runs:
    widgets.need_run()
else:
    with widgets.guard("Generating"):
        compare_section(runs)
run = state.active_run(runs)
if run is not None and run.config.model.generative:
    ds = state.run_dataset(run)
    if ds is not None:
        st.divider()
        with widgets.guard("Generating"):
            latent_tools(run, ds)
elif run is not None:
    why = ("A plain autoencoder maps images to codes but says nothing about which codes are likely, so random "
           "codes decode to noise." if run.family == "autoencoder" else "")
    st.caption(f"The active run **{run.name}** is a {widgets.model_label(run)}: it does not generate. {why}")
