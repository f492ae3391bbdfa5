"""Product embeddings and similar products (notebook 07, the paper's future work): a vector per product for each
modality and fused, cosine retrieval in chunks (bounded memory), neighbour quality without hand labels
(precision@k and Jaccard with bootstrap intervals), a k-nearest-neighbour classifier, and
:func:`similar_products` for a finished run."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prodlib.artifacts import ArtifactError, StageArtifacts, load_stage
from prodlib.metrics import bootstrap_ci, micro_f1

__all__ = ["STAGE", "knn_beside_table3", "knn_classifier", "knn_probs", "map_2d", "nearest", "neighbour_quality",
           "neighbour_rows", "normalize", "product_vectors", "quality_numbers", "quality_table",
           "save_embeddings_stage", "similar_products", "split_neighbours", "twin_numbers"]

STAGE = "07_embeddings"
SPLITS = ("train", "val", "test")
FUSED = ("concat", "joint")


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def product_vectors(stages: Mapping[str, Any], ds: Any, early_net: Any) -> dict[str, dict[str, np.ndarray]]:
    """``kind -> split -> vectors`` (rows in ``ds.splits`` order): each classifier's penultimate features
    centred on the training mean; ``concat``, their unit-length concatenation; ``joint``, the hidden layer of
    chapter 5's early-fusion network ``early_net`` (:meth:`prodlib.fusion.EarlyFusion.load`), trained on the
    training split only. Notebook 07."""
    from prodlib.fusion import aligned_features
    feats = {s: aligned_features(stages, s, ds.splits[s]) for s in SPLITS}
    out: dict[str, dict[str, np.ndarray]] = {}
    for i, mod in enumerate(stages):
        mean = feats["train"][i].mean(axis=0)
        out[mod] = {s: normalize(feats[s][i] - mean) for s in SPLITS}
    out["concat"] = {s: np.hstack([out[m][s] for m in stages]) / np.sqrt(len(stages)) for s in SPLITS}
    out["joint"] = {s: early_net.hidden(feats[s]) for s in SPLITS}
    return out


def nearest(queries: np.ndarray, index: np.ndarray, k: int, *, exclude: Sequence[int] | None = None,
            max_bytes: int = 64 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``index`` most cosine-similar to each query, best first: ``(positions, scores)``.
    Queries go in chunks so that a similarity block never exceeds ``max_bytes`` (peak about four blocks with the
    sort's temporaries; ``benchmarks/bench_similar.py``); ``exclude[i]`` (a position, or -1) is never returned
    for query ``i`` (the query itself). Notebook 07."""
    q, x = normalize(queries), normalize(index)
    if q.ndim != 2 or x.ndim != 2 or q.shape[1] != x.shape[1]:
        raise ValueError(f"queries {q.shape} and index {x.shape} must be 2-D with the same width")
    k = min(int(k), len(x) - (exclude is not None))
    if k < 1:
        raise ValueError("k must be at least 1 and the index must hold more products than that")
    rows = max(1, max_bytes // (4 * len(x)))
    pos, score = np.empty((len(q), k), dtype=np.int64), np.empty((len(q), k), dtype=np.float32)
    for start in range(0, len(q), rows):
        sims = q[start:start + rows] @ x.T
        if exclude is not None:
            ex = np.asarray(exclude[start:start + rows])
            sims[np.flatnonzero(ex >= 0), ex[ex >= 0]] = -np.inf
        top = np.sort(np.argpartition(-sims, k - 1, axis=1)[:, :k], axis=1)
        top_s = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        pos[start:start + rows] = np.take_along_axis(top, order, axis=1)
        score[start:start + rows] = np.take_along_axis(top_s, order, axis=1)
    return pos, score


def split_neighbours(vectors: Mapping[str, np.ndarray], ids: Mapping[str, Sequence[str]], k: int,
                     query: str = "test", index: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest` for the ``query`` split's products among the ``index`` split's; refused when a product
    is in both (a query must never find itself). Notebook 07."""
    if shared := set(map(str, ids[query])) & set(map(str, ids[index])):
        raise ValueError(f"{len(shared)} products are both queries ({query}) and indexed ({index}), "
                         f"e.g. {sorted(shared)[:3]}")
    return nearest(vectors[query], vectors[index], k)


def _boot_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_boot)]
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def neighbour_quality(y_query: np.ndarray, y_index: np.ndarray, neighbours: np.ndarray, ks: Sequence[int], *,
                      n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per ``k``: precision@k (share of the k neighbours sharing at least one label with the query) and the
    mean Jaccard of label sets, in %, each with a 95 % bootstrap interval over queries. Notebook 07."""
    yq, yn = np.asarray(y_query, dtype=bool), np.asarray(y_index, dtype=bool)[neighbours]
    inter = (yn & yq[:, None, :]).sum(axis=2)
    jac = inter / np.maximum((yn | yq[:, None, :]).sum(axis=2), 1)
    rows = []
    for k in ks:
        if not 1 <= k <= neighbours.shape[1]:
            raise ValueError(f"k={k} is outside 1..{neighbours.shape[1]} (the neighbours retrieved)")
        p, j = (inter[:, :k] > 0).mean(axis=1), jac[:, :k].mean(axis=1)
        (plo, phi), (jlo, jhi) = _boot_ci(p, n_boot, seed), _boot_ci(j, n_boot, seed)
        rows.append({"k": int(k), "precision": 100 * p.mean(), "p_low": 100 * plo, "p_high": 100 * phi,
                     "jaccard": 100 * j.mean(), "j_low": 100 * jlo, "j_high": 100 * jhi})
    return pd.DataFrame(rows)


def quality_table(found: Mapping[str, tuple[np.ndarray, np.ndarray]], ds: Any, ks: Sequence[int], *,
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`neighbour_quality` of the test queries' training neighbours for every vector kind. Notebook 07."""
    y_test, y_train = ds.y("test"), ds.y("train")
    return pd.concat([neighbour_quality(y_test, y_train, pos, ks, n_boot=n_boot, seed=seed).assign(kind=kind)
                      for kind, (pos, _) in found.items()], ignore_index=True).set_index(["kind", "k"])


def knn_probs(neighbours: np.ndarray, scores: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Class probabilities as the similarity-weighted share of neighbours carrying each label."""
    w = np.clip(scores, 0.0, None) + 1e-6
    return np.einsum("qk,qkc->qc", w, np.asarray(y_index, dtype=np.float32)[neighbours]) / w.sum(axis=1, keepdims=True)


def knn_classifier(vectors: Mapping[str, np.ndarray], ds: Any, ks: Sequence[int], *,
                   threshold: float = 0.5) -> tuple[np.ndarray, pd.DataFrame, int]:
    """A k-nearest-neighbour classifier over the training products: ``k`` chosen among ``ks`` by validation
    micro-F1 (ties: the smaller k), then the test probabilities. Returns ``(probs_test, val table, k)``. Notebook 07."""
    pos, score = split_neighbours(vectors, ds.splits, max(ks), "val")
    y_train = ds.y("train")
    table = pd.DataFrame({"k": list(ks), "val_f1": [100 * micro_f1(ds.y("val"), knn_probs(pos[:, :k], score[:, :k],
                                                                                        y_train), threshold)
                                                    for k in ks]})
    best = int(table.loc[table["val_f1"].idxmax(), "k"])
    pos, score = split_neighbours(vectors, ds.splits, best, "test")
    return knn_probs(pos, score, y_train), table, best


def knn_beside_table3(table3: Sequence[Mapping[str, Any]], name: str, y: np.ndarray, probs: np.ndarray, *,
                      threshold: float = 0.5, n_boot: int = 1000, seed: int = 0,
                      not_ranked: Sequence[str] = ("oracle",),
                      main: str = "trimodal") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Stage 05's Table 3 (``model``, ``paper_f1``, ``f1``, ``ci_low``, ``ci_high``) with the kNN classifier as one
    more row, best first, and the numbers the text quotes (its rank leaves out ``not_ranked``; it is set beside
    stage 05's ``main`` network). Notebook 07."""
    lo, hi = bootstrap_ci(y, probs, threshold, n=n_boot, seed=seed)
    row = {"model": name, "f1": 100 * micro_f1(y, probs, threshold), "ci_low": 100 * lo, "ci_high": 100 * hi}
    cols = ["model", "paper_f1", "f1", "ci_low", "ci_high"]
    table = pd.DataFrame([*({k: r.get(k, np.nan) for k in cols} for r in table3), row], columns=cols)
    table = table.sort_values("f1", ascending=False, kind="stable").reset_index(drop=True)
    ranked = table[~table["model"].isin(list(not_ranked))].reset_index(drop=True)
    gap = float(row["f1"] - table.set_index("model")["f1"].get(main, np.nan))
    label = f"{'tri-modal' if main == 'trimodal' else main} policy network"
    return table, {"knn_f1": round(float(row["f1"]), 1), "knn_ci": f"{row['ci_low']:.1f}–{row['ci_high']:.1f}",
                   "knn_rank": int(ranked.index[ranked["model"] == name][0]) + 1, "n_rows": len(ranked),
                   "knn_minus_main": round(gap, 1),
                   "knn_vs_main": f"no {label} row to compare with" if np.isnan(gap) else
                   f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} the {label}"}


def quality_numbers(table: pd.DataFrame, k: int, singles: Sequence[str],
                    fused: Sequence[str] = FUSED) -> dict[str, Any]:
    """Precision@``k`` of every kind (with its interval) from :func:`quality_table`, the best single and fused kinds,
    and the sentence that judges, by the bootstrap intervals, whether fusion gives better neighbours. Notebook 07."""
    at = table.xs(k, level="k")
    s, f = at.loc[list(singles), "precision"].idxmax(), at.loc[list(fused), "precision"].idxmax()
    a, b = at.loc[s], at.loc[f]

    def show(name: str, r: pd.Series) -> str:
        return f"{name}, {r['precision']:.1f} %, 95 % CI {r['p_low']:.1f}–{r['p_high']:.1f}"
    if b["p_low"] > a["p_high"]:
        verdict, tail = "gives clearly better neighbours than", ""
    elif b["p_high"] < a["p_low"]:
        verdict, tail = "gives clearly worse neighbours than", ""
    else:
        verdict = "scores higher than" if b["precision"] > a["precision"] else "does not beat"
        tail = "; the intervals overlap, so the two are not shown to differ"
    sentence = (f"At k = {k}, the best fused vector ({show(f, b)}) {verdict} the best single modality "
                f"({show(s, a)}){tail}.")
    out: dict[str, Any] = {f"p{k}_{kind}": f"{r['precision']:.1f} % ({r['p_low']:.1f}–{r['p_high']:.1f})"
                           for kind, r in at.iterrows()}
    listed = ", ".join(f"{kind} {out[f'p{k}_{kind}']}" for kind in at.index)
    return {**out, "best_single_kind": s, "best_fused_kind": f, "best_kind": at["precision"].idxmax(),
            "fusion_sentence": sentence, f"p{k}_sentence": f"Precision@{k} of each vector kind: {listed}."}


def twin_numbers(found: tuple[np.ndarray, np.ndarray], ds: Any, cutoff: float = 0.99) -> dict[str, int]:
    """Test products whose nearest training product has a near-identical vector (cosine ≥ ``cutoff``), and how
    many of those share a label with it: near-copies that make retrieval look easy. Notebook 07."""
    pos, score = found
    twins = score[:, 0] >= cutoff
    shared = (ds.y("test")[twins] & ds.y("train")[pos[twins, 0]]).any(axis=1)
    return {"twins": int(twins.sum()), "twins_share_label": int(shared.sum())}


def map_2d(vectors: np.ndarray, *, n_max: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A t-SNE map of at most ``n_max`` rows (a seeded sample): ``(xy, rows used)``. Notebook 07."""
    from sklearn.manifold import TSNE
    rows = np.arange(len(vectors))
    if len(rows) > n_max:
        rows = np.sort(np.random.default_rng(seed).choice(rows, n_max, replace=False))
    perplexity = float(min(30, max(2, (len(rows) - 1) // 3)))
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(normalize(vectors[rows]))
    return xy, rows


def neighbour_rows(ds: Any, queries: Sequence[int], found: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   split: str = "test", index: str = "train") -> list[dict[str, Any]]:
    """For each query position and vector kind, the tiles of :func:`prodlib.plots.neighbour_gallery`: the query
    and its neighbours, each with image path, title, labels and score. Notebook 07."""
    qpart, ipart = ds.part(split), ds.part(index)

    def tile(rec: pd.Series, score: float | None) -> dict[str, Any]:
        image = rec.get("image")
        return {"id": str(rec["id"]), "title": str(rec["title"]), "labels": list(rec["labels"]), "score": score,
                "image": image if isinstance(image, str) and image else None}
    return [{"kind": kind, "tiles": [tile(qpart.iloc[q], None)] + [tile(ipart.iloc[int(p)], float(s))
                                                                   for p, s in zip(pos[q], score[q], strict=True)]}
            for q in queries for kind, (pos, score) in found.items()]


def save_embeddings_stage(out: Any, ds: Any, vectors: Mapping[str, Mapping[str, np.ndarray]],
                          quality: pd.DataFrame | None, **metrics: Any) -> None:
    """Write stage ``07_embeddings``: ``features_<split>_<kind>.npz`` keyed by product id, and ``metrics.json`` with
    ``precision_at_k`` and ``jaccard_at_k`` (``kind -> k -> [value, ci_low, ci_high]``, from :func:`quality_table`)
    and ``metrics`` (e.g. ``best_kind``, the kNN classifier). Notebook 07."""
    for kind, by_split in vectors.items():
        for split, x in by_split.items():
            out.save_features(f"{split}_{kind}", ds.splits[split], x)
    rows = quality.reset_index().itertuples() if quality is not None else ()
    at_k: dict[str, dict[str, dict[str, list[float]]]] = {"precision_at_k": {}, "jaccard_at_k": {}}
    for r in rows:
        at_k["precision_at_k"].setdefault(r.kind, {})[str(r.k)] = [r.precision, r.p_low, r.p_high]
        at_k["jaccard_at_k"].setdefault(r.kind, {})[str(r.k)] = [r.jaccard, r.j_low, r.j_high]
    out.save_metrics({**at_k, "queries": "test", "index": "train", **metrics})


def _open(run_dir_or_stage: StageArtifacts | str | os.PathLike[str]) -> StageArtifacts:
    if isinstance(run_dir_or_stage, StageArtifacts):
        return run_dir_or_stage
    path = Path(run_dir_or_stage)
    if not (path / "manifest.json").exists():
        path = path / STAGE
    if not (path / "manifest.json").exists():
        raise ArtifactError(f"no finished stage {STAGE!r} at {run_dir_or_stage} (give runs/<profile> or its "
                            f"{STAGE} folder); run notebook 07 first")
    return load_stage(path.parent.name, path.name, path.parent.parent)


def similar_products(run_dir_or_stage: StageArtifacts | str | os.PathLike[str], product_id: str, k: int = 5,
                     kind: str | None = None) -> pd.DataFrame:
    """The ``k`` products of a finished run most similar to ``product_id`` (all splits, never itself), best
    first, with cosine ``score``, split, title and labels. ``run_dir_or_stage``: ``runs/<profile>``, its
    ``07_embeddings`` folder or the loaded stage; ``kind`` defaults to the run's best vector. Notebook 07."""
    from prodlib.dataset import load_dataset
    stage = _open(run_dir_or_stage)
    kind = kind or str(stage.metrics["best_kind"])
    parts = [(split, *stage.features(f"{split}_{kind}")) for split in SPLITS]
    ids = np.concatenate([p[1] for p in parts]).astype(str)
    where = np.flatnonzero(ids == str(product_id))
    if not len(where):
        raise KeyError(f"product {product_id!r} is not in run {stage.profile!r} (it has {len(ids):,} products)")
    vecs = np.concatenate([p[2] for p in parts])
    pos, score = nearest(vecs[where[:1]], vecs, k, exclude=where[:1])
    split_of = np.concatenate([[s] * len(p_ids) for s, p_ids, _ in parts])
    table = load_dataset(stage.profile, stage.path.parent.parent).table
    found = ids[pos[0]]
    return pd.DataFrame({"id": found, "score": score[0], "split": split_of[pos[0]],
                         "title": table.loc[found, "title"].to_numpy(),
                         "labels": table.loc[found, "labels"].to_numpy()})
