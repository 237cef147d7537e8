"""Data: MNIST (the full download or the offline sample), its splits, the tf.data pipelines, and pictures of
numbers composed from MNIST digits (the reading benchmark's).

The package's names are MNIST's: `from src import data; data.load_digits(cfg.data)`.
"""

from src.data.mnist import (
    IMAGE_SHAPE,
    MNIST_URL,
    NUM_CLASSES,
    SAMPLE_PATH,
    Digits,
    batches,
    download_mnist,
    load_digits,
    make_dataset,
    pipeline_options,
    read_npz,
)

__all__ = [
    "IMAGE_SHAPE", "MNIST_URL", "NUM_CLASSES", "SAMPLE_PATH", "Digits", "batches", "download_mnist",
    "load_digits", "make_dataset", "pipeline_options", "read_npz",
]  # fmt: skip
