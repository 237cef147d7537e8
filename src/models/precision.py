"""training.precision=auto: mixed bfloat16 only where this machine runs it faster, as measured here.

CPU flags do not tell: an Intel Xeon that lists avx512_bf16 ran a bfloat16 matrix product at 0.58x
float32, an AMD EPYC with the same flag at over 2x. So a short probe times the kind of work a run does
(a 3x3 convolution and a matrix product, as in the frozen backbone's forward pass) in both precisions,
and bfloat16 is chosen only if it is clearly faster. The result is kept per machine in a small JSON
file under experiments/ (training.precision_probe), never in HOME, so a run pays the second once.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# bfloat16 must beat float32 by this much: below it, the exact float32 arithmetic is worth more
FASTER = 1.2


def choose(requested: str, probe_file: str | Path | None) -> tuple[str, str]:
    """The policy to train with and how it was chosen (recorded on the run)."""
    if requested != "auto":
        return requested, "set"
    speedup, source = bfloat16_speedup(probe_file)
    policy = "mixed_bfloat16" if speedup >= FASTER else "float32"
    how = f"auto: bfloat16 ran at {speedup:.2f}x float32 here ({source}; chosen from {FASTER}x)"
    log.info("precision %s (%s)", policy, how)
    return policy, how


def machine() -> str:
    """What the probe's result belongs to: this CPU model, core count and TensorFlow."""
    import tensorflow as tf

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} | {os.cpu_count()} cpus | tensorflow {tf.__version__}"


def bfloat16_speedup(probe_file: str | Path | None) -> tuple[float, str]:
    """float32 time / bfloat16 time of the probe: probe_file's for this machine, else measured now."""
    key = machine()
    path = Path(probe_file) if probe_file else None
    if path is not None and path.is_file():
        try:
            known = json.loads(path.read_text()).get(key)
            if known is not None:
                return float(known["speedup"]), f"measured {known['date']}, {path}"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("precision probe: %s is unreadable; measuring again", path)
    speedup = measure()
    if path is not None:
        try:
            stored = json.loads(path.read_text()) if path.is_file() else {}
            if not isinstance(stored, dict):
                stored = {}
        except (OSError, ValueError):
            stored = {}
        stored[key] = {"speedup": speedup, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(stored, indent=2) + "\n")
        os.replace(partial, path)  # parallel jobs never read half a file
    return speedup, "measured now"


def measure(seconds: float = 0.5) -> float:
    """float32 time / bfloat16 time of a 3x3 convolution and a matrix product (about a second in all)."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    images, kernel = rng.normal((64, 16, 16, 128)), rng.normal((3, 3, 128, 128))
    left, right = rng.normal((512, 2304)), rng.normal((2304, 512))

    def work(dtype: tf.DType) -> float:
        a, k, m, n = (tf.cast(t, dtype) for t in (images, kernel, left, right))
        step = tf.function(lambda: (tf.nn.conv2d(a, k, 1, "SAME"), tf.matmul(m, n)))
        for out in step():  # tracing and first allocation, not timed
            out.numpy()
        best, deadline = float("inf"), time.perf_counter() + seconds / 2
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            for out in step():
                out.numpy()
            best = min(best, time.perf_counter() - start)
        return best

    return work(tf.float32) / work(tf.bfloat16)
