"""Accelerators: mixed precision and data parallelism over several GPUs, through each backend's own API.
:func:`configure_accelerators` runs in every training notebook (02–05) through
:func:`prodlib.artifacts.start_stage`; with no GPU it changes nothing. Explained in *Reproduce it yourself*.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from prodlib.config import Profile

__all__ = ["accelerators", "configure_accelerators"]


def accelerators(modules: Mapping[str, Any] | None = None) -> list[Any]:
    """The GPUs (or TPUs) the Keras backend sees, ``[]`` on a CPU-only machine: prodlib's one GPU probe. With
    ``modules`` (e.g. ``sys.modules``) only a library already imported there is asked; a failing probe means none."""
    if modules is None:
        import keras

        backend = keras.backend.backend()
        modules = {backend: importlib.import_module(backend)}
    try:
        if "tensorflow" in modules:
            return list(modules["tensorflow"].config.list_physical_devices("GPU"))
        if "jax" in modules:
            return [d for d in modules["jax"].devices() if d.platform != "cpu"]
        if "torch" in modules:
            cuda = modules["torch"].cuda
            return [f"cuda:{i}" for i in range(cuda.device_count())] if cuda.is_available() else []
    except Exception:  # a probe must never break a run
        return []
    return []


def configure_accelerators(profile: Profile, *, devices: Sequence[Any] | None = None) -> dict[str, Any]:
    """With GPUs and ``profile.mixed_precision``, Keras' ``mixed_float16`` policy; with several, data parallelism
    (``DataParallel`` on JAX, ``MirroredStrategy`` on TensorFlow). ``devices`` overrides the detected ones (tests).
    Returns ``backend``, ``accelerators``, ``precision`` and ``distribution`` for the manifest."""
    import keras

    backend = keras.backend.backend()
    found = accelerators() if devices is None else list(devices)
    info: dict[str, Any] = {"backend": backend, "accelerators": [str(d) for d in found],
                            "precision": "float32", "distribution": "single device"}
    if profile.mixed_precision and found:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        info["precision"] = "mixed_float16"
    elif profile.mixed_precision:
        info["precision"] = "float32 (mixed precision asked for, but there is no GPU)"
    if len(found) > 1:
        if backend == "jax":
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=list(found)))
            info["distribution"] = f"keras.distribution.DataParallel over {len(found)} devices"
        elif backend == "tensorflow":
            import tensorflow as tf

            tf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy())
            info["distribution"] = f"tf.distribute.MirroredStrategy over {len(found)} GPUs"
        else:
            info["distribution"] = f"single device ({backend}: Keras has no data-parallel API for it)"
    return info
