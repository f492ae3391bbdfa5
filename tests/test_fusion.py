"""Tests of prodlib.fusion: fixed policies, ridge, policy networks, the leakage guard, early fusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodlib.artifacts import ArtifactError, StageOutput, load_stage
from prodlib.config import get_profile
from prodlib.fusion import (
    EarlyFusion,
    FusionSet,
    LeakageError,
    MaxPolicy,
    MeanPolicy,
    ModalitySubset,
    PolicyNetwork,
    RidgeFusion,
    default_policy_grid,
    fit_and_predict,
    fusion_set,
    make_methods,
    modality_importance,
    search_policy,
)
from prodlib.metrics import micro_f1
from prodlib.results import score_table


def test_max_and_mean_exact_values():
    a = np.array([[0.1, 0.9], [0.4, 0.2]])
    b = np.array([[0.3, 0.5], [0.0, 1.0]])
    c = np.array([[0.2, 0.1], [0.8, 0.6]])
    y = np.zeros((2, 2))
    np.testing.assert_allclose(MaxPolicy().fit([a, b, c], y).predict([a, b, c]), [[0.3, 0.9], [0.8, 1.0]],
                               rtol=1e-6)
    np.testing.assert_allclose(MeanPolicy().fit([a, b, c], y).predict([a, b, c]), [[0.2, 0.5], [0.4, 0.6]],
                               rtol=1e-6)


def test_inputs_are_checked():
    a = np.zeros((3, 2))
    with pytest.raises(ValueError, match="every modality"):
        MeanPolicy().predict([a, np.zeros((3, 3))])
    with pytest.raises(ValueError, match="NaN"):
        MaxPolicy().predict([a, np.full((3, 2), np.nan)])
    with pytest.raises(ValueError, match="labels"):
        MeanPolicy().fit([a, a], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="list"):
        MeanPolicy().predict(a)


def _known_weighted(n=400, c=5, weights=(0.5, 0.3, 0.2), seed=0):
    rng = np.random.default_rng(seed)
    inputs = [rng.random((n, c)) for _ in weights]
    y = sum(w * x for w, x in zip(weights, inputs, strict=True))
    return inputs, y


def test_ridge_per_modality_recovers_known_weights():
    inputs, y = _known_weighted()
    model = RidgeFusion("modality", alphas=(1e-4, 1e-3), folds=3).fit(inputs, y)
    np.testing.assert_allclose(model.weights_, [0.5, 0.3, 0.2], atol=0.01)
    assert abs(float(model.intercept_)) < 0.01
    assert model.alpha_ in (1e-4, 1e-3)
    out = model.predict(inputs)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, np.clip(y, 0, 1), atol=0.01)


def test_ridge_full_map_recovers_per_class_weights_and_clips():
    inputs, y = _known_weighted(weights=(0.7, 0.1, 0.2))
    model = RidgeFusion("full", alphas=(1e-4,), folds=2).fit(inputs, y)
    w = model.weights_
    assert w.shape == (3, 5)
    np.testing.assert_allclose(w, np.array([[0.7], [0.1], [0.2]]) * np.ones((3, 5)), atol=0.02)
    big = [x * 3 for x in inputs]  # out-of-range predictions must be clipped
    out = model.predict(big)
    assert out.max() == 1.0 and out.min() >= 0.0


def test_ridge_rejects_unknown_variant():
    with pytest.raises(ValueError, match="modality"):
        RidgeFusion("diagonal")


def _needs_a_policy(n, seed):
    """Modality A knows classes 0-2 and is over-confident noise on 3-5; modality B the reverse."""
    rng = np.random.default_rng(seed)
    c = 6
    y = (rng.random((n, c)) < 0.3).astype(float)
    informative = np.clip(0.1 + 0.8 * y + rng.normal(0, 0.08, (n, c)), 0, 1)
    noise = rng.uniform(0.7, 1.0, (n, c))
    a = np.where(np.arange(c) < 3, informative, noise)
    informative_b = np.clip(0.1 + 0.8 * y + rng.normal(0, 0.08, (n, c)), 0, 1)
    b = np.where(np.arange(c) >= 3, informative_b, rng.uniform(0.7, 1.0, (n, c)))
    return [a.astype(np.float32), b.astype(np.float32)], y


def test_policy_network_beats_mean_where_a_policy_is_needed():
    train, y = _needs_a_policy(600, 1)
    test, y_test = _needs_a_policy(400, 2)
    net = PolicyNetwork((32, 16), ("relu", "relu", "sigmoid"), epochs=30, batch_size=64,
                        learning_rate=1e-2, patience=5, seed=0).fit(train, y)
    f1_net = micro_f1(y_test, net.predict(test))
    f1_mean = micro_f1(y_test, MeanPolicy().predict(test))
    assert f1_net > 0.9
    assert f1_net > f1_mean + 0.1
    assert net.history_["epochs_run"] >= 1


def test_policy_network_is_seeded():
    train, y = _needs_a_policy(200, 3)
    p1 = PolicyNetwork((8,), ("tanh", "sigmoid"), epochs=3, seed=5).fit(train, y).predict(train)
    p2 = PolicyNetwork((8,), ("tanh", "sigmoid"), epochs=3, seed=5).fit(train, y).predict(train)
    np.testing.assert_allclose(p1, p2, atol=1e-5)


def test_policy_network_parameter_errors():
    with pytest.raises(ValueError, match="one activation per layer"):
        PolicyNetwork((8, 4), ("relu", "sigmoid"))
    with pytest.raises(ValueError, match="sigmoid"):
        PolicyNetwork((8,), ("relu", "tanh"))
    with pytest.raises(RuntimeError, match="fit"):
        PolicyNetwork((8,), ("relu", "sigmoid")).predict([np.zeros((2, 2))])


def test_search_policy_uses_grid_and_ranks():
    train, y = _needs_a_policy(150, 4)
    grid = default_policy_grid((8, 6))[:2]
    best, table = search_policy(train, y, grid, folds=2, seed=0, epochs=3, progress=False)
    assert best in grid
    assert len(table) == 2
    assert table["cv_f1_mean"].is_monotonic_decreasing


def test_modality_subset_picks_inputs():
    a, b, c = (np.full((2, 2), v) for v in (0.1, 0.5, 0.9))
    sub = ModalitySubset(MaxPolicy(), (0, 1)).fit([a, b, c], np.zeros((2, 2)))
    np.testing.assert_allclose(sub.predict([a, b, c]), 0.5)


class _Spy:
    """A fusion method that records the rows it was fitted on (row value = product code)."""

    seen: list[float] = []

    def fit(self, inputs, y):
        _Spy.seen.extend(np.asarray(inputs[0])[:, 0].round(4).tolist())
        return self

    def predict(self, inputs):
        return np.full(np.asarray(inputs[0]).shape, 0.5)


def _coded_set(codes, split):
    x = np.tile(np.asarray(codes, dtype=np.float32)[:, None] / 1000, (1, 3))
    ids = np.asarray([f"p{c}" for c in codes])
    return FusionSet(ids, [x, x, x], np.zeros_like(x), split)


def test_no_test_product_reaches_any_fit():
    val, test = _coded_set(range(0, 50), "val"), _coded_set(range(50, 80), "test")
    _Spy.seen = []
    runs = fit_and_predict({"spy": lambda seed: _Spy()}, val, test, seeds=(0, 1), progress=False)
    seen = {round(v * 1000) for v in _Spy.seen}
    assert seen == set(range(0, 50))
    assert not seen & set(range(50, 80))
    assert runs["spy"].first.shape == test.y.shape and set(runs["spy"].f1) == {0, 1}


def test_overlapping_sets_are_refused():
    val, test = _coded_set(range(0, 50), "val"), _coded_set(range(45, 80), "test")
    with pytest.raises(LeakageError, match="5 products"):
        fit_and_predict({"mean": lambda seed: MeanPolicy()}, val, test, progress=False)


def test_fusion_set_aligns_stage_predictions(tmp_path):
    profile = get_profile("smoke")
    classes = ["a", "b"]
    ids = ["x", "y", "z"]
    stages = []
    for k, stage in enumerate(["02_title", "03_description", "04_image"]):
        out = StageOutput(profile, stage, fingerprint="f" * 64, run_dir=tmp_path)
        probs = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]) + 0.01 * k
        out.save_predictions("val", ids, probs, classes)
        out.finish()
        stages.append(load_stage(profile, stage, tmp_path))
    data = fusion_set(stages, "val", ["z", "x"], np.array([[1, 0], [0, 1]]))
    np.testing.assert_allclose(data.inputs[2], [[0.52, 0.62], [0.12, 0.22]], rtol=1e-5)
    assert data.ids.tolist() == ["z", "x"]


def test_make_methods_covers_the_paper_table_and_runs():
    profile = get_profile("smoke", fusion_epochs=2, fusion_units=[8, 6])
    methods = make_methods(profile)
    from prodlib.paper import FUSION

    assert set(FUSION) <= set(methods)
    val, yv = _needs_a_policy(80, 5)
    test, yt = _needs_a_policy(40, 6)
    val.append(val[0])
    test.append(test[0])
    fit = FusionSet(np.arange(80).astype(str), val, yv, "val")
    ev = FusionSet(np.arange(80, 120).astype(str), test, yt, "test")
    runs = fit_and_predict({k: methods[k] for k in ("mean", "ridge", "image+title", "trimodal")}, fit, ev,
                           seeds=(0, 1), progress=False)
    assert len(runs["mean"].f1) == 1 and len(runs["trimodal"].f1) == 2
    table = score_table({k: r.first for k, r in runs.items()}, yt, n_boot=50,
                        f1_by_seed={k: list(r.f1.values()) for k, r in runs.items()})
    assert (table["ci_low"] <= table["f1"] + 1e-9).all() and (table["f1"] <= table["ci_high"] + 1e-9).all()
    assert np.isnan(table.set_index("model").loc["mean"].get("seeds_sd", np.nan))
    trimodal = runs["trimodal"].fitted[0]
    assert trimodal.activations == ("sigmoid", "tanh", "sigmoid") and trimodal.units == (8, 6)


def test_make_methods_fits_only_the_methods_the_modalities_allow():
    from prodlib.fusion import main_method

    profile = get_profile("smoke", fusion_epochs=2, fusion_units=[8, 6])
    assert list(make_methods(profile)) == ["max", "mean", "ridge", "ridge_full", "image+description", "image+title",
                                           "title+description", "trimodal", "picker"]
    assert main_method(["title", "description", "image"]) == "trimodal"
    methods = make_methods(profile, modalities=["title", "image"])  # no descriptions: no network without its input
    assert list(methods) == ["max", "mean", "ridge", "ridge_full", "image+title", "picker"]
    assert main_method(["title", "image"]) == "image+title" and main_method(["description", "title"]) == (
        "title+description")
    assert list(make_methods(profile, modalities=["title", "description"]))[4:] == ["title+description", "picker"]
    with pytest.raises(ValueError, match="with one modality there is nothing to fuse"):
        make_methods(profile, modalities=["title"])
    val, yv = _needs_a_policy(80, 5)
    test, yt = _needs_a_policy(40, 6)
    fit, ev = FusionSet(np.arange(80).astype(str), val, yv, "val"), FusionSet(np.arange(80, 120).astype(str), test, yt)
    runs = fit_and_predict(methods, fit, ev, progress=False)  # two inputs: every method runs on them
    assert set(runs) == set(methods) and all(r.first.shape == yt.shape for r in runs.values())
    assert runs["image+title"].fitted[0].use == (1, 0) and len(runs["ridge"].fitted[0].weights_) == 2


def test_modality_importance_finds_the_informative_modality():
    inputs, y = _needs_a_policy(300, 7)
    data = FusionSet(np.arange(300).astype(str), inputs, y, "val")
    model = RidgeFusion("full", alphas=(0.1,), folds=2).fit(inputs, y)
    imp = modality_importance(model, data, list("abcdef"), modalities=("A", "B"))
    assert (imp.loc[["a", "b", "c"], "A"] > imp.loc[["a", "b", "c"], "B"]).all()
    assert (imp.loc[["d", "e", "f"], "B"] > imp.loc[["d", "e", "f"], "A"]).all()


def test_early_fusion_learns_from_features(tmp_path):
    rng = np.random.default_rng(0)
    n, c = 300, 4
    y = (rng.random((n, c)) < 0.4).astype(float)
    f1 = y[:, :2] * 2 + rng.normal(0, 0.3, (n, 2))
    f2 = np.hstack([y[:, 2:] * 2 + rng.normal(0, 0.3, (n, 2)), rng.normal(0, 1, (n, 3))])
    tr, va, te = slice(0, 200), slice(200, 250), slice(250, 300)
    model = EarlyFusion((16,), epochs=25, learning_rate=1e-2, patience=5, seed=0)
    model.fit([f1[tr], f2[tr]], y[tr], [f1[va], f2[va]], y[va])
    assert micro_f1(y[te], model.predict([f1[te], f2[te]])) > 0.85
    with pytest.raises(ValueError, match="columns"):
        model.predict([f1[te]])

    # chapter 7 reuses this network: saved and loaded, it predicts the same and its hidden layer is the joint vector
    model.save(tmp_path)
    again = EarlyFusion.load(tmp_path)
    assert np.allclose(again.predict([f1[te], f2[te]]), model.predict([f1[te], f2[te]]), atol=1e-6)
    hidden = again.hidden([f1[te], f2[te]])
    assert hidden.shape == (50, 16) and (hidden >= 0).all() and hidden.any()
    first_dense = model.model.layers[0]
    w, b = first_dense.get_weights()
    assert np.allclose(hidden, np.maximum(model._scale([f1[te], f2[te]]) @ w + b, 0), atol=1e-5)
    with pytest.raises(ArtifactError, match="rerun notebook 05"):
        EarlyFusion.load(tmp_path / "nowhere")


def test_aligned_features_follow_ids_and_report_missing(tmp_path):
    from prodlib.artifacts import ArtifactError

    profile = get_profile("smoke")
    out = StageOutput(profile, "02_title", fingerprint="f" * 64, run_dir=tmp_path)
    out.save_features("train", ["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    out.finish()
    stage = load_stage(profile, "02_title", tmp_path)
    (x,) = fusion_aligned(stage, ["b", "a"])
    np.testing.assert_allclose(x, [[3, 4], [1, 2]])
    with pytest.raises(ArtifactError, match="02_title"):
        fusion_aligned(stage, ["a", "zzz"])


def fusion_aligned(stage, ids):
    from prodlib.fusion import aligned_features

    return aligned_features([stage], "train", ids)


def _half_missing(n, seed):
    """Modality A is clean where the product has it; where it lacks it, A is uniform noise that looks like a score
    (nothing in A says it is missing). B, always there, is a noisy copy of the labels."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.3).astype(float)
    has_a = rng.random(n) < 0.5
    a = np.where(has_a[:, None], np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, y.shape), 0, 1), rng.random(y.shape))
    b = np.clip(0.25 + 0.5 * np.where(rng.random(y.shape) < 0.2, 1 - y, y) + rng.normal(0, 0.1, y.shape), 0, 1)
    present = np.stack([has_a, np.ones(n, bool)], axis=1).astype(np.float32)
    return FusionSet(np.arange(n).astype(str) + f"-{seed}", [a.astype(np.float32), b.astype(np.float32)], y,
                     str(seed), present)


def test_the_mask_input_tells_the_network_which_modality_is_missing():
    fit, test = _half_missing(600, 1), _half_missing(400, 2)
    settings = {"units": (16,), "activations": ("relu", "sigmoid"), "epochs": 40, "learning_rate": 1e-2}
    runs = fit_and_predict({"plain": lambda seed: PolicyNetwork(seed=seed, **settings),
                            "masked": lambda seed: PolicyNetwork(seed=seed, mask=True, **settings)},
                           fit, test, progress=False)
    assert runs["masked"].fitted[0].model.input_shape == (None, 2 * 4 + 2)  # one presence input per modality
    assert runs["masked"].f1[0] > runs["plain"].f1[0] + 0.03  # it trusts A only where A is there
    masked = runs["masked"].fitted[0]
    assert not np.allclose(masked.predict(test.inputs, present=test.present),
                           masked.predict(test.inputs, present=np.ones_like(test.present)))
    with pytest.raises(ValueError, match="needs present="):
        masked.predict(test.inputs)
    with pytest.raises(ValueError, match="needs present="):
        fit_and_predict({"masked": lambda seed: PolicyNetwork(mask=True, **settings)},
                        FusionSet(fit.ids, fit.inputs, fit.y, "val"), test, progress=False)
    with pytest.raises(ValueError, match="products × modalities"):
        FusionSet(fit.ids, fit.inputs, fit.y, "val", fit.present[:, :1])


def test_main_network_with_a_mask_and_a_bimodal_subset_passes_its_columns():
    from prodlib.fusion import main_network

    profile = get_profile("smoke", fusion_epochs=2, fusion_units=[8, 6])
    net = main_network(profile, None, ["title", "image"], mask=True)(0)
    assert isinstance(net, ModalitySubset) and net.mask and net.use == (1, 0) and net.name == "image+title masked"
    assert main_network(profile, None, ["title", "image"], mask=True)(0).method.name == "image+title"
    fit, test = _half_missing(120, 3), _half_missing(60, 4)
    net.fit(fit.inputs, fit.y, present=fit.present)
    assert net.method.model.input_shape == (None, 2 * 4 + 2)
    assert net.predict(test.inputs, present=test.present).shape == test.y.shape
    # the three-input masked network, named "trimodal masked", must still make a valid Keras model name
    tri = main_network(profile, {"activations": ("relu", "relu", "sigmoid")}, mask=True)(0)
    tri.fit(fit.inputs + [fit.inputs[0]], fit.y, present=np.hstack([fit.present, fit.present[:, :1]]))
    assert isinstance(tri, PolicyNetwork) and tri.mask and tri.activations == ("relu", "relu", "sigmoid")
    assert not main_network(profile)(0).mask


def test_presence_and_blanking_a_modality():
    from prodlib.dataset import Dataset
    from prodlib.fusion import blank_modality, presence

    ids = ["a", "b", "c"]
    table = pd.DataFrame({"title": ["t1", "t2", "t3"], "description": ["", "words", "  "],
                          "category_paths": [[["x"]]] * 3, "labels": [["x"], ["y"], ["x"]]}, index=ids)
    ds = Dataset(table, ["x", "y"], {"train": [], "val": ["c", "a"], "test": ["b"]}, "smoke")
    present = presence(ds, "val", ["title", "description", "image"], missing_images=["a"])
    assert present.tolist() == [[1, 0, 1], [1, 0, 0]]  # rows follow the split order c, a
    data = FusionSet(np.array(["c", "a"]), [np.full((2, 2), 0.9, np.float32)] * 3, np.zeros((2, 2)), "val", present)
    blanked = blank_modality(data, 0, np.array([0.25, 0.5]))
    assert blanked.inputs[0].tolist() == [[0.25, 0.5], [0.25, 0.5]] and blanked.present[:, 0].tolist() == [0, 0]
    assert data.present[:, 0].tolist() == [1, 1] and np.allclose(data.inputs[0], 0.9)  # the original is unchanged
    np.testing.assert_array_equal(blanked.inputs[1], data.inputs[1])


def test_fusion_set_reads_presence_from_the_image_stage(tmp_path):
    from prodlib.dataset import Dataset

    profile = get_profile("smoke")
    ids = ["x", "y", "z"]
    table = pd.DataFrame({"title": ["t"] * 3, "description": ["d", "", "d"], "category_paths": [[["a"]]] * 3,
                          "labels": [["a"]] * 3}, index=ids)
    ds = Dataset(table, ["a", "b"], {"train": [], "val": ids, "test": []}, "smoke")
    stages = {}
    for modality, stage in (("title", "02_title"), ("description", "03_description"), ("image", "04_image")):
        out = StageOutput(profile, stage, fingerprint="f" * 64, run_dir=tmp_path)
        out.save_predictions("val", ids, np.full((3, 2), 0.5), ["a", "b"])
        if modality == "image":
            out.save_json("missing_images", {"val": ["z"], "test": []})
        out.finish()
        stages[modality] = load_stage(profile, stage, tmp_path)
    data = fusion_set(stages, "val", ids, ds.y("val"), ds=ds)
    assert data.present.tolist() == [[1, 1, 1], [1, 0, 1], [1, 1, 0]]
    with pytest.raises(ArtifactError, match="no 'train' list"):
        fusion_set(stages, "train", [], np.zeros((0, 2)), ds=ds)


def test_a_masked_network_has_seen_each_modality_go_missing():
    from prodlib.fusion import blank_modality

    def everything_present(d):
        return FusionSet(d.ids, d.inputs, d.y, d.split, np.ones_like(d.present))

    fit, test = everything_present(_half_missing(600, 1)), everything_present(_half_missing(400, 2))
    settings = {"units": (16,), "activations": ("relu", "sigmoid"), "epochs": 40, "learning_rate": 1e-2}
    plain = PolicyNetwork(**settings).fit(fit.inputs, fit.y)
    masked = PolicyNetwork(mask=True, fill=fit.y.mean(axis=0), **settings).fit(fit.inputs, fit.y, present=fit.present)
    lost = blank_modality(test, 0, fit.y.mean(axis=0))  # no fitting product lacked A, yet A is lost for every one
    f1_plain = micro_f1(test.y, plain.predict(lost.inputs))
    f1_masked = micro_f1(test.y, masked.predict(lost.inputs, present=lost.present))
    assert f1_masked > f1_plain + 0.2  # the blanked copies taught it to fall back on B
    assert f1_masked > micro_f1(test.y, test.inputs[1]) - 0.15  # near B alone, the best one could do then
