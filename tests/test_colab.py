"""Tests of prodlib.colab: Colab detection, GPU probing with a fake nvidia-smi, the profile choice."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from prodlib import colab
from prodlib.config import ProfileError, get_profile


def fake_nvidia_smi(tmp_path: Path, stdout: str, code: int = 0) -> str:
    """An executable that prints ``stdout`` and exits with ``code``, like nvidia-smi's CSV query."""
    exe = tmp_path / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}\nEOF\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_on_colab_absent_and_present() -> None:
    assert not colab.on_colab({"sys": sys}, {})
    assert colab.on_colab({"google.colab": types.ModuleType("google.colab")}, {})
    assert colab.on_colab({}, {"COLAB_RELEASE_TAG": "release-colab_20250101"})
    assert not colab.on_colab({}, {"COLAB_RELEASE_TAG": ""})


def test_detect_gpus_parses_nvidia_smi(tmp_path: Path) -> None:
    exe = fake_nvidia_smi(tmp_path, "Tesla T4, 15360 MiB\nNVIDIA A100-SXM4-40GB, 40960 MiB")
    assert colab.detect_gpus(nvidia_smi=exe, modules={}) == ("Tesla T4 (15360 MiB)",
                                                            "NVIDIA A100-SXM4-40GB (40960 MiB)")


def test_detect_gpus_absent_or_failing(tmp_path: Path) -> None:
    assert colab.detect_gpus(nvidia_smi=str(tmp_path / "no-such-nvidia-smi"), modules={}) == ()
    failing = fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate", code=9)
    assert colab.detect_gpus(nvidia_smi=failing, modules={}) == ()


def test_detect_gpus_timeout_counts_as_none(tmp_path: Path) -> None:
    def hangs(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(cmd="nvidia-smi", timeout=5)

    exe = fake_nvidia_smi(tmp_path, "Tesla T4, 15360 MiB")
    assert colab.detect_gpus(nvidia_smi=exe, modules={}, run=hangs) == ()


def test_detect_gpus_asks_only_an_already_imported_backend(tmp_path: Path) -> None:
    fake_tf = types.SimpleNamespace(config=types.SimpleNamespace(
        list_physical_devices=lambda kind: [types.SimpleNamespace(name="/physical_device:GPU:0")]))
    missing = str(tmp_path / "absent")
    assert colab.detect_gpus(nvidia_smi=missing, modules={"tensorflow": fake_tf}) == ("/physical_device:GPU:0",)
    broken_jax = types.SimpleNamespace(devices=lambda: 1 / 0)
    assert colab.detect_gpus(nvidia_smi=missing, modules={"jax": broken_jax}) == ()


@pytest.mark.parametrize(
    ("colab_on", "gpu", "env", "expected"),
    [
        (False, False, {}, "smoke"),
        (True, True, {}, "smoke"),
        (True, True, {"PRODLIB_CATALOG": "flipkart:/content/flipkart"}, "sample"),
        (True, False, {"PRODLIB_CATALOG": "flipkart:/content/flipkart"}, "smoke"),
        (False, False, {"PRODLIB_CATALOG": "flipkart:../shared/data/flipkart1050"}, "sample"),
        (True, True, {"PRODLIB_PROFILE": "full"}, "full"),
        (False, False, {"PRODLIB_PROFILE": "sample", "PRODLIB_CATALOG": ""}, "sample"),
    ],
)
def test_choose_profile(colab_on: bool, gpu: bool, env: dict[str, str], expected: str) -> None:
    name, reason = colab.choose_profile(colab=colab_on, has_gpu=gpu, environ=env)
    assert name == expected
    assert reason
    get_profile(name)  # every choice is a real profile


def test_choose_profile_rejects_unknown_name() -> None:
    with pytest.raises(ProfileError, match="smoke, sample, full"):
        colab.choose_profile(colab=False, has_gpu=False, environ={"PRODLIB_PROFILE": "huge"})


def test_setup_notebook_local_without_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env: dict[str, str] = {}
    info = colab.setup_notebook(environ=env, modules={}, nvidia_smi=str(tmp_path / "absent"))
    assert (info.on_colab, info.gpus, info.profile) == (False, (), "smoke")
    assert env["PRODLIB_PROFILE"] == "smoke"
    out = capsys.readouterr().out
    assert "local Python" in out and "none (CPU only)" in out and "profile: smoke" in out
    assert "Change runtime type" not in out


def test_setup_notebook_simulated_colab_without_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env: dict[str, str] = {"PRODLIB_CATALOG": "flipkart:/content/data"}
    info = colab.setup_notebook(environ=env, modules={"google.colab": object()},
                                nvidia_smi=str(tmp_path / "absent"))
    assert info.on_colab and not info.has_gpu
    assert info.profile == "smoke"
    out = capsys.readouterr().out
    assert "Google Colab" in out
    assert "Runtime > Change runtime type" in out
    assert "earlier stages this notebook needs are run first" in out and "Google Drive" in out


def test_setup_notebook_simulated_colab_with_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"COLAB_RELEASE_TAG": "release-colab", "PRODLIB_CATALOG": "flipkart:/content/data",
           "KERAS_BACKEND": "jax"}
    exe = fake_nvidia_smi(tmp_path, "Tesla T4, 15360 MiB")
    info = colab.setup_notebook(environ=env, modules={}, nvidia_smi=exe)
    assert info.on_colab and info.gpus == ("Tesla T4 (15360 MiB)",)
    assert info.profile == "sample" and env["PRODLIB_PROFILE"] == "sample"
    assert info.keras_backend == "jax"
    out = capsys.readouterr().out
    assert "Tesla T4" in out and "Change runtime type" not in out


def test_setup_notebook_respects_an_explicit_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODLIB_PROFILE", "sample")
    monkeypatch.delenv("PRODLIB_CATALOG", raising=False)
    info = colab.setup_notebook(nvidia_smi=str(tmp_path / "absent"), quiet=True)
    assert info.profile == "sample" and "set by" in info.profile_reason
    assert os.environ["PRODLIB_PROFILE"] == "sample"
    assert get_profile(None).name == "sample"  # the parameters cell's PROFILE = None resolves to it


def test_setup_cell_is_fast_and_imports_no_deep_learning_library() -> None:
    code = ("import sys, time; t=time.perf_counter(); from prodlib.colab import setup_notebook; "
            "setup_notebook(quiet=True); print(time.perf_counter()-t); "
            "print(any(m in sys.modules for m in ('tensorflow', 'jax', 'torch', 'keras')))")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PRODLIB_PROFILE": "smoke"})
    elapsed, imported = done.stdout.split()
    assert float(elapsed) < 1.0, elapsed
    assert imported == "False"
    assert time.perf_counter() - start < 20


def _finished(runs: Path, *stages: str) -> None:
    for stage in stages:
        (runs / "smoke" / stage).mkdir(parents=True)
        (runs / "smoke" / stage / "manifest.json").write_text("{}")


def test_missing_stages_are_the_earlier_ones_without_a_finished_run(tmp_path: Path) -> None:
    _finished(tmp_path, "01_data", "03_description")
    (tmp_path / "smoke" / "02_title").mkdir()  # started, never finished: no manifest
    assert colab.missing_stages("05_fusion", "smoke", tmp_path) == ["02_title_classifier", "04_image_classifier"]
    assert colab.missing_stages("01_data_exploration", "smoke", tmp_path) == []
    assert colab.missing_stages("02_title_classifier", "sample", tmp_path) == ["01_data_exploration"]


def test_without_a_clone_the_repository_is_cloned_for_its_notebooks(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(colab, "repo_root", lambda: tmp_path / "site-packages")  # pip-installed: no _toc.yml
    monkeypatch.setattr(colab, "repository_url", lambda: f"file://{Path(__file__).resolve().parents[1]}")
    monkeypatch.chdir(tmp_path)
    _finished(tmp_path / "drive", "01_data")  # a run folder kept on Google Drive
    said: list[str] = []
    ran = colab.run_missing_stages("02_title_classifier", "smoke", environ={"PRODLIB_RUN_DIR": str(tmp_path / "drive")},
                                   say=said.append)
    assert ran == [] and (tmp_path / "prodlib-repo" / "_toc.yml").is_file()
    assert said == [f"prodlib setup: cloning file://{Path(__file__).resolve().parents[1]} into "
                    f"{tmp_path / 'prodlib-repo'} for the notebooks of the earlier stages"]


@pytest.mark.slow
def test_a_chapter_opened_alone_on_simulated_colab_runs_the_earlier_stage_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "COLAB_RELEASE_TAG": "release-colab", "PRODLIB_RUN_DIR": str(tmp_path / "runs"),
           "PRODLIB_PROFILE": "smoke", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("PRODLIB_PREPARING", None)
    colab.setup_notebook("02_title_classifier", environ=env, modules={}, nvidia_smi=str(tmp_path / "absent"))
    out = capsys.readouterr().out
    assert "02_title_classifier reads what 01_data_exploration wrote for profile 'smoke'" in out
    assert "01_data_exploration: done in" in out  # the runner's progress, in the notebook
    assert (tmp_path / "runs" / "smoke" / "01_data" / "manifest.json").is_file()
    assert colab.missing_stages("02_title_classifier", "smoke", tmp_path / "runs") == []
    colab.setup_notebook("02_title_classifier", environ=env, modules={}, nvidia_smi=str(tmp_path / "absent"))
    assert "running them first" not in capsys.readouterr().out  # found: nothing is run again
