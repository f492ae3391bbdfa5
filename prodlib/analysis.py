"""Error analysis (notebook 06): which products each model gets wrong (its predicted label set is not the
true one), how those errors overlap across modalities, which classes fusion helps, galleries of fixed and
remaining errors, and F1 on products missing a modality."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from prodlib.metrics import binarize, bootstrap_ci, micro_f1, per_class_f1

__all__ = ["error_overlap", "fix_masks", "gain_numbers", "gallery_rows", "miss_numbers", "overlap_numbers",
           "per_class_gain", "save_errors_stage", "subgroup_f1", "test_predictions", "wrong_products"]


def wrong_products(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """Boolean vector: the products whose predicted label set is not exactly their true label set."""
    y = np.asarray(y_true).astype(bool)
    pred = binarize(probs, threshold)
    if y.shape != pred.shape:
        raise ValueError(f"labels {y.shape} and predictions {pred.shape} differ in shape")
    return (y != pred).any(axis=1)


def error_overlap(wrong: Mapping[str, np.ndarray], include_none: bool = False) -> pd.DataFrame:
    """UpSet-style intersections: for each combination of models, how many products are wrong for exactly
    those models (and right for the others). One boolean column per model plus ``products``; largest first.
    ``include_none`` adds the row of products every model gets right."""
    names = list(wrong)
    if not names:
        raise ValueError("give at least one model's wrong-product mask")
    masks = np.column_stack([np.asarray(wrong[n], dtype=bool) for n in names])
    rows = []
    for combo in itertools.product((True, False), repeat=len(names)):
        if not any(combo) and not include_none:
            continue
        count = int(np.all(masks == np.asarray(combo), axis=1).sum())
        rows.append({**dict(zip(names, combo, strict=True)), "products": count})
    table = pd.DataFrame(rows)
    table["models"] = [" & ".join(n for n in names if r[n]) or "(none)" for _, r in table.iterrows()]
    return table.sort_values("products", ascending=False, kind="stable").reset_index(drop=True)


def per_class_gain(y_true: np.ndarray, fused: np.ndarray, singles: Mapping[str, np.ndarray],
                   classes: Sequence[str], threshold: float = 0.5) -> pd.DataFrame:
    """Per-class F1 of each single model and of fusion, and fusion's gain over the best single model
    (the one with the highest test micro-F1 overall, named in column ``best_single``)."""
    if not singles:
        raise ValueError("give at least one single-modality model")
    best = max(singles, key=lambda n: micro_f1(y_true, singles[n], threshold))
    table = pd.DataFrame({"class": list(classes), "support": np.asarray(y_true).sum(axis=0).astype(int)})
    for name, probs in singles.items():
        table[f"f1_{name}"] = per_class_f1(y_true, probs, threshold)["f1"].to_numpy()
    table["f1_fused"] = per_class_f1(y_true, fused, threshold)["f1"].to_numpy()
    table["best_single"] = best
    table["gain"] = table["f1_fused"] - table[f"f1_{best}"]
    return table.sort_values("gain", ascending=False).reset_index(drop=True)


def fix_masks(y_true: np.ndarray, fused: np.ndarray, single: np.ndarray,
              threshold: float = 0.5) -> dict[str, np.ndarray]:
    """``fixed``: wrong for the single model, right after fusion; ``broken``: the reverse; ``still_wrong``:
    wrong for both."""
    ws, wf = wrong_products(y_true, single, threshold), wrong_products(y_true, fused, threshold)
    return {"fixed": ws & ~wf, "broken": ~ws & wf, "still_wrong": ws & wf}


def gallery_rows(part: pd.DataFrame, mask: np.ndarray, y_true: np.ndarray, probs: Mapping[str, np.ndarray],
                 classes: Sequence[str], *, k: int = 6, seed: int = 0, threshold: float = 0.5) -> list[dict[str, Any]]:
    """Up to ``k`` products where ``mask`` holds (a seeded random pick): id, title, image path, true labels
    and, under ``pred``, each model's predicted labels. ``part`` is the split's table in the same row order."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(part) != len(mask):
        raise ValueError(f"table has {len(part)} rows, mask {len(mask)}")
    pick = np.sort(np.random.default_rng(seed).choice(idx, size=min(k, len(idx)), replace=False)) if len(idx) else idx
    classes = list(classes)
    rows = []
    for i in pick:
        rec = part.iloc[int(i)]
        image = rec.get("image")
        row = {"id": str(rec.get("id", part.index[int(i)])), "title": str(rec.get("title", "")),
               "image": image if isinstance(image, str) and image else None,
               "true": [classes[c] for c in np.flatnonzero(np.asarray(y_true)[i])],
               "pred": {name: [classes[c] for c in np.flatnonzero(np.asarray(p)[i] >= threshold)]
                        for name, p in probs.items()}}
        rows.append(row)
    return rows


def subgroup_f1(y_true: np.ndarray, probs: np.ndarray, groups: Mapping[str, np.ndarray], *, n_boot: int = 1000,
                seed: int = 0, threshold: float = 0.5) -> pd.DataFrame:
    """Micro-F1 (%) with a bootstrap 95 % CI on subsets of products (e.g. those without an image); empty
    groups are reported with ``products = 0`` and no score."""
    rows = []
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            rows.append({"group": name, "products": 0, "f1": np.nan, "ci_low": np.nan, "ci_high": np.nan})
            continue
        lo, hi = bootstrap_ci(y_true[mask], probs[mask], threshold, n=n_boot, seed=seed)
        rows.append({"group": name, "products": n, "f1": 100 * micro_f1(y_true[mask], probs[mask], threshold),
                     "ci_low": 100 * lo, "ci_high": 100 * hi})
    return pd.DataFrame(rows)


def test_predictions(profile: Any, run_dir: Any, ds: Any) -> tuple[dict[str, np.ndarray], str, str | None]:
    """The test probabilities of each classifier stage and of stage ``05_fusion``'s main network (tri-modal, or
    bi-modal with two modalities), all checked to come from the dataset ``ds``, rows in its test order; the best
    single model and the main network's name (``None`` with one modality: nothing was fused). Notebook 06."""
    from prodlib.artifacts import load_classifier_stages, load_stage

    ids = ds.splits["test"]
    probs = {m: s.predictions("test").align(ids)
             for m, s in load_classifier_stages(profile, run_dir, ds.fingerprint, ds.modalities).items()}
    if len(probs) < 2:
        return probs, next(iter(probs)), None
    fused = load_stage(profile, "05_fusion", run_dir, fingerprint=ds.fingerprint)
    main = str(fused.metrics["main"]["name"])
    probs[main] = fused.predictions(f"test_{main.replace('+', '_')}").align(ids)
    return probs, str(fused.metrics["best_single"]), main


def support_missrate_sentence(rho: float) -> str:
    """What the Spearman correlation between a class's test support and its miss rate says, in words."""
    if not np.isfinite(rho):
        return "undefined here (too few classes, or no variation)"
    if rho < 0:
        return f"{rho:.2f}: negative, so small classes are missed more often, as the paper observed"
    if rho > 0:
        return f"{rho:.2f}: positive, so here the large classes are missed more often, unlike the paper's observation"
    return "0.00: support and miss rate are unrelated here"


def miss_numbers(y: np.ndarray, probs: Mapping[str, np.ndarray], best_single: str,
                 threshold: float = 0.5, main: str = "trimodal") -> dict[str, Any]:
    """Missed (product, true class) pairs of the ``main`` fused network against the best single model: in how
    many classes it misses fewer or more, the totals, and the rank correlation of support and miss rate.
    Notebook 06."""
    y = np.asarray(y).astype(bool)
    support = y.sum(axis=0)
    present = support > 0
    missed = {name: np.logical_and(y, np.asarray(p) < threshold).sum(axis=0) for name, p in probs.items()}
    tri, best = missed[main][present], missed[best_single][present]
    rate = pd.Series(missed[main][present] / support[present])
    rho = float(pd.Series(support[present]).corr(rate, method="spearman"))
    return {"classes_fewer_misses": int((tri < best).sum()), "classes_more_misses": int((tri > best).sum()),
            "n_classes_present": int(present.sum()), "missed_best_single": int(missed[best_single].sum()),
            "missed_main": int(missed[main].sum()), "support_missrate_corr": round(rho, 2),
            "support_missrate_text": support_missrate_sentence(rho),
            "missed_pairs": {k: int(v.sum()) for k, v in missed.items()}}


def overlap_numbers(wrong: Mapping[str, np.ndarray], modalities: Sequence[str],
                    main: str = "trimodal") -> dict[str, int]:
    """How many test products all classifiers get wrong, how many none, how many some, and how many of those
    the ``main`` fused network (``wrong[main]``) gets right. Notebook 06."""
    masks = np.column_stack([wrong[m] for m in modalities])
    all_wrong, none_wrong = masks.all(axis=1), ~masks.any(axis=1)
    some = ~all_wrong & ~none_wrong
    main_right = ~wrong[main]
    return {"wrong_all": int(all_wrong.sum()), "wrong_none": int(none_wrong.sum()),
            "all_wrong_fixed": int((all_wrong & main_right).sum()), "some_right": int(some.sum()),
            "some_right_main_right": int((some & main_right).sum()), "n_classifiers": len(modalities)}


def gain_numbers(gain: pd.DataFrame) -> dict[str, Any]:
    """Classes that fusion improves and hurts, the median per-class change (points) and the table of the
    largest gains and losses, from :func:`per_class_gain`."""
    show = pd.concat([gain.head(10), gain.tail(5)]).drop_duplicates("class").round(3).set_index("class")
    return {"classes_improved": int((gain["gain"] > 0).sum()), "classes_worse": int((gain["gain"] < 0).sum()),
            "median_gain": round(100 * float(gain["gain"].median()), 1), "gain_table": show}


def save_errors_stage(out: Any, missed: Mapping[str, pd.DataFrame], fused: Mapping[str, Any] | None, *,
                      min_support: int, best_single: str, main: str | None = "trimodal") -> None:
    """Write stage ``06_errors``: Table 2 (``table2.json``) and, when there is a fused ``main`` network, what
    ``fused`` holds (``overlap``, ``gain``, ``wrong``, ``masks``, ``numbers``): Table 4 (``table4.json``), the error
    overlap, the per-class gains; and a summary in ``metrics.json``. Notebook 06."""
    out.save_json("table2", {m: t.to_dict(orient="records") for m, t in missed.items() if m != main})
    summary: dict[str, Any] = {"min_support": min_support, "best_single": best_single, "main": main}
    if main is not None and fused is not None:
        out.save_json("table4", missed[main].to_dict(orient="records"))
        out.save_json("overlap", fused["overlap"].to_dict(orient="records"))
        out.save_json("class_gain", fused["gain"].to_dict(orient="records"))
        numbers = fused["numbers"]
        summary.update({"wrong_products": {k: int(v.sum()) for k, v in fused["wrong"].items()},
                        "fix": {k: int(v.sum()) for k, v in fused["masks"].items()},
                        "classes_improved": numbers["classes_improved"], "classes_worse": numbers["classes_worse"],
                        "missed_pairs": numbers["missed_pairs"]})
    out.save_metrics(summary)
