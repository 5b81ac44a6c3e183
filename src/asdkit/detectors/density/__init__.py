"""Density family: section-conditioned flows and autoencoders with proxy outliers.

made, maf, density_ae (CP-JKU 2021)."""
