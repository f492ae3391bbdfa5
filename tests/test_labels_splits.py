import numpy as np
import pandas as pd
import pytest

from prodlib.labels import build_labels, flatten_paths, label_matrix, label_stats
from prodlib.splits import sample_ids, split_ids


def test_flatten_collects_every_node_once():
    paths = [["Clothing", "Women", "Dresses"], ["Sale", "Women"]]
    assert flatten_paths(paths) == ["Clothing", "Women", "Dresses", "Sale"]
    assert flatten_paths(paths, "path") == ["Clothing", "Clothing > Women", "Clothing > Women > Dresses",
                                            "Sale", "Sale > Women"]
    with pytest.raises(ValueError, match="flat, path"):
        flatten_paths(paths, "leaf")


def test_build_labels_filters_rare_classes_and_empty_products():
    paths = pd.Series({"a": [["A", "X"]], "b": [["A", "Y"]], "c": [["B"]], "d": [["A", "X"]]})
    res = build_labels(paths, "flat", min_count=2)
    assert res.classes == ["A", "X"]
    assert list(res.labels.index) == ["a", "b", "d"]
    assert res.labels["b"] == ["A"]
    assert res.dropped_products == ["c"]
    assert res.before["classes"] == 4 and res.after["classes"] == 2
    assert res.after["max_products_per_class"] == 3 and res.after["min_products_per_class"] == 2


def test_label_stats_matches_hand_count():
    stats = label_stats([["A", "B"], ["A"], ["A", "C", "B"]])
    assert stats == {"classes": 3, "products": 3, "labels_per_product": 2.0, "max_products_per_class": 3,
                     "min_products_per_class": 1, "mean_products_per_class": 2.0}


def test_label_matrix_follows_class_order():
    y = label_matrix([["B"], ["A", "B", "Z"]], ["A", "B"])
    assert y.tolist() == [[0, 1], [1, 1]]


def test_splits_are_disjoint_complete_and_seeded():
    ids = [f"p{i}" for i in range(1000)]
    s1 = split_ids(ids, 0.2, 0.1, seed=7)
    s2 = split_ids(ids, 0.2, 0.1, seed=7)
    s3 = split_ids(ids, 0.2, 0.1, seed=8)
    assert s1 == s2 and s1 != s3
    sets = [set(s1[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(ids)
    assert len(s1["test"]) == 200 and len(s1["val"]) == 80


def test_paper_sizes_with_absolute_counts():
    ids = [str(i) for i in range(119_063)]
    s = split_ids(ids, 29_063, 9_000, seed=0)
    assert len(s["test"]) == 29_063 and len(s["train"]) + len(s["val"]) == 90_000


def test_bad_split_sizes_are_explained():
    with pytest.raises(ValueError, match="leaves nothing"):
        split_ids(["a", "b"], 5, 0.1, seed=0)
    with pytest.raises(ValueError, match="unique"):
        split_ids(["a", "a", "b"], 0.3, 0.1, seed=0)


def test_sample_ids_is_seeded_and_bounded():
    ids = [str(i) for i in range(100)]
    assert sample_ids(ids, None, 0) == ids
    a, b = sample_ids(ids, 10, 3), sample_ids(ids, 10, 3)
    assert a == b and len(set(a)) == 10
    assert np.all(np.isin(a, ids))


def test_tiny_catalogs_never_give_an_empty_split():
    with pytest.raises(ValueError, match="0 validation"):
        split_ids([f"p{i}" for i in range(5)], 1, 0.1, seed=0)  # 4 train: 0.1 of them rounds to 0
    with pytest.raises(ValueError, match="0 test"):
        split_ids([f"p{i}" for i in range(4)], 0.1, 1, seed=0)


def test_plain_string_paths_are_node_names_not_letters():
    from prodlib.labels import flatten_paths

    assert flatten_paths(["Shoes", "Women"]) == ["Shoes", "Women"]  # was S, h, o, e, s, W, m, n
    assert flatten_paths("Shoes") == ["Shoes"]
