"""Analyses of trained models: embedding structure (cosine-similarity PCA, separation scores)."""
