"""Angular-margin family: embeddings learnt by ArcFace / AdaCos classification, scored by the banks."""
