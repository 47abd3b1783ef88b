"""Model registry, model files, and inference backends."""
