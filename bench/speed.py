"""Speed: the machine's matrix-product peak, VGG16's forward pass against it in both precisions, the
default study's echoed view against that pass, and the framework's training throughput against plain
model.fit, in float32 and mixed_bfloat16."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.context import Bench
from bench.runs import compose, framework_run

# the throughput rows compare float32 runs (training.precision=auto would choose per machine)
COMMON = [
    "backbone.weights=null", "augmentation=none", "~training.callbacks.early_stopping",
    "training.precision=float32",
]  # fmt: skip


def matmul_peak(n: int = 2048, dtype: str = "float32", seconds: float = 3.0) -> float:
    """GFLOP/s of a square matrix product, the machine's practical ceiling for dense layers."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda x: tf.matmul(x, x))
    product(a).numpy()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            result = product(a)
        result.numpy()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def conv_flops(model: Any) -> float:
    """Multiply-adds x 2 of the conv and dense layers for one image."""
    from src.models.networks import leaf_layers

    flops = 0.0
    for layer in leaf_layers(model):
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            flops += 2.0 * h * w * c_out * kh * kw * layer.input.shape[-1]
        elif kind == "Dense":
            flops += 2.0 * layer.input.shape[-1] * layer.units
    return flops


def forward_throughput(
    precision: str, images: int = 2048, batch: int = 256, passes: int = 3
) -> tuple[float, float, float]:
    """VGG16 (32x32, no top) images per second as the framework runs a frozen backbone, the same with
    Keras's layers as they are, and the nominal GFLOP per image."""
    import keras

    from src import data
    from src.models import networks

    networks.set_precision(precision)
    network = networks.build_model(compose("backbone.weights=null"))
    x = data.batches(np.random.default_rng(0).integers(0, 256, (images, 28, 28, 1)).astype(np.uint8), batch)
    rates = []
    for features in (network.forward_features, network.features):
        features.predict(x, verbose=0)  # a whole first pass: tracing, allocation
        best = 0.0
        for _ in range(passes):  # the best of `passes`: passes on 2 shared cores vary by up to a quarter
            start = time.perf_counter()
            features.predict(x, verbose=0)
            best = max(best, images / (time.perf_counter() - start))
        rates.append(best)
    gflop = conv_flops(network.features) / 1e9
    networks.set_precision("float32")
    keras.backend.clear_session()
    return rates[0], rates[1], gflop


def echo_view_cost(precision: str, images: int) -> float:
    """The default study's echoed view (its augmentation, rotation, over whole batches, then the frozen
    VGG16's forward pass, as src/training/features.py computes each view) over the forward pass alone,
    on the same digits: the best of two passes each."""
    import keras
    from hydra.utils import instantiate

    from src import data
    from src.models import networks
    from src.training.features import _views

    networks.set_precision(precision)
    cfg = compose("backbone.weights=null")
    network = networks.build_model(cfg)
    augment = keras.Sequential([instantiate(layer) for layer in cfg.augmentation.layers])
    x = np.random.default_rng(0).integers(0, 256, (images, 28, 28)).astype(np.uint8)
    network.forward_features.predict(data.batches(x[:512, ..., None], 256), verbose=0)  # tracing
    _views(network, x[:512], augment, 1, 256)
    times: dict[str, list[float]] = {"forward": [], "view": []}
    for _ in range(2):
        start = time.perf_counter()
        network.forward_features.predict(data.batches(x[..., None], 256), verbose=0)
        times["forward"].append(time.perf_counter() - start)
        start = time.perf_counter()
        _views(network, x, augment, 1, 256)
        times["view"].append(time.perf_counter() - start)
    networks.set_precision("float32")
    keras.backend.clear_session()
    return min(times["view"]) / min(times["forward"])


def plain_fit(data_overrides: list[str], epochs: int = 3, batch: int = 32) -> float:
    """The same model fed from in-memory tensors with plain model.fit: images/s of its fastest later epoch."""
    import keras

    from src import data
    from src.models import networks

    networks.set_precision("float32")
    keras.utils.set_random_seed(42)
    cfg = compose("backbone.weights=null", "augmentation=none", *data_overrides)
    digits = data.load_digits(cfg.data)
    network = networks.build_model(cfg)
    trainee = network.trainee  # the model the framework trains: the frozen backbone's fast twin
    trainee.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter() - self.start)

    x = keras.ops.convert_to_tensor(digits.x_train[..., None].astype(np.float32))
    validation = (digits.x_val[..., None].astype(np.float32), digits.y_val)  # the framework validates too
    trainee.fit(
        x, digits.y_train, batch_size=batch, epochs=epochs, verbose=0, callbacks=[Clock()],
        validation_data=validation,
    )  # fmt: skip
    return len(digits.y_train) / min(times[1:])


def peak_and_precision() -> dict:
    """The matrix product's peak in both precisions, and the precision probe: where bf16 does not pay, no
    run uses it, and the quick bench skips timing it."""
    from src.models import precision

    rows: dict[str, Any] = {
        "matmul_gflops_float32": matmul_peak(dtype="float32"),
        "matmul_gflops_bfloat16": matmul_peak(dtype="bfloat16"),
        "precision_probe_bf16_speedup": precision.measure(),
    }
    faster = rows["precision_probe_bf16_speedup"] >= precision.FASTER
    rows["precision_auto_chooses"] = "mixed_bfloat16" if faster else "float32"
    return rows


def forward(b: Bench) -> dict:
    # quick: 512 images, the best of two passes (1024 and three: 70 s of a 20-minute bench on a slow CPU)
    sizes: dict[str, int] = {"images": 512, "passes": 2} if b.quick else {"images": 4096}
    rate32, keras32, gflop = forward_throughput("float32", **sizes)
    rate16, keras16, _ = forward_throughput("mixed_bfloat16", **sizes)
    return {
        "vgg16_gflop_per_image": gflop,
        "vgg16_forward_images_s_float32": rate32,
        "vgg16_forward_images_s_bfloat16": rate16,
        "vgg16_forward_images_s_float32_keras_layers": keras32,
        "vgg16_forward_images_s_bfloat16_keras_layers": keras16,
        "vgg16_forward_fraction_of_peak": rate32 * gflop / b.r["matmul_gflops_float32"],
    }


def echo_view(b: Bench) -> dict:
    images = 2048 if b.quick else 8192
    rows = {f"echo_view_vs_forward_{p}": echo_view_cost(p, images) for p in ("float32", "mixed_bfloat16")}
    rows["echo_view_vs_forward"] = max(rows.values())
    return rows


def fit_size(b: Bench) -> int:
    return 2000 if b.quick else 12800  # quick: the throughput of the fastest later epoch, in half the time


def sample(b: Bench) -> list[str]:
    """The digits the throughput rows train on."""
    if b.quick:
        return ["data=mnist_sample", f"data.train_limit={fit_size(b)}", "data.val_split=0.1"]
    return ["data=mnist", *b.data_path, f"data.train_limit={fit_size(b)}"]


def framework_vs_plain(b: Bench) -> dict:
    uncached = ["training.epochs=3", "training.feature_cache=false"]
    framework = framework_run(b.store, *COMMON, *sample(b), *uncached)
    # the fastest epoch after the first: a 2-core machine has outlier epochs far slower than the rest
    rows = {"framework_train_images_s": framework["train_size"] / min(framework["epoch_times_s"][1:])}
    rows["plain_fit_train_images_s"] = plain_fit(sample(b))
    rows["framework_vs_plain"] = rows["framework_train_images_s"] / rows["plain_fit_train_images_s"]
    rows["float32_test_accuracy"] = framework["test_accuracy"]
    return rows


def bf16_vs_float32(b: Bench) -> dict:
    bf16 = framework_run(
        b.store, *COMMON, *sample(b), "training.epochs=3", "training.feature_cache=false",
        "training.precision=mixed_bfloat16",  # after float32 in COMMON: the later override wins
    )  # fmt: skip
    rate = bf16["train_size"] / min(bf16["epoch_times_s"][1:])
    return {
        "bf16_train_images_s": rate,
        "bf16_vs_float32_train": rate / b.r["framework_train_images_s"],
        "bf16_test_accuracy": bf16["test_accuracy"],
    }
