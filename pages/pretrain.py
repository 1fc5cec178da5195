"""Pretraining: does an encoder trained without labels help a classifier that has only a few?"""

import pandas as pd
import streamlit as st

import aelab
from aelab import figures, pretrain
from aelab.jobs import registry
from aelab.runs import Run, Study
from pages.shared import state, widgets
from pages.shared.i18n import _, current
from pages.shared.sidebar import through_router

through_router()

BUDGETS = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
DEFAULTS = aelab.StudyConfig()


def study_form(encoders: dict[str, Run]) -> None:
    with st.form("study"):
        keys = st.multiselect(_("Encoders (autoencoder runs of one data set)"), list(encoders),
                              default=list(encoders)[:1], format_func=widgets.described(encoders).get,
                              key="pre_encoders",
                              help=_("Pick several (plain, denoising, sparse, VAE...) to compare them on one chart. "
                                     "A VAE's encoder gives its posterior mean."))
        c = st.columns([3, 1, 1, 1])
        labels = c[0].multiselect(_("Label budgets (labelled training images, balanced over the classes)"),
                                  BUDGETS, default=list(DEFAULTS.labels), key="pre_labels")
        seeds = c[1].number_input(_("Seeds"), 1, 10, DEFAULTS.seeds, key="pre_seeds",
                                  help=_("Each seed draws other labelled images; the chart shows mean ± sd."))
        heads = {"linear": _("linear"), "mlp": _("MLP ({hidden} ReLU)").format(hidden=DEFAULTS.hidden)}
        head = c[2].radio(_("Head"), ["linear", "mlp"], key="pre_head", format_func=heads.get)
        epochs = c[3].number_input(_("Epochs"), 1, 500, DEFAULTS.epochs, key="pre_epochs",
                                   help=_("Passes over each budget's labelled images, at least {steps} updates. No "
                                          "early stopping: 10 labels leave nothing to hold out.").format(
                                       steps=DEFAULTS.min_steps))
        start = st.form_submit_button(_("Start the study"), icon=":material/play_arrow:", type="primary")
    st.caption(_("Adam, cross-entropy, learning rate {lr:g} for the head (and every layer from scratch), "
                 "{encoder_lr:g} for the pretrained encoder when fine-tuning (both train from the first step), "
                 "batches of {batch}. Pixels: scikit-learn's logistic regression. Every classifier is scored on "
                 "the whole test set.").format(lr=DEFAULTS.lr, encoder_lr=DEFAULTS.encoder_lr,
                                               batch=DEFAULTS.batch_size))
    if start:
        with widgets.guard(_("Starting the study")):
            if not keys or not labels:
                raise ValueError(_("pick at least one encoder and one label budget"))
            cfg = aelab.StudyConfig(labels=tuple(sorted(labels)), seeds=int(seeds), head=head,
                                    epochs=int(epochs)).validate()
            job = registry().start_study([encoders[k] for k in keys], cfg, state.user_runs_dir(),
                                         owner=state.session_id())
            st.session_state["study_job_id"] = job.id


def live_panel() -> None:
    def chart(snap) -> None:
        if snap.fits:
            st.plotly_chart(figures.study_figure(pretrain.summarize(snap.fits), _("So far"), lang=current()),
                            key="pre_live_chart")

    widgets.follow_job("study_job_id", "pre_study", _("study"), _("classifiers trained"),
                       _("Ends the study after the current classifier; nothing is saved."), chart)


def show_study(study: Study) -> None:
    rows = pretrain.summarize(study.fits)
    st.subheader(study.name)
    st.caption(_("{encoders} on {data} · {seeds} seed(s) · {head} head · {epochs} epochs (at least {steps} "
                 "updates) · test accuracy on {n_test:,} images · {seconds:.0f} s").format(
        encoders=", ".join(study.meta["encoders"]), data=widgets.dataset_label(study.meta["data"]),
        seeds=study.config.seeds, head=study.config.head, epochs=study.config.epochs, steps=study.config.min_steps,
        n_test=study.meta.get("n_test", 0), seconds=study.meta.get("seconds", 0)))
    st.plotly_chart(figures.study_figure(rows, lang=current()), key="pre_chart")
    encoder, labels, variant, accuracy = _("encoder"), _("labels"), _("variant"), _("accuracy")
    table = pd.DataFrame([{encoder: r["encoder"] or "–", labels: r["labels"], variant: _(pretrain.LABELS[r["variant"]]),
                           accuracy: f"{r['mean']:.1%} ± {r['std']:.1%}"} for r in rows])
    pivot = table.pivot_table(index=[encoder, variant], columns=labels, values=accuracy, aggfunc="first")
    st.dataframe(pivot, key="pre_table", height=35 * (len(pivot) + 1) + 3)   # every row, no inner scrolling
    st.markdown(verdict(rows))
    st.download_button(_("Download (zip: study.json, results.json)"), study.archive(), f"{study.name}.zip",
                       mime="application/zip", icon=":material/download:", key="pre_download")


def verdict(rows: list[dict]) -> str:
    """Where the pretrained encoder beat training from scratch and where it did not (pretrain.beats_scratch)."""
    def wins(budgets: list[int], won: list[int]) -> str:
        if not won:
            return _("at no budget")
        return _("at {budgets} labels ({won} of {total} budgets)").format(
            budgets=", ".join(f"{v:,}" for v in won), won=len(won), total=len(budgets))

    return "\n".join("- " + _("**{encoder}**: fine-tuning beat training from scratch {finetuned}; the frozen "
                             "encoder beat it {frozen}.").format(encoder=encoder, finetuned=wins(b["budgets"],
                                                                                                b["finetuned"]),
                                                                frozen=wins(b["budgets"], b["frozen"]))
                     for encoder, b in pretrain.beats_scratch(rows).items())


st.title(_("Pretraining"))
st.markdown(_("The second use of autoencoders: an encoder trained on **all** the unlabelled images, reused by a "
            "classifier that has only a few labels. For each budget, four classifiers learn from the same labelled "
            "images: the encoder's architecture **from scratch**, the pretrained encoder **frozen** under a new "
            "head, the pretrained encoder **fine-tuned** with the head, and a logistic regression on the raw "
            "**pixels**. If the codes hold what tells the classes apart, the pretrained lines sit above scratch "
            "where labels are few; with many labels, scratch catches up. The numbers decide: a frozen encoder "
            "can lose to scratch."))
runs, _problems = state.scan_runs()
encoders = {k: r for k, r in runs.items() if pretrain.pretrainable(r)}
if not encoders:
    st.info(_("No autoencoder run with labelled data yet. Train one on the **Train** page (the stacked recipe "
              "takes about a minute on Fashion-MNIST)."), icon=":material/info:")
    st.page_link("pages/train.py", label=_("Go to Train"), icon=":material/model_training:")
else:
    study_form(encoders)
live_panel()
studies, problems = state.scan_studies()
for name, err in problems.items():
    st.warning(_("Skipped a damaged study: {reason}").format(reason=err), icon=":material/warning:")
if studies:
    st.divider()
    if st.session_state.get("pre_study") not in studies:
        st.session_state.pop("pre_study", None)
    named = {k: f"{s.name} ({', '.join(s.meta['encoders'])})" for k, s in studies.items()}
    key = st.selectbox(_("Study"), list(studies), key="pre_study", format_func=named.get)
    show_study(studies[key])
