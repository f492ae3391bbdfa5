"""Tests of prodlib.analysis and of the paper's most-missed definition (prodlib.metrics.most_missed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodlib.analysis import (
    error_overlap,
    fix_masks,
    gain_numbers,
    gallery_rows,
    miss_numbers,
    overlap_numbers,
    per_class_gain,
    subgroup_f1,
    support_missrate_sentence,
    wrong_products,
)
from prodlib.metrics import most_missed


def test_most_missed_counts_true_products_not_predicted():
    y = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 1]])
    p = np.array([[0.9, 0.9, 0.9], [0.2, 0.8, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])
    table = most_missed(y, p, ["a", "b", "c"], k=3)
    rows = table.set_index("class")
    # a: true for 3 products, predicted for 1 -> 2 missed; b: true 2, predicted for 1 -> 1 missed;
    # c: true 2, predicted 1 -> 1 missed. False positives (b in row 0) never count.
    assert rows.loc["a", "missed"] == 2 and rows.loc["a", "support"] == 3
    assert rows.loc["b", "missed"] == 1 and rows.loc["c", "missed"] == 1
    assert table.iloc[0]["label"] == "a (2/3)"


def test_wrong_products_is_exact_set_mismatch():
    y = np.array([[1, 0], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.1], [0.9, 0.2], [0.0, 0.7]])
    assert wrong_products(y, p).tolist() == [False, True, True]


def test_error_overlap_hand_made():
    wrong = {"title": np.array([1, 1, 0, 0, 1, 0], bool), "image": np.array([1, 0, 1, 0, 1, 0], bool)}
    table = error_overlap(wrong)
    counts = {r["models"]: r["products"] for _, r in table.iterrows()}
    assert counts == {"title & image": 2, "title": 1, "image": 1}
    full = error_overlap(wrong, include_none=True)
    assert full["products"].sum() == 6 and full.loc[full["models"] == "(none)", "products"].item() == 2


def test_per_class_gain_uses_best_single_model():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    good = y * 0.9
    bad = np.zeros_like(y, dtype=float)
    fused = np.array([[0.9, 0.0], [0.0, 0.9], [0.9, 0.0], [0.0, 0.0]])  # misses class 1 once
    table = per_class_gain(y, fused, {"bad": bad, "good": good}, ["a", "b"]).set_index("class")
    assert (table["best_single"] == "good").all()
    assert table.loc["a", "gain"] == pytest.approx(0.0)
    assert table.loc["b", "gain"] == pytest.approx(2 / 3 - 1.0)


def test_fix_masks_and_gallery():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    single = np.array([[0.9, 0.9], [0.0, 0.9], [0.9, 0.0]])
    fused = np.array([[0.9, 0.0], [0.9, 0.0], [0.9, 0.0]])
    masks = fix_masks(y, fused, single)
    assert masks["fixed"].tolist() == [True, False, False]
    assert masks["broken"].tolist() == [False, True, False]
    assert masks["still_wrong"].tolist() == [False, False, True]
    part = pd.DataFrame({"id": ["p0", "p1", "p2"], "title": ["t0", "t1", "t2"], "image": [None, "x.jpg", None]})
    rows = gallery_rows(part, masks["fixed"], y, {"fused": fused}, ["a", "b"], k=5)
    assert rows == [{"id": "p0", "title": "t0", "image": None, "true": ["a"], "pred": {"fused": ["a"]}}]
    # models named like the product's fields never overwrite its title or image
    rows = gallery_rows(part, masks["fixed"], y, {"title": fused, "image": fused}, ["a", "b"], k=5)
    assert rows[0]["title"] == "t0" and rows[0]["image"] is None and rows[0]["pred"]["title"] == ["a"]
    assert gallery_rows(part, np.zeros(3, bool), y, {"fused": fused}, ["a", "b"]) == []


def test_subgroup_f1_handles_empty_groups():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = y * 0.9
    table = subgroup_f1(y, p, {"all": np.ones(3, bool), "none": np.zeros(3, bool)}, n_boot=20).set_index("group")
    assert table.loc["all", "f1"] == pytest.approx(100.0) and table.loc["all", "products"] == 3
    assert table.loc["none", "products"] == 0 and np.isnan(table.loc["none", "f1"])


def test_missing_modality_sentence_names_empty_groups():
    from prodlib.results import missing_modality_sentence

    text = missing_modality_sentence({"a description": (0, float("nan")), "a usable image": (3, 66.666)})
    assert text == ("No test product lacks a description; on the 3 test products without a usable image "
                    "the tri-modal network scores 66.7 % micro-F1.")
    assert "1 test product without" in missing_modality_sentence({"an image": (1, 50.0)})


def test_miss_numbers_compare_fusion_with_the_best_single_model():
    y = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 1]])
    single = np.array([[0.9, 0.0, 0.0], [0.9, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.0]])
    fused = np.array([[0.0, 0.0, 0.9], [0.9, 0.9, 0.0], [0.0, 0.0, 0.0], [0.0, 0.9, 0.9]])
    n = miss_numbers(y, {"title": single, "trimodal": fused}, "title")
    # missed per class: single a0 b2 c2 (4 pairs); fused a2 b0 c0 (2 pairs)
    assert n["missed_best_single"] == 4 and n["missed_main"] == 2
    assert (n["classes_fewer_misses"], n["classes_more_misses"], n["n_classes_present"]) == (2, 1, 3)
    bimodal = miss_numbers(y, {"title": single, "image+title": fused}, "title", main="image+title")
    assert bimodal["missed_main"] == 2 and bimodal["missed_pairs"] == {"title": 4, "image+title": 2}


def test_support_missrate_sentence_follows_the_sign():
    assert "negative" in support_missrate_sentence(-0.4) and "as the paper observed" in support_missrate_sentence(-0.4)
    assert "positive" in support_missrate_sentence(0.3) and "unlike" in support_missrate_sentence(0.3)
    assert "undefined" in support_missrate_sentence(float("nan"))


def test_overlap_and_gain_numbers():
    wrong = {"title": np.array([1, 1, 0, 0], bool), "description": np.array([1, 0, 0, 1], bool),
             "image": np.array([1, 0, 0, 0], bool), "trimodal": np.array([0, 1, 0, 0], bool)}
    n = overlap_numbers(wrong, ["title", "description", "image"])
    assert n == {"wrong_all": 1, "wrong_none": 1, "all_wrong_fixed": 1, "some_right": 2,
                 "some_right_main_right": 1, "n_classifiers": 3}
    two = {"title": wrong["title"], "image": wrong["image"], "image+title": np.array([0, 0, 0, 1], bool)}
    assert overlap_numbers(two, ["title", "image"], "image+title") == {  # products 0 and 1 differ from the above
        "wrong_all": 1, "wrong_none": 2, "all_wrong_fixed": 1, "some_right": 1, "some_right_main_right": 1,
        "n_classifiers": 2}
    gain = pd.DataFrame({"class": ["a", "b", "c"], "gain": [0.2, 0.0, -0.1]})
    g = gain_numbers(gain)
    assert (g["classes_improved"], g["classes_worse"], g["median_gain"]) == (1, 1, 0.0)
