"""Product embeddings (notebook 07): retrieval, neighbour quality, the kNN classifier and similar_products."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prodlib import similar
from prodlib.artifacts import ArtifactError, StageOutput
from prodlib.config import get_profile
from prodlib.dataset import Dataset, save_dataset


def test_nearest_finds_the_constructed_neighbours_in_any_chunk_size():
    rng = np.random.default_rng(0)
    index = rng.normal(size=(50, 8)).astype(np.float32)
    # query i is a slightly perturbed copy of index row 3 * i; its second neighbour is unknown but not itself
    queries = index[::3][:10] * 2.0 + 0.01 * rng.normal(size=(10, 8)).astype(np.float32)
    for max_bytes in (1, 4 * 50 * 3, 1 << 20):  # one query per chunk, three per chunk, all at once
        pos, score = similar.nearest(queries, index, 3, max_bytes=max_bytes)
        assert pos[:, 0].tolist() == list(range(0, 30, 3))
        assert (score[:, 0] > 0.99).all() and (np.diff(score, axis=1) <= 0).all()
    exact = (similar.normalize(queries) @ similar.normalize(index).T).max(axis=1)
    np.testing.assert_allclose(score[:, 0], exact, rtol=1e-5)


def test_nearest_excludes_the_query_itself():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    pos, _ = similar.nearest(x, x, 1, exclude=[0, 1, 2, 3], max_bytes=8)
    assert pos[:, 0].tolist() == [1, 0, 3, 2]
    with pytest.raises(ValueError, match="same width"):
        similar.nearest(x, np.ones((3, 3)), 1)


def test_precision_and_jaccard_on_a_hand_made_example():
    classes_q = np.array([[1, 1, 0], [0, 0, 1]])  # query 0: {a, b}; query 1: {c}
    index = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])  # {a}, {b, c}, {c}, {a, b}
    neighbours = np.array([[3, 2, 1], [0, 1, 2]])
    table = similar.neighbour_quality(classes_q, index, neighbours, [1, 2, 3], n_boot=50).set_index("k")
    # query 0: hit, miss, hit -> p@1 1, p@2 1/2, p@3 2/3; query 1: miss, hit, hit -> 0, 1/2, 2/3
    np.testing.assert_allclose(table["precision"], [50.0, 50.0, 200 / 3])
    # Jaccard, query 0: 1, 0, 1/3; query 1: 0, 1/2, 1
    j = [np.mean([1, 0]), np.mean([(1 + 0) / 2, (0 + 0.5) / 2]), np.mean([(1 + 0 + 1 / 3) / 3, (0 + 0.5 + 1) / 3])]
    np.testing.assert_allclose(table["jaccard"], 100 * np.array(j))
    assert (table["p_low"] <= table["precision"]).all() and (table["precision"] <= table["p_high"]).all()
    with pytest.raises(ValueError, match="outside"):
        similar.neighbour_quality(classes_q, index, neighbours, [4])


def _dataset(n_train: int = 30, n_val: int = 10, n_test: int = 10) -> tuple[Dataset, dict[str, np.ndarray]]:
    """Three clusters of products, one label per cluster; a product's vector points at its cluster."""
    n = n_train + n_val + n_test
    ids = [f"p{i}" for i in range(n)]
    cluster = np.arange(n) % 3
    table = pd.DataFrame({"id": ids, "title": [f"product {i}" for i in range(n)], "description": "d",
                          "category_paths": [[["top", "abc"[c]]] for c in cluster], "image": None,
                          "source": "test", "labels": [["abc"[c]] for c in cluster]}).set_index("id", drop=False)
    splits = {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}
    ds = Dataset(table=table, classes=["a", "b", "c"], splits=splits, profile="smoke")
    centres = np.eye(3, 4, dtype=np.float32)
    x = centres[cluster] + 0.05 * np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    return ds, {s: x[a:b] for s, (a, b) in bounds.items()}


def test_no_test_product_among_the_indexed_and_knn_labels_clusters():
    ds, vectors = _dataset()
    pos, _ = similar.split_neighbours(vectors, ds.splits, 5)
    found = {ds.splits["train"][p] for p in pos.ravel()}
    assert found <= set(ds.splits["train"]) and not found & set(ds.splits["test"])
    leaky = {**ds.splits, "train": ds.splits["train"] + ds.splits["test"][:2]}
    with pytest.raises(ValueError, match="2 products are both"):
        similar.split_neighbours({**vectors, "train": np.vstack([vectors["train"], vectors["test"][:2]])}, leaky, 5)
    probs, val_table, k = similar.knn_classifier(vectors, ds, [1, 3, 5])
    assert k == 1 and val_table["val_f1"].max() == pytest.approx(100.0)  # clean clusters: ties go to the smaller k
    np.testing.assert_array_equal(probs >= 0.5, ds.y("test").astype(bool))


def test_similar_products_on_a_tiny_finished_run(tmp_path):
    ds, x = _dataset()
    profile = get_profile("smoke")
    data = StageOutput(profile, "01_data", fingerprint=ds.fingerprint, run_dir=tmp_path)
    save_dataset(ds, data)
    data.finish()
    out = StageOutput(profile, similar.STAGE, fingerprint=ds.fingerprint, run_dir=tmp_path)
    quality = similar.quality_table({"concat": similar.split_neighbours(x, ds.splits, 2)}, ds, [1, 2], n_boot=20)
    similar.save_embeddings_stage(out, ds, {"concat": x, "title": {s: -v for s, v in x.items()}}, quality,
                                  best_kind="concat")
    out.finish()
    saved = (out.path / "metrics.json").read_text()
    assert '"precision_at_k"' in saved and json.loads(saved)["precision_at_k"]["concat"]["2"][0] == pytest.approx(100.0)
    query = ds.splits["test"][0]  # product p40, cluster 40 % 3 = 1 (label b)
    found = similar.similar_products(tmp_path / "smoke", query, k=4)
    assert len(found) == 4 and query not in found["id"].tolist()
    assert all(list(labels) == ["b"] for labels in found["labels"]) and (np.diff(found["score"]) <= 0).all()
    assert set(found["split"]) <= {"train", "val", "test"} and found["title"].str.startswith("product").all()
    same = similar.similar_products(out.path, query, k=4, kind="concat")
    assert same["id"].tolist() == found["id"].tolist()
    with pytest.raises(KeyError, match="not in run"):
        similar.similar_products(out.path, "nope")
    with pytest.raises(ArtifactError, match="run notebook 07"):
        similar.similar_products(tmp_path / "missing", query)


def test_quality_numbers_judges_by_the_intervals():
    rows = [("title", 60.0, 55.0, 65.0), ("image", 70.0, 66.0, 74.0), ("concat", 80.0, 76.0, 84.0),
            ("joint", 72.0, 68.0, 76.0)]
    table = pd.DataFrame([{"kind": kind, "k": 5, "precision": p, "p_low": lo, "p_high": hi}
                          for kind, p, lo, hi in rows]).set_index(["kind", "k"])
    numbers = similar.quality_numbers(table, 5, ["title", "image"])
    assert (numbers["best_single_kind"], numbers["best_fused_kind"], numbers["best_kind"]) == ("image", "concat",
                                                                                                 "concat")
    assert "clearly better" in numbers["fusion_sentence"] and numbers["p5_image"] == "70.0 % (66.0–74.0)"
    overlapping = similar.quality_numbers(table.drop(("concat", 5)), 5, ["title", "image"], fused=["joint"])
    assert "intervals overlap" in overlapping["fusion_sentence"] and "scores higher" in overlapping["fusion_sentence"]


def test_knn_row_beside_table3():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 1]])
    table3 = [{"model": "trimodal", "f1": 50.0, "ci_low": 40.0, "ci_high": 60.0, "paper_f1": 88.0, "f1_oof": 1.0},
              {"model": "max", "f1": 90.0, "ci_low": 80.0, "ci_high": 95.0, "paper_f1": 80.0},
              {"model": "oracle", "f1": 100.0, "ci_low": 100.0, "ci_high": 100.0}]
    table, numbers = similar.knn_beside_table3(table3, "knn_concat", y, y * 0.8 + 0.1, n_boot=20)
    assert table["model"].tolist()[1:] == ["knn_concat", "max", "trimodal"] and list(table.columns) == [
        "model", "paper_f1", "f1", "ci_low", "ci_high"]
    assert numbers["knn_f1"] == 100.0 and numbers["knn_rank"] == 1 and numbers["n_rows"] == 3  # oracle not ranked
    assert numbers["knn_vs_main"] == "50.0 points above the tri-modal policy network"
    two = [dict(r, model="image+title") if r["model"] == "trimodal" else r for r in table3]
    _, numbers = similar.knn_beside_table3(two, "knn_concat", y, y * 0.8 + 0.1, n_boot=20, main="image+title")
    assert numbers["knn_vs_main"] == "50.0 points above the image+title policy network"


def test_neighbour_gallery_has_a_tile_per_product():
    from prodlib import plots
    ds, _ = _dataset()
    pos, score = np.array([[0, 3], [1, 4]]), np.array([[0.9, 0.8], [0.7, 0.6]])
    rows = similar.neighbour_rows(ds, [1], {"title": (pos, score), "concat": (pos[::-1], score)})
    assert [r["kind"] for r in rows] == ["title", "concat"] and rows[0]["tiles"][0]["score"] is None
    assert [t["id"] for t in rows[0]["tiles"]] == [ds.splits["test"][1], "p1", "p4"]
    fig = plots.neighbour_gallery(rows)
    assert len(fig.axes) == 6 and fig.axes[1].get_title().startswith("cos 0.70")


def test_twin_numbers_counts_near_copies_and_their_shared_labels():
    ds, _ = _dataset()  # train p0..p29, test p40..p49; p40 is cluster 1 (label b)
    pos = np.array([[1], [2], [0]] + [[0]] * 7)  # p40 -> p1 (b), p41 -> p2 (c), p42 -> p0 (a)
    score = np.array([[1.0], [0.995], [0.5]] + [[0.2]] * 7)
    assert similar.twin_numbers((pos, score), ds) == {"twins": 2, "twins_share_label": 2}
    assert similar.twin_numbers((pos[[1, 0, 2, 3, 4, 5, 6, 7, 8, 9]], score), ds) == {"twins": 2,
                                                                                        "twins_share_label": 0}
