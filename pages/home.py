import streamlit as st

from pages import common

st.title("AE Lab")
st.markdown("An autoencoder laboratory: train, inspect and sample from autoencoders in your browser.")
name, why = common.default_dataset()
st.info(f"Data set in use: **{name}**. {why}.")
