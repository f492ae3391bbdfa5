import json

import numpy as np
import pytest

from prodlib.artifacts import ArtifactError, ArtifactMismatch, StageOutput, check_same_run, load_stage, stage_path
from prodlib.config import get_profile


def _write(tmp_path, profile, stage, fingerprint, probs=None):
    out = StageOutput(get_profile(profile), stage, fingerprint=fingerprint, run_dir=tmp_path)
    ids = ["a", "b", "c"]
    out.save_predictions("test", ids, probs if probs is not None else np.full((3, 2), 0.25), ["x", "y"])
    out.save_metrics({"micro_f1": 0.5})
    out.finish(weights="random init")
    return out


def test_roundtrip_keeps_ids_probs_and_manifest(tmp_path):
    probs = np.array([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0]])
    _write(tmp_path, "smoke", "02_title", "f" * 64, probs)
    art = load_stage("smoke", "02_title", tmp_path, fingerprint="f" * 64)
    pred = art.predictions("test")
    assert pred.ids.tolist() == ["a", "b", "c"] and pred.classes == ["x", "y"]
    np.testing.assert_allclose(pred.align(["c", "a"]), probs[[2, 0]], rtol=1e-6)
    m = art.manifest
    assert m["profile"] == "smoke" and m["seed"] == 42 and m["notes"]["weights"] == "random init"
    assert "numpy" in m["versions"] and m["wall_time_s"] >= 0
    assert art.metrics == {"micro_f1": 0.5}


def test_refuses_other_data_and_missing_runs(tmp_path):
    _write(tmp_path, "smoke", "02_title", "a" * 64)
    with pytest.raises(ArtifactMismatch, match="other data"):
        load_stage("smoke", "02_title", tmp_path, fingerprint="b" * 64)
    with pytest.raises(ArtifactError, match="no finished run"):
        load_stage("smoke", "03_description", tmp_path)


def test_refuses_a_folder_holding_another_profile(tmp_path):
    _write(tmp_path, "sample", "02_title", "a" * 64)
    target = stage_path("smoke", "02_title", tmp_path)
    target.parent.mkdir(parents=True)
    stage_path("sample", "02_title", tmp_path).rename(target)
    with pytest.raises(ArtifactMismatch, match="profile 'sample'"):
        load_stage("smoke", "02_title", tmp_path)


def test_check_same_run_names_the_odd_stage(tmp_path):
    _write(tmp_path, "smoke", "02_title", "a" * 64)
    _write(tmp_path, "smoke", "03_description", "a" * 64)
    _write(tmp_path, "smoke", "04_image", "c" * 64)
    ok = [load_stage("smoke", s, tmp_path) for s in ("02_title", "03_description")]
    assert check_same_run(ok) == "a" * 64
    with pytest.raises(ArtifactMismatch, match="04_image"):
        check_same_run([*ok, load_stage("smoke", "04_image", tmp_path)])


def test_rerun_removes_the_stale_manifest_first(tmp_path):
    _write(tmp_path, "smoke", "02_title", "a" * 64)
    StageOutput(get_profile("smoke"), "02_title", fingerprint="b" * 64, run_dir=tmp_path)
    with pytest.raises(ArtifactError):
        load_stage("smoke", "02_title", tmp_path)


def test_bad_predictions_are_rejected(tmp_path):
    out = StageOutput(get_profile("smoke"), "02_title", fingerprint="a", run_dir=tmp_path)
    with pytest.raises(ValueError, match="shape"):
        out.save_predictions("val", ["a"], np.zeros((2, 2)), ["x", "y"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        out.save_predictions("val", ["a"], np.array([[1.5, 0]]), ["x", "y"])
    with pytest.raises(ValueError, match="duplicate"):
        out.save_predictions("val", ["a", "a"], np.zeros((2, 2)), ["x", "y"])
    out.save_features("val", ["a"], np.ones((1, 4)))
    out.finish()
    ids, feats = load_stage("smoke", "02_title", tmp_path).features("val")
    assert ids.tolist() == ["a"] and feats.shape == (1, 4)
    assert json.loads((out.path / "manifest.json").read_text())["stage"] == "02_title"


def test_corrupt_artifact_files_name_the_file_and_the_fix(tmp_path):
    out = _write(tmp_path, "smoke", "02_title", "a" * 64)
    folder = stage_path("smoke", "02_title", tmp_path)
    art = load_stage("smoke", "02_title", tmp_path)
    (folder / "predictions_test.npz").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "metrics.json").write_text('{"micro_f1": 0.')
    with pytest.raises(ArtifactError, match="predictions_test.npz is unreadable.*--force"):
        art.predictions("test")
    with pytest.raises(ArtifactError, match="metrics.json is unreadable"):
        art.load_json("metrics")
    (folder / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match="manifest.json is unreadable"):
        load_stage("smoke", "02_title", tmp_path)
    assert out is not None
