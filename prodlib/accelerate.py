"""Accelerators: mixed precision and data parallelism across several GPUs, through each backend's own API.

``configure_accelerators(profile)`` is called by every training notebook (02–05) through
:func:`prodlib.train.start_stage`. With no GPU it changes nothing. With GPUs and ``profile.mixed_precision``
it sets Keras' ``mixed_float16`` policy (output layers stay ``float32``). With several GPUs it spreads each
batch over all of them: ``keras.distribution.DataParallel`` on JAX, ``tf.distribute.MirroredStrategy`` on
TensorFlow; PyTorch runs on one GPU. The result is recorded in each stage's manifest. Explained in the
*Reproduce it yourself* chapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prodlib.config import Profile

__all__ = ["accelerators", "configure_accelerators"]


def accelerators() -> list[Any]:
    """The GPUs (or TPUs) the current Keras backend sees; ``[]`` on a CPU-only machine."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [d for d in jax.devices() if d.platform != "cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return list(tf.config.list_logical_devices("GPU"))
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return []


def configure_accelerators(profile: Profile, *, devices: Sequence[Any] | None = None) -> dict[str, Any]:
    """Set mixed precision and multi-device data parallelism as ``profile`` and the hardware allow.

    ``devices`` overrides the detected accelerators (tests pass JAX's host devices). Returns what was set,
    for the manifest: ``backend``, ``accelerators``, ``precision`` and ``distribution``.
    """
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
