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
        return proj.coords, proj.explained_variance, proj.params

    return jobs.task(("projection", path, mtime, n, method, dims, perplexity, learning_rate, max_iter, seed),
                     compute)


@st.cache_data(show_spinner="Fitting the probes…", max_entries=8)
def probes(path: str, mtime: float):
    run = common.run_at(path)
    return metrics.probe_report(common.model_of(run), common.dataset(run.config.data.name))


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
            @st.fragment(run_every=2.0)   # each redraw costs the projection CPU on a small server
            def wait_for_projection():
                estimate = n * TSNE_SECONDS_PER_POINT * iters / 750
                st.progress(min(task.elapsed / estimate, 0.99),
                            text=f"{label} of {n:,} codes ({model.latent_dim}-D): {task.elapsed:.0f} s of about "
                                 f"{estimate:.0f} s. You can change settings or visit other pages meanwhile.")
                if task.done:
                    st.rerun()
            wait_for_projection()
            st.stop()
        if task.error:
            raise ValueError(task.error)
        coords, variance, params = task.result
        computed_in = f"computed in {task.finished - task.started:.1f} s"
        labels = ds.y_test[:n].numpy()
        title = f"{label} of {n} test codes ({model.latent_dim}-D) · {run.name}"
        if variance is not None:
            title += f" · explained variance {', '.join(f'{v:.1%}' for v in variance)}"
        title += f" · {computed_in}"
        event = st.plotly_chart(figures.latent_scatter(coords, labels, ds.class_names, title), key="lat_plot",
                                on_select="rerun", selection_mode=("points", "box", "lasso"))
        frame = pd.DataFrame(coords, columns=["x", "y", "z"][:dims])
        frame.insert(0, "index", np.arange(n))
        frame.insert(1, "class", np.asarray(ds.class_names, dtype=object)[labels])
        st.download_button("Download coordinates (CSV)", frame.to_csv(index=False), f"{run.name}-{method}{dims}d.csv",
                           mime="text/csv", icon=":material/download:")

        selected = sorted({p["customdata"][0] if p.get("customdata") else p["point_index"]
                           for p in (event.selection.points if event and event.selection else [])})
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
            st.caption("Tip: drag a box or lasso around points to see those images and their reconstructions.")

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
