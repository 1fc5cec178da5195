"""Latent space: encode test images, project with PCA or t-SNE, select points, probe the codes."""
import numpy as np
import pandas as pd
import streamlit as st

from aelab import figures, jobs, latent, metrics
from pages import common

common.through_router()


TSNE_SECONDS_PER_POINT = 1.7 / 1_000   # measured here: 5,000 30-D codes in ~8 s at 750 iterations


def projection(path: str, mtime: float, n: int, method: str, dims: int, perplexity: float, learning_rate,
               max_iter: int, seed: int):
    """(coords, explained variance, params): computed in a background task shared by all sessions, so a
    long t-SNE neither blocks this page's controls nor other pages; None while it runs."""
    run = common.run_at(path)
    model, ds = common.model_of(run), common.dataset(run.config.data.name)

    def compute():
        codes = latent.encode_images(model, ds.x_test[:n])
        proj = latent.project(codes, method, dims, perplexity=perplexity, learning_rate=learning_rate,
                              max_iter=max_iter, seed=seed)
        return proj, codes

    return jobs.task(("projection", path, mtime, n, method, dims, perplexity, learning_rate, max_iter, seed),
                     compute)


@st.cache_data(show_spinner="Fitting the probes…", max_entries=8)
def probes(path: str, mtime: float):
    run = common.run_at(path)
    return metrics.probe_report(common.model_of(run), common.dataset(run.config.data.name))


def plane_bounds(coords: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = coords[:, :2].min(0), coords[:, :2].max(0)
    pad = (hi - lo) * 0.05
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def decode_anywhere(model, proj, codes, bounds, method: str) -> None:
    """Two sliders (or a click on the plane above) pick a point; its code is decoded live."""
    st.subheader("Decode any point of the plane")
    x0, x1, y0, y1 = bounds
    planes = ["projection", "prior"] if model.is_variational else ["projection"]
    plane = st.radio("Plane", planes, horizontal=True, key="dec_plane", label_visibility="collapsed",
                     format_func={"projection": f"the {method.upper() if method == 'pca' else 't-SNE'} plane above",
                                  "prior": "two dimensions of the VAE's prior"}.get) if len(planes) > 1 else planes[0]
    left, right = st.columns([3, 1])
    with left:
        if plane == "prior":
            c = st.columns(2)
            i = c[0].number_input("Dimension on x", 0, model.latent_dim - 1, 0, key="dec_i")
            j = c[1].number_input("Dimension on y", 0, model.latent_dim - 1, min(1, model.latent_dim - 1),
                                  key="dec_j")
            zi = st.slider(f"z[{i}]", -3.0, 3.0, 0.0, 0.1, key="dec_zi")
            zj = st.slider(f"z[{j}]", -3.0, 3.0, 0.0, 0.1, key="dec_zj")
            code = np.zeros(model.latent_dim, np.float32)
            code[i], code[j] = zi, zj
            caption = f"z = 0 except z[{i}] = {zi:.1f}, z[{j}] = {zj:.1f} (the prior is N(0, I))"
        else:
            for k, lo, hi in (("dec_x", x0, x1), ("dec_y", y0, y1)):
                value = st.session_state.get(k)
                if value is None or not lo <= value <= hi:
                    st.session_state[k] = (lo + hi) / 2
            x = st.slider("x", x0, x1, key="dec_x", help="Or click anywhere on the plane above.")
            y = st.slider("y", y0, y1, key="dec_y")
            code = latent.code_at((x, y), proj, codes)
            caption = (f"({x:.2f}, {y:.2f}) through the inverse PCA transform" if method == "pca" else
                       f"the mean code of the 10 test images nearest to ({x:.2f}, {y:.2f}) on the t-SNE map "
                       "(t-SNE has no inverse)")
    image = latent.decode_codes(model, code[None])
    right.image(figures.image_grid(image, ncols=1, scale=max(1, 160 // image.shape[-1])), caption=caption,
                output_format="PNG")


@st.cache_data(show_spinner=False, max_entries=4)
def timeline_of(path: str, mtime: float) -> dict:
    return common.run_at(path).timeline()


def timelapse_section(run, ds) -> None:
    """Codes of fixed validation images after every epoch, projected in comparable frames and animated."""
    timeline = timeline_of(*common.cache_key(run))
    if "codes" not in timeline:
        return
    codes = timeline["codes"]
    st.subheader("How the codes moved during training")
    method = st.radio("Frames", ["pca", "tsne"], horizontal=True, key="lapse_method",
                      format_func={"pca": "PCA fitted on the final codes", "tsne": "t-SNE, warm-started and aligned"}.get,
                      help="PCA: one fixed basis for every epoch. t-SNE: each epoch starts from the previous map and "
                           "is rotated onto it (Procrustes), so only real changes move points.")
    task = jobs.task(("timelapse", *common.cache_key(run), method), latent.timelapse, codes, method)
    if method == "pca":
        task.join(30)
    if not task.done:
        common.wait_for_task(task, len(codes) * codes.shape[1] * TSNE_SECONDS_PER_POINT,
                             f"t-SNE of {codes.shape[1]:,} codes for each of {len(codes)} epochs")
        return
    if task.error:
        st.error(f"The time-lapse failed: {task.error}", icon=":material/error:")
        return
    labels = timeline.get("code_labels")
    labels = labels if labels is not None else np.zeros(codes.shape[1], np.int64)
    st.plotly_chart(figures.timelapse_figure(task.result, labels, ds.class_names,
                                             f"{codes.shape[1]:,} validation codes after each epoch · {run.name}"),
                    key="lapse_plot")
    st.caption("Press ▶ to play, or drag the epoch slider. Epoch 0 is the untrained network.")


st.title("Latent space")
run, ds = common.run_and_data()
if run and ds and common.explain_missing(run, "encode"):
    with common.guard("Projecting the codes"):
        model = common.model_of(run)
        n_max = min(10_000, len(ds.x_test))
        n_min = min(100, n_max)
        link = st.query_params   # a link such as ?method=tsne&dims=3&n=10000 sets the first view
        st.session_state.setdefault("lat_method", link.get("method") if link.get("method") in ("pca", "tsne")
                                    else "pca")
        st.session_state.setdefault("lat_dims", 3 if link.get("dims") == "3" else 2)
        n_link = link.get("n", "")
        st.session_state.setdefault("lat_n", min(max(int(n_link), n_min), n_max) if n_link.isdigit()
                                    else min(5000, n_max))
        c = st.columns([2, 1, 3])
        method = c[0].radio("Projection", ["pca", "tsne"], horizontal=True, key="lat_method",
                            format_func=lambda m: {"pca": "PCA", "tsne": "t-SNE"}[m],
                            help="PCA is linear and instant; t-SNE keeps neighbours together (slower).")
        dims = c[1].radio("Dimensions", [2, 3], horizontal=True, key="lat_dims")
        n = c[2].slider("Test images", n_min, n_max, step=100 if n_max >= 1000 else 1, key="lat_n",
                        help="How many test images to encode (t-SNE takes about 1.7 s per 1,000 here).")
        perplexity, lr, iters, seed = 30.0, "auto", 750, 0
        if method == "tsne":
            with st.expander("t-SNE settings", expanded=False):
                t = st.columns(4)
                perplexity = t[0].slider("Perplexity", 5.0, 100.0, 30.0, key="lat_perp",
                                         help="About how many neighbours each point cares about.")
                lr_choice = t[1].number_input("Learning rate (0 = auto)", 0.0, 5000.0, 0.0, key="lat_lr")
                lr = "auto" if lr_choice == 0 else lr_choice
                iters = t[2].slider("Iterations", 250, 2000, 750, step=50, key="lat_iter",
                                    help="Gradient steps (the first 250 exaggerate clusters).")
                seed = t[3].number_input("Seed", 0, 10_000, 0, key="lat_seed")
        label = "t-SNE" if method == "tsne" else "PCA"
        task = projection(*common.cache_key(run), n, method, dims, perplexity, lr, iters, seed)
        if method == "pca":
            task.join(60)   # PCA takes well under a second
        if not task.done:
            common.wait_for_task(task, n * TSNE_SECONDS_PER_POINT * iters / 750,
                                 f"{label} of {n:,} codes ({model.latent_dim}-D)",
                                 "You can change settings or visit other pages meanwhile.")
            st.stop()
        if task.error:
            raise ValueError(task.error)
        proj, codes = task.result
        coords, variance = proj.coords, proj.explained_variance
        computed_in = f"computed in {task.finished - task.started:.1f} s"
        labels = ds.y_test[:n].numpy()
        title = f"{label} of {n} test codes ({model.latent_dim}-D) · {run.name}"
        if variance is not None:
            title += f" · explained variance {', '.join(f'{v:.1%}' for v in variance)}"
        title += f" · {computed_in}"
        fig = figures.latent_scatter(coords, labels, ds.class_names, title)
        decodable = dims == 2 and model.can_reconstruct
        if decodable:
            bounds = plane_bounds(coords)
            figures.add_decode_layer(fig, bounds, (st.session_state.get("dec_x"), st.session_state.get("dec_y")))
        event = st.plotly_chart(fig, key="lat_plot", on_select="rerun", selection_mode=("points", "box", "lasso"))
        points = event.selection.points if event and event.selection else []
        frame = pd.DataFrame(coords, columns=["x", "y", "z"][:dims])
        frame.insert(0, "index", np.arange(n))
        frame.insert(1, "class", np.asarray(ds.class_names, dtype=object)[labels])
        st.download_button("Download coordinates (CSV)", frame.to_csv(index=False), f"{run.name}-{method}{dims}d.csv",
                           mime="text/csv", icon=":material/download:")

        clicked = [p for p in points if figures.custom_value(p) == figures.DECODE_MARK]
        if decodable and clicked and (clicked[-1]["x"], clicked[-1]["y"]) != st.session_state.get("dec_click"):
            st.session_state["dec_click"] = (clicked[-1]["x"], clicked[-1]["y"])   # a click on the plane: decode there
            st.session_state["dec_x"], st.session_state["dec_y"] = clicked[-1]["x"], clicked[-1]["y"]
            st.rerun()
        selected = sorted({int(figures.custom_value(p)) if figures.custom_value(p) is not None else p["point_index"]
                           for p in points if figures.custom_value(p) != figures.DECODE_MARK})
        if selected and model.can_reconstruct:
            st.markdown(f"**{len(selected)} selected images** (originals above, reconstructions below; first 30)")
            x_in, x_out = metrics.reconstruct(model, ds.x_test[selected[:30]])
            st.image(figures.image_grid(np.concatenate([x_in[:, 0].numpy(), x_out[:, 0].numpy()]),
                                        ncols=min(len(selected), 30) if len(selected) < 30 else 15), width="stretch", output_format="PNG")
        elif selected:
            st.markdown(f"**{len(selected)} selected images** (first 30)")
            st.image(figures.image_grid(ds.x_test[selected[:30]][:, 0].float().numpy() / 255, ncols=15),
                     width="stretch", output_format="PNG")
        elif dims == 2:
            st.caption("Tip: click anywhere on the plane to decode that point (below); pick the box or lasso tool in "
                       "the chart's toolbar and drag around points to see those images and their reconstructions.")

        if decodable:
            decode_anywhere(model, proj, codes, bounds, method)
        timelapse_section(run, ds)

        st.subheader("How much do the codes know?")
        if len(ds.class_names) < 2:
            st.caption("This data set has no labels, so there is nothing for a probe to predict.")
        else:
            p = run.metrics.get("probes") or probes(*common.cache_key(run))
            st.caption(f"A kNN (k=5) and a logistic regression fitted on codes of {p['n_train']:,} training images and "
                       f"scored on {p['n_test']:,} test images, beside the same probes on the raw pixels.")
            table = pd.DataFrame({"codes": p["codes"], "raw pixels": p["pixels"]}).T
            table.columns = ["kNN accuracy", "logistic regression accuracy"]
            st.dataframe(table.style.format("{:.2%}"))
