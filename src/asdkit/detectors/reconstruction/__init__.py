"""Reconstruction family: networks that rebuild their input (ae, vae, conv_ae, idnn)."""
