"""Mixed precision and multi-device data parallelism (prodlib.accelerate)."""

import json
import os
import subprocess
import sys
import textwrap

import keras

from prodlib.accelerate import configure_accelerators
from prodlib.config import get_profile


def test_cpu_only_changes_nothing():
    info = configure_accelerators(get_profile("full"), devices=[])
    assert info["accelerators"] == [] and info["distribution"] == "single device"
    assert info["precision"].startswith("float32 (mixed precision asked for")
    assert keras.mixed_precision.dtype_policy().name == "float32"


def test_mixed_precision_with_a_gpu_keeps_float32_outputs():
    from prodlib.models.kim_cnn import build_kim_cnn

    try:
        info = configure_accelerators(get_profile("full"), devices=["gpu:0"])
        assert info["precision"] == "mixed_float16"
        model = build_kim_cnn(50, 8, 3, embedding_dim=8, filters=4)
        assert model.layers[-1].compute_dtype == "float32"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_jax_data_parallel_over_several_devices_trains():
    code = textwrap.dedent("""
        import json
        import numpy as np
        import keras
        import jax
        from prodlib.accelerate import configure_accelerators
        from prodlib.config import get_profile
        from prodlib.models.kim_cnn import build_kim_cnn
        from prodlib.train import fit_classifier
        info = configure_accelerators(get_profile("smoke"), devices=jax.devices())
        rng = np.random.default_rng(0)
        x = rng.integers(2, 50, size=(64, 8)).astype("int32")
        y = (rng.random((64, 3)) < 0.3).astype("float32")
        model = build_kim_cnn(50, 8, 3, embedding_dim=8, filters=4)
        result = fit_classifier(model, x, y, x[:16], y[:16], epochs=1, batch_size=16, seed=0, verbose=0)
        dist = keras.distribution.distribution()
        print(json.dumps({"info": info, "kind": type(dist).__name__, "epochs": result.epochs_run}))
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["kind"] == "DataParallel" and out["epochs"] == 1
    assert out["info"]["distribution"] == "keras.distribution.DataParallel over 2 devices"
