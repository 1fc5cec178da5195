"""Generate: prior samples, interpolation, traversal and the 2-D manifold of a VAE."""
import streamlit as st

import aelab
from aelab import figures, generate
from aelab.jobs import JobRefused, registry
from pages import common

common.through_router()

st.title("Generate")
run, ds = common.run_and_data()
if run and ds:
    model = common.model_of(run)
    if not run.config.model.variational:
        st.warning(f"**{run.name}** is not a variational autoencoder. A plain autoencoder maps images to codes but "
                   "says nothing about which codes are likely, so random codes decode to noise. A VAE learns a "
                   "Gaussian code distribution you can sample from.", icon=":material/info:")
        if st.button("Train the VAE recipe", type="primary", icon=":material/play_arrow:", key="train_vae"):
            try:
                job = registry().start(aelab.preset("vae", common.current_dataset_name()), common.user_runs_dir(),
                                       owner=common.session_id())
                st.session_state["job_id"] = job.id
                st.switch_page("pages/train.py")
            except JobRefused as e:
                st.error(str(e), icon=":material/block:")
    else:
        with common.guard("Generating"):
            st.subheader("Samples from the prior")
            c = st.columns(3)
            n = c[0].slider("Samples", 10, 100, 30, step=10, key="gen_n")
            temperature = c[1].slider("Temperature", 0.1, 2.0, 1.0, 0.1, key="gen_temp",
                                      help="Scales the standard deviation of z ~ N(0, I): lower is safer, higher "
                                           "is more varied.")
            seed = c[2].number_input("Seed", 0, 10_000, 0, key="gen_seed")
            st.image(figures.image_grid(generate.sample_prior(model, n, temperature, seed), ncols=10), width="stretch", output_format="PNG")

            left, right = st.columns(2)
            with left:
                st.subheader("Interpolation")
                a = st.columns(3)
                i = a[0].number_input("From test image", 0, len(ds.x_test) - 1, 0, key="gen_a")
                j = a[1].number_input("To test image", 0, len(ds.x_test) - 1, 1, key="gen_b")
                steps = a[2].slider("Steps", 3, 15, 9, key="gen_steps")
                st.caption(f"{ds.class_names[ds.y_test[i]]} → {ds.class_names[ds.y_test[j]]}, decoded from the "
                           "straight line between their codes")
                st.image(figures.image_grid(generate.interpolate(model, ds.x_test[i], ds.x_test[j], steps),
                                            ncols=steps), width="stretch", output_format="PNG")
            with right:
                st.subheader("Traversal of one latent dimension")
                b = st.columns(3)
                dim = b[0].number_input("Dimension", 0, model.latent_dim - 1, 0, key="gen_dim")
                span = b[1].slider("Span (±)", 0.5, 5.0, 3.0, 0.5, key="gen_span")
                k = b[2].number_input("Starting image", 0, len(ds.x_test) - 1, 0, key="gen_k")
                st.caption(f"Code of test image #{k} with dimension {dim} swept from −{span} to +{span}")
                st.image(figures.image_grid(generate.traverse(model, ds.x_test[k], dim, span, 9), ncols=9),
                         width="stretch", output_format="PNG")
            if model.latent_dim == 2:
                st.subheader("The 2-D manifold")
                st.caption("Codes on a grid of Gaussian quantiles, decoded: the whole latent space at a glance.")
                size = st.slider("Grid size", 5, 25, 15, key="gen_grid")
                st.image(figures.image_grid(generate.manifold_grid(model, size)), width=640, output_format="PNG")
            else:
                st.caption(f"The manifold map needs a 2-D latent space (this VAE has {model.latent_dim}); train one "
                           "with latent size 2 to see it.")
