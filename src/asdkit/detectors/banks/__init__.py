"""Memory-bank family: clip or frame embeddings kept per section and domain.

knn, mahalanobis, gmm (clip statistics) and patch_bank (frames)."""
