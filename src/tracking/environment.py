"""What a run ran on: Python and library versions, installed packages, the CPU/GPU and their instruction
sets, and the thread counts. A re-run needs it to rebuild the environment; a reader, to weigh a number.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

# The instruction sets that decide how fast (and, for bfloat16, whether) TensorFlow's kernels run here.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu() -> dict[str, str]:
    """The CPU's model name (with family and model: a VM may only say "AMD EPYC") and which of ISA_FLAGS
    it has (Linux: /proc/cpuinfo; elsewhere: the name)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    first: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():  # the first processor's block
        key, _, value = line.partition(":")
        first[key.strip()] = value.strip()
    name = first.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in first and "model" in first:
        name += f" (family {first['cpu family']}, model {first['model']})"
    flags = set(first.get("flags", "").split())
    present = [flag for flag in ISA_FLAGS if flag in flags]
    return {"cpu": name, "cpu_isa": " ".join(present) if text else "unknown"}


def gpus() -> str:
    """The GPUs TensorFlow sees, by name and compute capability ("none" on a CPU-only host)."""
    import tensorflow as tf

    found = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        capability = f" (compute {'.'.join(map(str, capability))})" if capability else ""
        found.append(f"{details.get('device_name', device.name)}{capability}")
    return ", ".join(found) or "none"


def threads() -> dict[str, str]:
    """TensorFlow's thread pools as configured (0: TensorFlow picks one per usable core) and the cores."""
    import tensorflow as tf

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": str(os.cpu_count()),
        "cpus_usable": str(usable),
        "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads()),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": metadata.version("numpy"),
        "mlflow": metadata.version("mlflow"),
        "hydra": metadata.version("hydra-core"),
        "os": platform.platform(),
        # oneDNN's kernels change the order of float additions (TensorFlow's own start-up note)
        "tf_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def describe() -> dict[str, str]:
    """Everything above, flat (logged as env.* tags)."""
    return {**versions(), **cpu(), "gpus": gpus(), **threads()}


def requirements() -> str:
    """The installed packages, one `name==version` a line (pip's requirements format), sorted; not this
    project itself, which comes from the run's commit."""
    installed: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "handwritten-digits":
            installed.setdefault(name.lower(), f"{name}=={dist.version}")
    return "\n".join(installed[key] for key in sorted(installed)) + "\n"
