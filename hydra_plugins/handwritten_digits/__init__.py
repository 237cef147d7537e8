"""Hydra plugins of handwritten-digits (found by Hydra's plugin scan of the `hydra_plugins` namespace)."""
