"""Generate: VAE and GAN samples side by side with a quality measure, then the active run's latent tools."""
import streamlit as st

import aelab
from aelab import generate, quality
from aelab.figures import class_share_figure
from aelab.jobs import JobRefused
from aelab.runs import find_classifier
from pages.shared import launch, state, widgets
from pages.shared.i18n import _, class_names, current, error_message
from pages.shared.sidebar import through_router

through_router()

MAX_COMPARED = 3
QUALITY_SAMPLES = quality.DEFAULT_SAMPLES


def start(recipe: str, runs: dict) -> None:
    try:
        launch.start_job(aelab.preset(recipe, state.current_dataset_name()).validate(), runs=runs)
        st.switch_page("pages/train.py")
    except (JobRefused, aelab.ConfigError, aelab.DataError) as e:
        widgets.refusal(e)


def quality_task(run, classifier_run):
    """The quality report of ``run`` against ``classifier_run``: from metrics.json when it was computed at
    training time with the same classifier, else computed once in a worker process (a task shared by all
    sessions); None while it is computed, {} when it failed (after saying why)."""
    saved = run.metrics.get("quality")
    if saved and saved.get("classifier") == classifier_run.name and saved.get("n_samples") == QUALITY_SAMPLES:
        return saved
    task = widgets.task("quality", run, classifier_run, QUALITY_SAMPLES, slot=f"quality:{run.name}")
    if task.finished and task.status != "finished":
        st.error(_("The quality measure failed: {reason}").format(reason=error_message(task.error or _("cancelled"))),
                 icon=":material/error:")
        return {}
    return task.result if task.finished else None


def compare_section(runs: dict) -> None:
    st.subheader(_("Samples side by side"))
    active = state.active_run(runs)
    data_name = active.config.data.name if active else state.current_dataset_name()
    label = widgets.dataset_label(data_name)
    candidates = [k for k, r in runs.items() if r.config.model.generative and r.config.data.name == data_name]
    if not candidates:
        st.info(_("No VAE or GAN trained on {data} yet. A VAE learns a Gaussian code you can sample from; a GAN "
                  "trains a generator against a discriminator.").format(data=label), icon=":material/info:")
        c = st.columns(3)
        for col, recipe in zip(c, ("vae", "gan", "dcgan")):
            if col.button(_("Train the {recipe} recipe").format(recipe=recipe), key=f"train_{recipe}",
                          icon=":material/play_arrow:"):
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
    keys = st.multiselect(_("Generative runs"), candidates, key="gen_compare", max_selections=MAX_COMPARED,
                          format_func=widgets.described(runs).get,
                          help=_("Up to {n} VAE or GAN runs on {data}, sampled with the same seed.").format(
                              n=MAX_COMPARED, data=label))
    c = st.columns(2)
    seed = c[0].number_input(_("Seed"), 0, 10_000, 0, key="gen_seed")
    temperature = c[1].slider(_("Temperature"), 0.1, 2.0, 1.0, 0.1, key="gen_temp",
                              help=_("Scales the standard deviation of the codes z ~ N(0, I): lower is safer, "
                                   "higher is more varied."))
    if not keys:
        return
    classifier_run = find_classifier(data_name, runs.values())   # user runs first, newest first
    reports = {}
    for col, k in zip(st.columns(len(keys)), keys):
        run = runs[k]
        with col:
            st.markdown(_("**{run}** · {model}, {epochs:g} epochs").format(run=run.name, model=widgets.model_label(run),
                                                                          epochs=run.epochs_done))
            widgets.images(generate.sample_prior(state.model_of(run), 40, temperature, seed), ncols=8)
            if classifier_run is not None:
                reports[run.name] = quality_task(run, classifier_run)
                q = reports[run.name]
                if q is None:
                    st.caption(_("Scoring 5,000 samples…"))
                elif q:
                    m = st.columns(2)
                    m[0].metric(_("FID (domain)"), f"{q['fid']:.2f}", help=_("Lower is better; see below."))
                    m[1].metric(_("Classes covered"), f"{q['classes_covered']} / {len(q['class_shares'])}",
                                help=_("Classes the classifier predicts for at least half their test-set share."))
    if classifier_run is None:
        st.info(_("**Quality measure**: it needs a small classifier trained on {data} (none yet). Training it takes "
                  "about 40 s on Fashion-MNIST and a few seconds on digits; it is then stored as a run.").format(
            data=label), icon=":material/info:")
        if st.button(_("Train the domain classifier"), key="train_classifier", icon=":material/play_arrow:"):
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
    shares = {_("test images"): first["test_shares"], **{name: q["class_shares"] for name, q in reports.items()}}
    st.plotly_chart(class_share_figure(shares, class_names(ds.name, ds.class_names), lang=current()),
                    key="gen_shares")
    with st.expander(_("What do these numbers measure?"), icon=":material/help:"):
        accuracy = first.get("classifier_accuracy")
        classifier = f"**{classifier_run.name}**" + (_(", {accuracy:.1%} test accuracy").format(accuracy=accuracy)
                                                    if accuracy else "")
        st.markdown(_(
            "**FID (domain)** is a Fréchet distance, like the FID of the GAN literature, computed on the 128 "
            "penultimate features of a small classifier trained on {data} (run {classifier}) instead of "
            "Inception-v3: the distance between Gaussians fitted to the features of {n:,} samples and of the test "
            "images. Lower is better; {n:,} real training images score **{reference:.2f}**. It is not comparable "
            "with published FIDs, only between runs scored by the same classifier.\n\n"
            "**Classes covered**: the classifier's predicted class of every sample; a class counts as covered when "
            "it gets at least half its share among the test images. A generator that collapses onto a few "
            "garments (mode collapse) covers few classes. The chart shows the whole distribution.").format(
            data=label, classifier=classifier, n=QUALITY_SAMPLES, reference=first["reference_fid"]))


def latent_tools(run, ds) -> None:
    model = state.model_of(run)
    st.subheader(_("Explore {run}").format(run=run.name))
    left, right = st.columns(2)
    if run.family == "gan":
        with left:
            st.markdown("**" + _("Interpolation between two random codes") + "**")
            a = st.columns(3)
            seed_a = a[0].number_input(_("Code A (seed)"), 0, 10_000, 1, key="gen_za")
            seed_b = a[1].number_input(_("Code B (seed)"), 0, 10_000, 2, key="gen_zb")
            steps = a[2].slider(_("Steps"), 3, 15, 9, key="gen_steps")
            widgets.images(generate.interpolate_noise(model, seed_a, seed_b, steps), ncols=steps)
        return
    with left:
        st.markdown("**" + _("Interpolation") + "**")
        a = st.columns(3)
        i = a[0].number_input(_("From test image"), 0, len(ds.x_test) - 1, 0, key="gen_a")
        j = a[1].number_input(_("To test image"), 0, len(ds.x_test) - 1, 1, key="gen_b")
        steps = a[2].slider(_("Steps"), 3, 15, 9, key="gen_steps")
        names = class_names(ds.name, ds.class_names)
        st.caption(_("{a} → {b}, decoded from the straight line between their codes").format(
            a=names[ds.y_test[i]], b=names[ds.y_test[j]]))
        widgets.images(generate.interpolate(model, ds.x_test[i], ds.x_test[j], steps), ncols=steps)
    with right:
        st.markdown("**" + _("Traversal of one latent dimension") + "**")
        b = st.columns(3)
        dim = b[0].number_input(_("Dimension"), 0, model.latent_dim - 1, 0, key="gen_dim")
        span = b[1].slider(_("Span (±)"), 0.5, 5.0, 3.0, 0.5, key="gen_span")
        k = b[2].number_input(_("Starting image"), 0, len(ds.x_test) - 1, 0, key="gen_k")
        st.caption(_("Code of test image #{k} with dimension {dim} swept from −{span} to +{span}").format(
            k=k, dim=dim, span=span))
        widgets.images(generate.traverse(model, ds.x_test[k], dim, span, 9), ncols=9)
    if model.latent_dim == 2:
        st.markdown(_("**The 2-D manifold**: codes on a grid of Gaussian quantiles, decoded."))
        size = st.slider(_("Grid size"), 5, 25, 15, key="gen_grid")
        widgets.images(generate.manifold_grid(model, size), width=640)
    else:
        st.caption(_("The manifold map needs a 2-D latent space (this VAE has {dims}); train one with latent size 2 "
                     "to see it.").format(dims=model.latent_dim))


st.title(_("Generate"))
runs = state.all_runs()
if not runs:
    widgets.need_run()
else:
    with widgets.guard(_("Generating")):
        compare_section(runs)
run = state.active_run(runs)
if run is not None and run.config.model.generative:
    ds = state.run_dataset(run)
    if ds is not None:
        st.divider()
        with widgets.guard(_("Generating")):
            latent_tools(run, ds)
elif run is not None:
    why = (_("A plain autoencoder maps images to codes but says nothing about which codes are likely, so random "
             "codes decode to noise.") if run.family == "autoencoder" else "")
    st.caption(_("The active run **{run}** is a {model}: it does not generate.").format(
        run=run.name, model=widgets.model_label(run)) + " " + why)
