"""Tests of issue-15 machinery: out-of-fold cross-fitting, the oracle and picker rows, paired differences and the
sentences and tables computed from them (prodlib.classifiers.cross_fit, prodlib.fusion, prodlib.results)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from prodlib.classifiers import cross_fit
from prodlib.config import get_profile
from prodlib.dataset import Dataset
from prodlib.fusion import FusionRun, FusionSet, MeanPolicy, ModalityPicker, fusion_threshold, oracle_probs
from prodlib.metrics import micro_f1, product_f1
from prodlib.results import (
    difference_sentence,
    display_table,
    naive_numbers,
    paired_differences,
    table3_numbers,
    threshold_sentence,
)

PROFILE = get_profile("smoke", bootstrap=300, oof_folds=4)


def _dataset(n_train: int = 23) -> Dataset:
    ids = [f"p{i}" for i in range(n_train + 10)]
    table = pd.DataFrame({"title": ids, "description": "", "category_paths": [[["A"]]] * len(ids),
                          "labels": [["A"] if i % 2 else ["B"] for i in range(len(ids))]}, index=ids)
    return Dataset(table, ["A", "B"], {"train": ids[:n_train], "val": ids[n_train:n_train + 5],
                                       "test": ids[n_train + 5:]}, "smoke")


def test_out_of_fold_predictions_never_come_from_a_model_that_saw_the_product():
    ds = _dataset()
    seen: list[tuple[set[str], list[str]]] = []

    def train_fold(fold: Dataset, fit: np.ndarray, held: np.ndarray) -> SimpleNamespace:
        assert fold.splits["val"] == ds.splits["val"]  # validation still stops each fold model early
        seen.append((set(fold.splits["train"]), list(fold.splits["test"])))
        # a "model" that marks every product it predicts with the number of its fold
        return SimpleNamespace(p_test=np.full((len(held), 2), len(seen) / 10, np.float32))

    oof = cross_fit(ds, PROFILE, train_fold, progress=False)
    assert len(seen) == 4 and oof.shape == (23, 2)
    held_all = [pid for _, held in seen for pid in held]
    assert sorted(held_all) == sorted(ds.splits["train"])  # every training product predicted exactly once
    for k, (fit_ids, held) in enumerate(seen, 1):
        assert not fit_ids & set(held)  # the fold's model never trained on the products it predicts
        rows = [ds.splits["train"].index(pid) for pid in held]
        assert np.allclose(oof[rows], k / 10)  # and those predictions land on those products' rows


def _views(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Two modalities: the first is right on products with x < 0.5, the second on the others."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, 6)) < 0.3
    right, wrong = np.where(y, 0.9, 0.1), np.where(y, 0.2, 0.7)
    first_right = rng.random(n) < 0.5
    a = np.where(first_right[:, None], right, wrong) * 0.9 + 0.05 * first_right[:, None]
    b = np.where(first_right[:, None], wrong * 0.6, right)  # b is unconfident (low top-k) where it is wrong
    return [a.astype(np.float32), b.astype(np.float32)], y


def test_oracle_is_the_per_product_ceiling():
    inputs, y = _views(200, 0)
    oracle = oracle_probs(inputs, y)
    best = np.maximum(*(product_f1(y, x) for x in inputs))
    assert np.allclose(product_f1(y, oracle), best)
    assert micro_f1(y, oracle) >= max(micro_f1(y, x) for x in inputs)


def test_picker_learns_which_modality_to_trust_from_confidences():
    (fit_in, fit_y), (test_in, test_y) = _views(300, 1), _views(200, 2)
    picker = ModalityPicker(seed=0).fit(fit_in, fit_y)
    f1 = micro_f1(test_y, picker.predict(test_in))
    assert f1 > max(micro_f1(test_y, x) for x in test_in) + 0.1
    assert f1 > micro_f1(test_y, MeanPolicy().predict(test_in))


def test_thresholds_of_a_learned_method_are_never_fitted_on_rows_its_models_trained_on():
    inputs, y = _views(60, 3)
    ids = np.arange(60, dtype=np.float32)
    marked = [np.column_stack([inputs[0], ids]), np.column_stack([inputs[1], ids])]
    fit = FusionSet(np.arange(60).astype(str), marked, np.column_stack([y, np.zeros(60, bool)]), "val")
    seen: list[tuple[set[int], set[int]]] = []

    class Recorder:
        def fit(self, x: list[np.ndarray], yy: np.ndarray) -> Recorder:
            self.trained = {int(v) for v in x[0][:, -1]}
            return self

        def predict(self, x: list[np.ndarray]) -> np.ndarray:
            seen.append((self.trained, {int(v) for v in x[0][:, -1]}))
            return np.clip(x[0], 0, 1)

    fusion_threshold(Recorder(), fit, folds=3, seed=0, refit=lambda seed: Recorder())
    assert len(seen) == 3
    assert all(not trained & scored for trained, scored in seen)
    assert set().union(*(scored for _, scored in seen)) == set(range(60))


def _diffs(lo: float, hi: float) -> pd.DataFrame:
    return pd.DataFrame([{"a": "x", "b": "y", "delta": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}])


@pytest.mark.parametrize(("lo", "hi", "word"), [(0.5, 3.0, "better than"), (-3.0, -0.5, "worse than"),
                                                (-1.0, 2.0, "not shown to differ from")])
def test_difference_sentence_says_better_only_when_the_interval_excludes_zero(lo: float, hi: float, word: str):
    sentence = difference_sentence(_diffs(lo, hi), "x", "y", "X", "Y")
    assert sentence.startswith(f"X is {word} Y") and f"{lo:+.1f} to {hi:+.1f}" in sentence
    assert difference_sentence(_diffs(lo, hi), "y", "x") == ""  # a pair that was not measured says nothing


def test_paired_differences_on_a_known_better_method():
    inputs, y = _views(150, 4)
    probs = {"oracle": oracle_probs(inputs, y), "a": inputs[0], "b": inputs[1]}
    diffs = paired_differences(probs, [("oracle", "a"), ("oracle", "b"), ("a", "missing")], y, PROFILE)
    assert diffs[["a", "b"]].values.tolist() == [["oracle", "a"], ["oracle", "b"]]
    assert (diffs["ci_low"] > 0).all() and (diffs["delta"] > 0).all()


@pytest.mark.parametrize("naive_better", [False, True])
def test_naive_sentence_follows_the_run(naive_better: bool):
    inputs, y = _views(120, 5)
    good, bad = oracle_probs(inputs, y), inputs[0]
    honest = FusionRun("trimodal", probs={0: bad if naive_better else good}, f1={})
    naive = FusionRun("naive", probs={0: good if naive_better else bad}, f1={})
    honest.f1[0], naive.f1[0] = micro_f1(y, honest.first), micro_f1(y, naive.first)
    test = FusionSet(np.arange(120).astype(str), inputs, y, "test")
    table1 = pd.DataFrame({"model": ["title", "description"], "f1": [50.0, 40.0]})
    _, numbers, diffs = naive_numbers(naive, test, table1, honest, ["title", "description"], test, PROFILE)
    assert ("does not hold" in numbers["naive_sentence"]) is naive_better
    assert ("The warning holds" in numbers["naive_sentence"]) is not naive_better
    assert (float(diffs.iloc[0]["delta"]) < 0) is naive_better


def test_threshold_sentence_says_when_tuning_does_not_help():
    curve = pd.DataFrame({"threshold": [0.3, 0.4, 0.5, 0.6], "micro_f1": [0.70, 0.74, 0.72, 0.60]})
    assert "raises test micro-F1 by 1.2 points" in threshold_sentence(curve, 0.4, 60.0, 61.2)
    assert "tuning does not help" in threshold_sentence(curve, 0.4, 60.0, 58.0)
    flat = curve.assign(micro_f1=[0.70, 0.72, 0.74, 0.60])
    assert "changes nothing" in threshold_sentence(flat, 0.5, 60.0, 60.0)


def _table3() -> pd.DataFrame:
    rows = [("max", 78.7, 70.0), ("mean", 81.6, 71.0), ("ridge", 83.1, 72.5), ("trimodal", 88.2, 74.0),
            ("picker", np.nan, 73.0), ("oracle", np.nan, 90.0)]
    return pd.DataFrame([{"model": m, "paper_f1": p, "f1": f, "ci_low": f - 2, "ci_high": f + 2} for m, p, f in rows])


def test_display_table_formats_blanks_and_bolds_the_best_method_not_the_oracle():
    styled = display_table(_table3())
    shown = styled.data
    assert shown.loc["trimodal", "ours [95 % CI]"] == "74.0\u00a0[72.0,\u00a076.0]"  # one line in the page
    assert shown.loc["picker", "paper"] == "" and "nan" not in styled.to_html().lower()
    ctx = styled._compute().ctx
    bold = {(shown.index[r], shown.columns[c]) for (r, c), props in ctx.items() if ("font-weight", "bold") in props}
    assert bold == {("trimodal", "paper"), ("trimodal", "ours [95 % CI]")}  # not the oracle's 90.0


def test_table3_numbers_rank_methods_by_paired_intervals_and_keep_the_oracle_apart():
    table3 = _table3()
    table1 = pd.DataFrame({"model": ["title"], "f1": [71.5]})
    diffs = pd.DataFrame([{"a": m, "b": "title", "delta": f - 71.5, "ci_low": f - 71.5 - 1.0, "ci_high": f - 71.5 + 1.0}
                          for m, f in zip(table3["model"], table3["f1"], strict=True) if m != "oracle"])
    numbers = table3_numbers(table3, table1, "title", diffs)
    assert numbers["n_methods"] == 5 and numbers["best_method"] == "trimodal"
    assert numbers["n_beat_best_single"] == 2  # ridge's interval (0.0, 2.0) touches 0: not counted
    assert numbers["n_below_best_single"] == 1 and numbers["max_vs_best"] == "below"
    assert numbers["mean_vs_best"] == "not shown to differ from"
    assert numbers["oracle_f1"] == 90.0 and numbers["oracle_headroom"] == 18.5
    assert numbers["main_vs_best_sentence"].startswith("The tri-modal policy network is better than")
    assert numbers["main_f1"] == 74.0 and numbers["paper_main_f1"] == 88.2 and numbers["main_rank"] == 1
    bimodal = table3.replace({"model": {"trimodal": "image+title"}})
    two = table3_numbers(bimodal, table1, "title", diffs.replace({"a": {"trimodal": "image+title"}}),
                         main="image+title")
    assert two["main_name"] == "image+title policy network" and two["paper_main_f1"] == 85.1
    assert two["main_vs_best_sentence"].startswith("The image+title policy network is better than")
    assert "paper" not in two["main_rank_text"] and "trimodal_f1" not in two


def test_repeat_seeds_retrains_with_each_extra_seed_and_keeps_the_first_run():
    from prodlib.classifiers import repeat_seeds

    profile = get_profile("smoke", classifier_seeds=[7, 8])
    seen: list[int] = []

    def train(p):  # noqa: ANN001, ANN202 - a stand-in recipe whose F1 is its seed / 100
        seen.append(p.seed)
        return SimpleNamespace(metrics={"test": {"micro_f1": p.seed / 100}})

    first = SimpleNamespace(metrics={"test": {"micro_f1": 0.5}})
    assert repeat_seeds(train, profile, first, progress=False) == {profile.seed: 0.5, 7: 0.07, 8: 0.08}
    assert seen == [7, 8]


class _PresentMean:
    """A stand-in masked network: the mean of the modalities each product has."""

    mask = True

    def predict(self, inputs, present=None):
        w = np.asarray(present, dtype=float)[:, :, None]
        return (np.stack(inputs, axis=1) * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1)


def _missing_set(n: int = 60, seed: int = 0) -> FusionSet:
    """Three modalities; the description is right but missing on a third of the products (then it reads 0.5)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.4).astype(float)
    has_desc = np.arange(n) % 3 != 0
    title = np.where(rng.random(y.shape) < 0.25, 1 - y, y) * 0.8 + 0.1
    desc = np.where(has_desc[:, None], y * 0.8 + 0.1, 0.5)
    image = np.full(y.shape, 0.3)
    present = np.stack([np.ones(n), has_desc, np.ones(n)], axis=1)
    return FusionSet(np.arange(n).astype(str), [title, desc, image], y, "test", present)


def test_missing_table_scores_the_masked_network_on_the_products_that_lack_a_modality():
    from prodlib.results import missing_table

    test = _missing_set()
    mods = ["title", "description", "image"]
    plain, masked = MeanPolicy().predict(test.inputs), _PresentMean().predict(test.inputs, test.present)
    table, numbers = missing_table(test, plain, masked, "description", PROFILE, mods, masked=masked)
    t = table.set_index("group")
    no_desc = test.present[:, 1] == 0
    assert t.loc["no description", "products"] == no_desc.sum() == 20
    assert t.loc["no description", "f1"] == pytest.approx(100 * micro_f1(test.y[no_desc], plain[no_desc]))
    assert t.loc["no description", "f1 with mask"] == pytest.approx(100 * micro_f1(test.y[no_desc], masked[no_desc]))
    assert np.isnan(t.loc["no description", "f1 description alone"])  # no input there: no score
    assert numbers["table_missing"].loc["no description", "f1 description alone"] == "no input"
    assert numbers["n_no_desc"] == 20 and numbers["n_no_image"] == 0
    assert t.loc["no image", "products"] == 0 and "no image" not in numbers["table_missing"].index  # said, not shown
    assert "no test product lacks a usable image" in numbers["missing_sentence"]
    assert "20 test products without a description" in numbers["missing_sentence"]
    assert "on the 20 with no description: " in numbers["mask_sentence"]
    with pytest.raises(ValueError, match="presence matrix"):
        missing_table(FusionSet(test.ids, test.inputs, test.y), plain, plain, "title", PROFILE, mods)


def test_robustness_table_blanks_each_modality_for_every_product():
    from prodlib.results import robustness_table

    test = _missing_set(90, 1)
    mods = ["title", "description", "image"]
    fill = np.full(4, 0.4)
    table, numbers = robustness_table(MeanPolicy(), _PresentMean(), test, fill, mods, PROFILE)
    t = table.set_index("blanked")
    assert list(t.index) == ["nothing", *mods]
    assert t.loc["nothing", "tri-modal policy network"] == pytest.approx(
        100 * micro_f1(test.y, MeanPolicy().predict(test.inputs)))
    blanked_desc = [test.inputs[0], np.tile(fill, (90, 1)), test.inputs[2]]
    assert t.loc["description", "tri-modal policy network"] == pytest.approx(
        100 * micro_f1(test.y, MeanPolicy().predict(blanked_desc)))
    only_title_image = np.stack([test.inputs[0], test.inputs[2]]).mean(axis=0)  # the mask drops the blanked one
    assert t.loc["description", "with mask"] == pytest.approx(100 * micro_f1(test.y, only_title_image))
    assert np.isnan(t.loc["image", "image alone"]) and t.loc["title", "image alone"] == t.loc["nothing", "image alone"]
    assert numbers["robust_worst"] == t[["tri-modal policy network"]].drop("nothing").idxmin().iloc[0]
    assert f"Losing the {numbers['robust_worst']} hurts it most" in numbers["robust_sentence"]
    assert numbers["robust_sentence"].count("paired 95 % CI") == 2  # the plain and the masked network vs the best left
