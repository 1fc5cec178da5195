"""Pretraining: does an encoder trained without labels help a classifier that has only a few?"""

import pandas as pd
import streamlit as st

import aelab
from aelab import figures, pretrain
from aelab.jobs import registry
from aelab.runs import Run, Study
from pages.shared import state, widgets
from pages.shared.sidebar import through_router

through_router()

BUDGETS = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
DEFAULTS = aelab.StudyConfig()


def study_form(encoders: dict[str, Run]) -> None:
    with st.form("study"):
        keys = st.multiselect("Encoders (autoencoder runs of one data set)", list(encoders),
                              default=list(encoders)[:1], format_func=lambda k: widgets.describe(encoders[k]),
                              key="pre_encoders", help="Pick several (plain, denoising, sparse, VAE...) to compare "
                                                       "them on one chart. A VAE's encoder gives its posterior mean.")
        c = st.columns([3, 1, 1, 1])
        labels = c[0].multiselect("Label budgets (labelled training images, balanced over the classes)", BUDGETS,
                                  default=list(DEFAULTS.labels), key="pre_labels")
        seeds = c[1].number_input("Seeds", 1, 10, DEFAULTS.seeds, key="pre_seeds",
                                  help="Each seed draws other labelled images; the chart shows mean ± sd.")
        head = c[2].radio("Head", ["linear", "mlp"], key="pre_head",
                          format_func={"linear": "linear", "mlp": f"MLP ({DEFAULTS.hidden} ReLU)"}.get)
        epochs = c[3].number_input("Epochs", 1, 500, DEFAULTS.epochs, key="pre_epochs",
                                   help=f"Passes over each budget's labelled images, at least {DEFAULTS.min_steps} "
                                        "updates. No early stopping: 10 labels leave nothing to hold out.")
        start = st.form_submit_button("Start the study", icon=":material/play_arrow:", type="primary")
    st.caption(f"Adam, cross-entropy, learning rate {DEFAULTS.lr:g} for the head (and every layer from scratch), "
               f"{DEFAULTS.encoder_lr:g} for the pretrained encoder when fine-tuning (both train from the first "
               f"step), batches of {DEFAULTS.batch_size}. Pixels: scikit-learn's logistic regression. Every "
               "classifier is scored on the whole test set.")
    if start:
        with widgets.guard("Starting the study"):
            if not keys or not labels:
                raise ValueError("pick at least one encoder and one label budget")
            cfg = aelab.StudyConfig(labels=tuple(sorted(labels)), seeds=int(seeds), head=head,
                                    epochs=int(epochs)).validate()
            job = registry().start_study([encoders[k] for k in keys], cfg, state.user_runs_dir(),
                                         owner=state.session_id())
            st.session_state["study_job_id"] = job.id


def live_panel() -> None:
    def chart(snap) -> None:
        if snap.fits:
            st.plotly_chart(figures.study_figure(pretrain.summarize(snap.fits), "So far"), key="pre_live_chart")

    widgets.follow_job("study_job_id", "pre_study", "study", "classifiers trained",
                       "Ends the study after the current classifier; nothing is saved.", chart)


def show_study(study: Study) -> None:
    rows = pretrain.summarize(study.fits)
    st.subheader(study.name)
    st.caption(f"{', '.join(study.meta['encoders'])} on {widgets.dataset_label(study.meta['data'])} · "
               f"{study.config.seeds} seed(s) · {study.config.head} head · {study.config.epochs} epochs (at least "
               f"{study.config.min_steps} updates) · test accuracy on {study.meta.get('n_test', 0):,} images · "
               f"{study.meta.get('seconds', 0):.0f} s")
    st.plotly_chart(figures.study_figure(rows), key="pre_chart")
    table = pd.DataFrame([{"encoder": r["encoder"] or "–", "labels": r["labels"],
                           "variant": pretrain.LABELS[r["variant"]],
                           "accuracy": f"{r['mean']:.1%} ± {r['std']:.1%}"} for r in rows])
    pivot = table.pivot_table(index=["encoder", "variant"], columns="labels", values="accuracy", aggfunc="first")
    st.dataframe(pivot, key="pre_table", height=35 * (len(pivot) + 1) + 3)   # every row, no inner scrolling
    st.markdown(verdict(rows))
    st.download_button("Download (zip: study.json, results.json)", study.archive(), f"{study.name}.zip",
                       mime="application/zip", icon=":material/download:", key="pre_download")


def verdict(rows: list[dict]) -> str:
    """Where the pretrained encoder beat training from scratch and where it did not (pretrain.beats_scratch)."""
    def wins(budgets: list[int], won: list[int]) -> str:
        return f"at {_budgets(won)} labels ({len(won)} of {len(budgets)} budgets)" if won else "at no budget"

    return "\n".join(f"- **{encoder}**: fine-tuning beat training from scratch {wins(b['budgets'], b['finetuned'])}; "
                     f"the frozen encoder beat it {wins(b['budgets'], b['frozen'])}."
                     for encoder, b in pretrain.beats_scratch(rows).items())


def _budgets(values: list[int]) -> str:
    words = [f"{v:,}" for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


st.title("Pretraining")
st.markdown("The second use of autoencoders: an encoder trained on **all** the unlabelled images, reused by a "
            "classifier that has only a few labels. For each budget, four classifiers learn from the same labelled "
            "images: the encoder's architecture **from scratch**, the pretrained encoder **frozen** under a new "
            "head, the pretrained encoder **fine-tuned** with the head, and a logistic regression on the raw "
            "**pixels**. If the codes hold what tells the classes apart, the pretrained lines sit above scratch "
            "where labels are few; with many labels, scratch catches up. The numbers decide: a frozen encoder "
            "can lose to scratch.")
runs, _ = state.scan_runs()
encoders = {k: r for k, r in runs.items() if pretrain.pretrainable(r)}
if not encoders:
    st.info("No autoencoder run with labelled data yet. Train one on the **Train** page (the stacked recipe takes "
            "about a minute on Fashion-MNIST).", icon=":material/info:")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
else:
    study_form(encoders)
live_panel()
studies, problems = state.scan_studies()
for name, err in problems.items():
    st.warning(f"Skipped a damaged study: {err}", icon=":material/warning:")
if studies:
    st.divider()
    if st.session_state.get("pre_study") not in studies:
        st.session_state.pop("pre_study", None)
    key = st.selectbox("Study", list(studies), key="pre_study",
                       format_func=lambda k: f"{studies[k].name} ({', '.join(studies[k].meta['encoders'])})")
    show_study(studies[key])
