"""Latent space: encode test images, project with PCA, t-SNE or UMAP, select points, probe the codes, read them as
hashes, and compare PCA with linear and nonlinear autoencoders."""
import pandas as pd
import streamlit as st

from aelab import data, figures, latent, metrics
from aelab.runs import Run
from pages.shared import state, widgets
from pages.shared.hover_map import hover_section
from pages.shared.i18n import _, class_names, current, error_message
from pages.shared.latent_views import decode_anywhere, projection_seconds, timelapse_section, units_section
from pages.shared.reduction_views import comparison_section, hashing_section
from pages.shared.sidebar import through_router

through_router()


def view_settings(n_max: int) -> dict:
    """The projection's widgets (first values from a link such as ?method=tsne&dims=3&n=10000): the method,
    the dimensions, the number of codes and the method's ``options`` (the keywords of latent.project)."""
    n_min, link = min(100, n_max), st.query_params
    st.session_state.setdefault("lat_method", link.get("method") if link.get("method") in latent.PROJECTIONS
                                else "pca")
    st.session_state.setdefault("lat_dims", 3 if link.get("dims") == "3" else 2)
    n_link = link.get("n", "")
    st.session_state.setdefault("lat_n", min(max(int(n_link), n_min), n_max) if n_link.isdigit() else min(5000, n_max))
    c = st.columns([2, 1, 3])
    view = {"method": c[0].radio(_("Projection"), list(latent.PROJECTIONS), horizontal=True, key="lat_method",
                                 format_func=latent.PROJECTIONS.get,
                                 help=_("PCA is linear and instant; t-SNE keeps neighbours together; UMAP too, and "
                                      "keeps more of the global layout (both take seconds).")),
            "dims": c[1].radio(_("Dimensions"), [2, 3], horizontal=True, key="lat_dims"),
            "n": n_max, "options": {"seed": 0}}
    if n_min < n_max:   # a small upload may have fewer test images than a slider needs
        view["n"] = c[2].slider(_("Test images"), n_min, n_max, step=100 if n_max >= 1000 else 1, key="lat_n",
                                help=_("How many test images to encode (t-SNE takes about 1.7 s per 1,000 here)."))
    else:
        c[2].caption(_("All {n} test images").format(n=n_max))
    options = view["options"]
    if view["method"] == "tsne":
        with st.expander(_("t-SNE settings"), expanded=False):
            t = st.columns(4)
            options["perplexity"] = t[0].slider(_("Perplexity"), 5.0, 100.0, 30.0, key="lat_perp",
                                                help=_("About how many neighbours each point cares about."))
            lr = t[1].number_input(_("Learning rate (0 = auto)"), 0.0, 5000.0, 0.0, key="lat_lr")
            options["learning_rate"] = "auto" if lr == 0 else lr
            options["max_iter"] = t[2].slider(_("Iterations"), 250, 2000, 750, step=50, key="lat_iter",
                                              help=_("Gradient steps (the first 250 exaggerate clusters)."))
            options["seed"] = t[3].number_input(_("Seed"), 0, 10_000, 0, key="lat_seed")
    elif view["method"] == "umap":
        with st.expander(_("UMAP settings"), expanded=False):
            u = st.columns(3)
            options["n_neighbors"] = u[0].slider(
                _("Neighbours"), 2, min(200, view["n"] - 1), min(15, view["n"] - 1), key="lat_neighbors",
                help=_("How many neighbours shape each point's place: few keep fine local detail, many show "
                     "more of the overall layout."))
            options["min_dist"] = u[1].slider(
                _("Minimum distance"), 0.0, 1.0, 0.1, step=0.05, key="lat_min_dist",
                help=_("How tightly points may pack: small values give dense clumps, large ones spread them out."))
            options["seed"] = u[2].number_input(_("Seed"), 0, 10_000, 0, key="lat_umap_seed")
    return view


def projection_task(run: Run, model, view: dict):
    """The projection as a background task in a worker process, shared by all sessions, so that neither
    the encoding nor a long t-SNE or UMAP costs the server; waits (and stops the page) while it runs."""
    n, method = view["n"], view["method"]
    task = widgets.task("projection", run, n, method, view["dims"], **view["options"])
    if method == "pca":
        task.join(30)   # a warm worker encodes and projects in about a second
    if not task.finished:
        widgets.wait_for_task(task, projection_seconds(method, n, view["options"]),
                              _("{method} of {n:,} codes ({dims}-D)").format(
                                  method=latent.PROJECTIONS[method], n=n, dims=model.latent_dim),
                              _("You can change settings or visit other pages meanwhile."))
        st.stop()
    if task.status != "finished":
        raise ValueError(error_message(task.error) if task.error else
                         _("the projection was cancelled; change a setting to try again"))
    return task


def scatter(run: Run, model, ds, view: dict, task) -> list:
    """The map of the codes (clickable plane for decoding), its CSV, and the selected points."""
    proj = task.result[0]
    n, dims, label = view["n"], view["dims"], latent.PROJECTIONS[view["method"]]
    labels = ds.y_test[:n].numpy()
    title = _("{method} of {n} test codes ({dims}-D) · {run}").format(method=label, n=n, dims=model.latent_dim,
                                                                     run=run.name)
    if proj.explained_variance is not None:
        title += _(" · explained variance {shares}").format(
            shares=", ".join(f"{v:.1%}" for v in proj.explained_variance))
    names = class_names(ds.name, ds.class_names)
    title += _(" · computed in {seconds:.1f} s").format(seconds=task.elapsed)
    fig = figures.latent_scatter(proj.coords, labels, names, title, lang=current())
    if dims == 2 and model.can_reconstruct:
        figures.add_decode_layer(fig, latent.plane_bounds(proj.coords),
                                 (st.session_state.get("dec_x"), st.session_state.get("dec_y")))
    event = st.plotly_chart(fig, key="lat_plot", on_select="rerun", selection_mode=("points", "box", "lasso"))
    frame = pd.DataFrame(proj.coords, columns=["x", "y", "z"][:dims])
    frame.insert(0, "index", range(n))
    frame.insert(1, "class", [ds.class_names[i] for i in labels])   # the file keeps the stored names
    st.download_button(_("Download coordinates (CSV)"), frame.to_csv(index=False),
                       f"{run.name}-{view['method']}{dims}d.csv", mime="text/csv", icon=":material/download:")
    return event.selection.points if event and event.selection else []


def selection(model, ds, points: list, decodable: bool, dims: int) -> None:
    """A click on the plane decodes there; box or lasso shows the images inside."""
    clicked = [p for p in points if figures.custom_value(p) == figures.DECODE_MARK]
    if decodable and clicked and (clicked[-1]["x"], clicked[-1]["y"]) != st.session_state.get("dec_click"):
        st.session_state["dec_click"] = (clicked[-1]["x"], clicked[-1]["y"])   # a click on the plane: decode there
        st.session_state["dec_x"], st.session_state["dec_y"] = clicked[-1]["x"], clicked[-1]["y"]
        st.rerun()
    selected = sorted({int(figures.custom_value(p)) if figures.custom_value(p) is not None else p["point_index"]
                       for p in points if figures.custom_value(p) != figures.DECODE_MARK})
    if selected and model.can_reconstruct:
        st.markdown(_("**{n} selected images** (each original above its reconstruction; first 30)").format(
            n=len(selected)))
        widgets.images(*metrics.pairs(model, ds.x_test[selected[:30]], ncols=15))
    elif selected:
        st.markdown(_("**{n} selected images** (first 30)").format(n=len(selected)))
        widgets.images(data.pixels(ds.x_test[selected[:30]]), ncols=15)
    elif dims == 2:
        st.caption(_("Tip: click anywhere on the plane to decode that point (below); pick the box or lasso tool in "
                   "the chart's toolbar and drag around points to see those images and their reconstructions."))


def probe_section(run: Run, ds) -> None:
    st.subheader(_("How much do the codes know?"))
    if len(ds.class_names) < 2:
        st.caption(_("This data set has no labels, so there is nothing for a probe to predict."))
        return
    p = run.metrics.get("probes")
    if p is None:
        p = widgets.task_result(widgets.task("probes", run), 10, _("Fitting the probes"))
        if p is None:
            return
    st.caption(_("A kNN (k=5) and a logistic regression fitted on codes of {n_train:,} training images and scored "
                 "on {n_test:,} test images, beside the same probes on the raw pixels.").format(
        n_train=p["n_train"], n_test=p["n_test"]))
    table = pd.DataFrame({_("codes"): p["codes"], _("raw pixels"): p["pixels"]}).T
    table.columns = [_("kNN accuracy"), _("logistic regression accuracy")]
    st.dataframe(table.style.format("{:.2%}"))


st.title(_("Latent space"))
run, ds = widgets.run_and_data()
if run and ds and widgets.explain_missing(run, "encode"):
    with widgets.guard(_("Projecting the codes")):
        model = state.model_of(run)
        view = view_settings(min(10_000, len(ds.x_test)))
        task = projection_task(run, model, view)
        decodable = view["dims"] == 2 and model.can_reconstruct
        selection(model, ds, scatter(run, model, ds, view, task), decodable, view["dims"])
        hover_section(run, view, task.result[0].coords)
        if decodable:
            proj, codes = task.result
            decode_anywhere(model, proj, codes, latent.plane_bounds(proj.coords), view["method"])
        timelapse_section(run, ds)
        probe_section(run, ds)
        units_section(run)
        with st.container(key="hashing"):   # a key: the screenshots script finds the section by it
            hashing_section(run, ds)
    with widgets.guard(_("Comparing PCA and autoencoders")), st.container(key="reduction"):
        comparison_section(run.config.data.name)
