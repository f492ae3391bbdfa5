"""The paper's tables rebuilt from a run beside the paper's numbers, and the numbers and whole sentences that
compare them (glued by :func:`prodlib.publish.glue_numbers`), so that notebooks show the experiment, not the
table assembly. Notebook 05 (Tables 1, 3), 06 (Tables 2, 4), 02–04 and the results chapter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from prodlib import paper
from prodlib.fusion import FusionRun, FusionSet, fusion_threshold, main_method, oracle_probs
from prodlib.metrics import bootstrap_ci, evaluate, fit_threshold, micro_f1, most_missed, paired_bootstrap

__all__ = ["difference_sentence", "display_table", "early_table", "fusion_table",
           "missed_beside_paper", "missed_tables", "missing_modality_sentence", "missing_table", "naive_numbers",
           "paired_differences", "robustness_table", "run_numbers", "save_fusion_stage", "score_table",
           "single_table", "stage_table", "sweep_numbers", "table3_differences", "table3_numbers", "threshold_sentence"]


def score_table(probs: Mapping[str, np.ndarray], y: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                threshold: float = 0.5, class_thresholds: Mapping[str, float | np.ndarray] | None = None,
                f1_by_seed: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Test micro-F1 (in %) with a bootstrap 95 % CI for each model; optional columns: F1 at thresholds tuned on
    held-out predictions (``class_thresholds``: a global one or one per class), and mean ± sd over seeds."""
    rows = []
    for name, p in probs.items():
        lo, hi = bootstrap_ci(y, p, threshold, n=n_boot, seed=seed)
        row: dict[str, Any] = {"model": name, "f1": 100 * micro_f1(y, p, threshold),
                               "ci_low": 100 * lo, "ci_high": 100 * hi}
        if class_thresholds is not None and name in class_thresholds:
            row["f1_tuned"] = 100 * micro_f1(y, p, class_thresholds[name])
        if f1_by_seed is not None and name in f1_by_seed and len(f1_by_seed[name]) > 1:
            vals = 100 * np.asarray(f1_by_seed[name], dtype=float)
            row["seeds_mean"], row["seeds_sd"], row["n_seeds"] = vals.mean(), vals.std(ddof=1), len(vals)
        rows.append(row)
    return pd.DataFrame(rows)


def stage_table(stages: Mapping[str, Any]) -> pd.DataFrame:
    """One row per classifier stage: its folder, wall time and manifest notes (notebook 05's inputs)."""
    return pd.DataFrame({m: {"stage": s.stage, "wall time (s)": s.manifest.get("wall_time_s"),
                             "notes": "; ".join(f"{k}={v}" for k, v in s.manifest.get("notes", {}).items())[:120]}
                         for m, s in stages.items()}).T


def run_numbers(profile: Any, ds: Any, stages: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the run is (profile, catalog, split sizes, bootstrap, seeds, modalities and, from the classifier
    ``stages``, which image model) and the paper's dataset and scores. Notebook 05."""
    out: dict[str, Any] = {"profile": profile.name, "catalog": profile.catalog, "n_classes": ds.n_classes,
                           "bootstrap": profile.bootstrap, "n_seeds": len(profile.seeds)}
    out.update({f"n_{s}": len(ds.splits[s]) for s in ("train", "val", "test")})
    out.update({f"paper_{k.replace('+', '_')}_f1": v for k, v in {**paper.SINGLE, **paper.FUSION}.items()})
    out.update({f"paper_{k}": int(paper.DATASET[k]) for k in ("products", "train_products", "test_products",
                                                              "classes")})
    out["paper_gain"] = round(paper.FUSION["trimodal"] - max(paper.SINGLE.values()), 1)
    out["modalities"] = ", ".join(ds.modalities)
    if stages is not None and "image" in stages:
        from prodlib.models.image_cnn import WeightsInfo
        notes = stages["image"].manifest.get("notes", {})
        info = WeightsInfo(**notes["weights_info"])
        out["image_sentence"] = (f"The image numbers of this run come from {info.label} with K = "
                                 f"{notes['image']['trainable_layers']} trainable layers, chosen on validation: "
                                 f"{info.message()}")
    elif stages is not None:
        why = ds.stats.get("modalities", {}).get("why", {}).get("image", "no reason recorded")
        out["image_sentence"] = f"This run has no image model: chapter 1 left the image out ({why})."
    return out


def single_table(val: FusionSet, test: FusionSet, modalities: Sequence[str], baselines: Mapping[str, Any],
                 profile: Any, tune_on: FusionSet | None = None,
                 stages: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 1 beside the paper (each classifier's and TF-IDF baseline's test micro-F1, interval, F1 at a threshold
    tuned on held-out predictions: ``tune_on``, e.g. the out-of-fold set, else validation; mean ± sd over the seeds
    a stage's ``metrics.json`` holds) and its numbers; the best single neural model is the one with the best
    **validation** micro-F1."""
    tune_on = tune_on or val
    singles_test = dict(zip(modalities, test.inputs, strict=True))
    held = dict(zip(modalities, tune_on.inputs, strict=True))
    how = {"per_class": profile.per_class_thresholds, "min_support": profile.threshold_min_support}
    thresholds = {m: fit_threshold(tune_on.y, p, **how) for m, p in held.items()}
    for name, res in baselines.items():
        singles_test[name] = res.probs_test
        thresholds[name] = fit_threshold(val.y, res.probs_val, **how)
    by_seed = {m: list(s.load_json("metrics").get("test_f1_by_seed", {}).values()) for m, s in (stages or {}).items()}
    table = score_table(singles_test, test.y, n_boot=profile.bootstrap, seed=profile.seed, threshold=profile.threshold,
                        class_thresholds=thresholds, f1_by_seed=by_seed)
    table = table.merge(paper.single_table(), on="model", how="left")
    table = table[[c for c in ("model", "paper_f1", "f1", "ci_low", "ci_high", "f1_tuned", "seeds_mean", "seeds_sd")
                   if c in table]]
    f1 = table.set_index("model")["f1"]
    val_f1 = {m: 100 * micro_f1(val.y, p, profile.threshold) for m, p in zip(modalities, val.inputs, strict=True)}
    best = max(modalities, key=lambda m: val_f1[m])
    numbers: dict[str, Any] = {f"single_{m.replace('+', '_')}_f1": round(float(v), 1) for m, v in f1.items()}
    numbers.update(best_single=best, best_single_f1=round(float(f1[best]), 1),
                   best_single_val_f1=round(val_f1[best], 1), table1=display_table(table),
                   tfidf_C={k: float(v.C) for k, v in baselines.items()})
    return table, numbers


def fusion_table(runs: Mapping[str, FusionRun], methods: Mapping[str, Any], val: FusionSet, test: FusionSet,
                 profile: Any, runs_oof: Mapping[str, FusionRun] | None = None, main: str = "trimodal") -> pd.DataFrame:
    """Table 3 beside the paper: each fusion method's test micro-F1 (first seed) with its interval, fitted on
    validation and (``runs_oof``) on out-of-fold predictions, with thresholds tuned on the fitting set (out of fold
    for ridge and the ``main`` network, :func:`prodlib.fusion.main_method`), mean ± sd over seeds, and a last
    ``oracle`` row: the hindsight ceiling of picking one modality. Notebook 05."""
    seed0 = profile.seeds[0]
    how = {"per_class": profile.per_class_thresholds, "min_support": profile.threshold_min_support}
    thresholds = {name: fusion_threshold(runs[name].fitted[seed0], val, **how) for name in ("max", "mean")}
    for name in ("ridge", "ridge_full", main):
        thresholds[name] = fusion_threshold(runs[name].fitted[seed0], val, folds=profile.fusion_folds,
                                                     seed=profile.seed, refit=methods[name], **how)
    probs = {n: r.first for n, r in runs.items()}
    table = score_table({**probs, "oracle": oracle_probs(test.inputs, test.y, profile.threshold)}, test.y,
                        n_boot=profile.bootstrap, seed=profile.seed, threshold=profile.threshold,
                        class_thresholds=thresholds, f1_by_seed={k: list(r.f1.values()) for k, r in runs.items()})
    if runs_oof:
        oof = score_table({n: r.first for n, r in runs_oof.items()}, test.y, n_boot=profile.bootstrap,
                          seed=profile.seed, threshold=profile.threshold)
        table = table.merge(oof.rename(columns={"f1": "f1_oof", "ci_low": "oof_ci_low", "ci_high": "oof_ci_high"}),
                            on="model", how="left")
    table = table.merge(paper.fusion_table().rename(columns={"method": "model"}), on="model", how="left")
    cols = ["model", "paper_f1", "f1", "ci_low", "ci_high", "f1_oof", "oof_ci_low", "oof_ci_high", "f1_tuned",
            "seeds_mean", "seeds_sd"]
    return table[[c for c in cols if c in table]]


def display_table(table: pd.DataFrame, *, not_ranked: Sequence[str] = ("oracle",)) -> Any:
    """Tables 1 and 3 as a reader takes them in: one decimal, ``F1 [low, high]`` in one cell, blank where there is
    no number (the paper's gaps), the best of each column in bold (``not_ranked`` rows excepted). A pandas Styler."""
    t = table.set_index("model")
    spec = {"paper_f1": ("paper", None), "f1": ("ours [95 % CI]", ("ci_low", "ci_high")),
            "f1_oof": ("out-of-fold fit", ("oof_ci_low", "oof_ci_high")), "f1_tuned": ("tuned threshold", None),
            "seeds_mean": ("seeds: mean ± sd", "seeds_sd")}
    cells, bold = {}, {}
    for col, (label, extra) in spec.items():
        if col not in t or t[col].isna().all():
            continue

        def fmt(row: pd.Series, col: str = col, extra: Any = extra) -> str:
            if pd.isna(row[col]):
                return ""
            if isinstance(extra, tuple):
                return f"{row[col]:.1f}\u00a0[{row[extra[0]]:.1f},\u00a0{row[extra[1]]:.1f}]"  # no-break spaces
            return f"{row[col]:.1f}" + (f"\u00a0±\u00a0{row[extra]:.1f}" if extra else "")

        cells[label] = [fmt(r) for _, r in t.iterrows()]
        ranked = t[col].drop([m for m in not_ranked if m in t.index]).astype(float)
        bold[label] = t.index.isin(ranked[ranked == ranked.max()].index) if ranked.notna().any() else []
    out = pd.DataFrame(cells, index=t.index)
    style = out.style.set_table_styles([{"selector": "", "props": "font-size: 0.8em"}])  # six columns fit the page
    return style.apply(lambda col: ["font-weight: bold" if b else "" for b in bold[col.name]]
                       if len(bold[col.name]) else [""] * len(col))


def paired_differences(probs: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], y: np.ndarray,
                       profile: Any) -> pd.DataFrame:
    """Test micro-F1 of ``a`` minus ``b`` in points for each pair (missing models skipped) with a paired bootstrap
    95 % CI: both scored on the same resampled products. Columns ``a, b, delta, ci_low, ci_high``. Notebook 05."""
    rows = []
    for a, b in pairs:
        if a in probs and b in probs:
            d, lo, hi = paired_bootstrap(y, probs[a], probs[b], profile.threshold, n=profile.bootstrap,
                                         seed=profile.seed)
            rows.append({"a": a, "b": b, "delta": 100 * d, "ci_low": 100 * lo, "ci_high": 100 * hi})
    return pd.DataFrame(rows, columns=list(_NO_DIFFERENCES.columns))


_NO_DIFFERENCES = pd.DataFrame(columns=["a", "b", "delta", "ci_low", "ci_high"])


def table3_differences(runs: Mapping[str, FusionRun], runs_oof: Mapping[str, FusionRun] | None, test: FusionSet,
                       best_single: str, modalities: Sequence[str], profile: Any) -> pd.DataFrame:
    """The paired differences of Table 3 (:func:`paired_differences`): each fusion method, fitted on validation and
    out of fold where it was, minus the best single model; the main network minus each bi-modal one;
    out-of-fold minus validation fit; the main network (:func:`prodlib.fusion.main_method`) is the tri-modal one
    with three modalities, else the bi-modal one. Notebook 05."""
    main = main_method(modalities)
    probs = dict(zip(modalities, test.inputs, strict=True)) | {name: run.first for name, run in runs.items()}
    probs |= {f"{name} (oof)": run.first for name, run in (runs_oof or {}).items()}
    pairs = [(m, best_single) for m in runs] + [(f"{m} (oof)", best_single) for m in runs]
    pairs += [(main, m) for m in runs if "+" in m and m != main] + [(f"{main} (oof)", main)]
    return paired_differences(probs, pairs, test.y, profile)


def difference_sentence(diffs: pd.DataFrame, a: str, b: str, a_name: str | None = None,
                        b_name: str | None = None) -> str:
    """One sentence on ``a`` against ``b`` from :func:`paired_differences`: *better* or *worse* only when the
    paired interval excludes 0, else *not shown to differ*; empty when the pair was not measured."""
    row = diffs[(diffs["a"] == a) & (diffs["b"] == b)]
    if row.empty:
        return ""
    verdict, numbers = _judged(row.iloc[0])
    return f"{a_name or a} is {verdict} {b_name or b}: {numbers}."


def _judged(row: pd.Series, words: tuple[str, str, str] = ("better than", "worse than", "not shown to differ from")
            ) -> tuple[str, str]:
    """A row of :func:`paired_differences` as a verdict (the first word when the interval is above 0, the second
    below, else the third) and its numbers, ``+1.5 points (paired 95 % CI +0.2 to +2.9)``."""
    d, lo, hi = float(row["delta"]), float(row["ci_low"]), float(row["ci_high"])
    return (words[0] if lo > 0 else words[1] if hi < 0 else words[2],
            f"{d:+.1f} points (paired 95 % CI {lo:+.1f} to {hi:+.1f})")


def _verdict(diffs: pd.DataFrame, a: str, b: str) -> str:
    row = diffs[(diffs["a"] == a) & (diffs["b"] == b)]
    if row.empty:
        return "not compared with"
    return _judged(row.iloc[0], ("above", "below", "not shown to differ from"))[0]


def main_label(main: str | None) -> str:
    """How the prose names the main fused model (:func:`prodlib.fusion.main_method`): ``tri-modal policy network``
    or, with two modalities, e.g. ``image+title policy network``; ``no fused model`` for ``None`` (one modality).
    Notebooks 05 and 06."""
    return "no fused model" if main is None else f"{'tri-modal' if main == 'trimodal' else main} policy network"


def table3_numbers(table3: pd.DataFrame, table1: pd.DataFrame, best_single: str,
                   diffs: pd.DataFrame, main: str = "trimodal") -> dict[str, Any]:
    """The numbers and comparing phrases of the Table 3 paragraph, computed from the tables and the paired
    differences (:func:`paired_differences`) for the ``main`` network (:func:`prodlib.fusion.main_method`): a
    method is *above* or *below* the best single model only when its paired interval excludes 0. The ``oracle``
    row is headroom, not a method: it is never ranked. Notebook 05."""
    t3 = table3.set_index("model")
    oracle = float(t3.loc["oracle", "f1"]) if "oracle" in t3.index else float("nan")
    t3 = t3.drop(index="oracle", errors="ignore")
    fused, best = float(t3.loc[main, "f1"]), float(table1.set_index("model").loc[best_single, "f1"])
    vs_best = {m: _verdict(diffs, m, best_single) for m in t3.index}
    rank = int((t3["f1"] > fused).sum()) + 1
    main_diff = diffs[(diffs["a"] == main) & (diffs["b"] == best_single)].iloc[0]
    name = main_label(main)
    out: dict[str, Any] = {f"{m.replace('+', '_')}_f1": round(float(v), 1) for m, v in t3["f1"].items()}
    out.update(
        main_name=name, main_f1=round(fused, 1), paper_main_f1=paper.FUSION.get(main, float("nan")),
        main_ci=f"{t3.loc[main, 'ci_low']:.1f}–{t3.loc[main, 'ci_high']:.1f}",
        gain=round(fused - best, 1), gain_ci=f"{main_diff['ci_low']:+.1f} to {main_diff['ci_high']:+.1f}",
        main_vs_best_sentence=difference_sentence(diffs, main, best_single, f"The {name}",
                                                  f"the best single model ({best_single})"),
        oof_sentence=" ".join(filter(None, [
            difference_sentence(diffs, f"{main} (oof)", main, f"Fitted on out-of-fold predictions, the {name}",
                                "the same network fitted on validation"),
            difference_sentence(diffs, f"{main} (oof)", best_single, "Fitted that way, it",
                                "the best single model")])) or "This run fitted fusion on validation only.",
        best_method=t3["f1"].idxmax(), best_method_f1=round(float(t3["f1"].max()), 1),
        n_beat_best_single=sum(v == "above" for v in vs_best.values()),
        n_below_best_single=sum(v == "below" for v in vs_best.values()), n_methods=len(t3),
        max_vs_best=vs_best["max"], mean_vs_best=vs_best["mean"], main_rank=rank,
        main_rank_text=("the best fusion method by point estimate" + (" (as in the paper)" if main == "trimodal"
                                                                      else "") if rank == 1 else
                        f"ranked {rank} of {len(t3)} fusion methods by point estimate"
                        + (" (the paper: first)" if main == "trimodal" else "")),
        oracle_f1=round(oracle, 1), oracle_headroom=round(oracle - best, 1),
        table3=display_table(table3), paired=diffs.round(1).set_index(["a", "b"]))
    return out


def reliance_numbers(ridge_weights: pd.Series, importance: pd.DataFrame, support: pd.Series) -> dict[str, Any]:
    """What the fusion models learned, in numbers and sentences over the study's modalities: the ridge weight of
    each (``ridge_w_<m>``) and, from :func:`prodlib.fusion.modality_importance`, for how many classes present in
    the test set each modality's shuffling hurts most (``classes_rely_<m>``). Notebook 05."""
    relied = importance.idxmax(axis=1)[support > 0].value_counts().reindex(ridge_weights.index, fill_value=0)
    out: dict[str, Any] = {f"ridge_w_{m}": round(float(w), 2) for m, w in ridge_weights.items()}
    out.update({f"classes_rely_{m}": int(n) for m, n in relied.items()})
    out["ridge_sentence"] = "The ridge weights are " + ", ".join(
        f"{w:.2f} ({m})" for m, w in ridge_weights.items()) + "."
    out["rely_sentence"] = "Counting, for each class, the modality whose shuffling hurts most: " + ", ".join(
        f"the {m} for {n} {'class' if n == 1 else 'classes'}" for m, n in relied.items()) + "."
    return out


def early_table(early: Mapping[int, np.ndarray], late: FusionRun, test: FusionSet, profile: Any,
                main: str = "trimodal") -> tuple[pd.DataFrame | None, dict[str, Any], pd.DataFrame]:
    """Early fusion beside the late ``main`` network (test micro-F1, interval, seeds), its numbers and sentence,
    and the paired difference late − early (no table, ``nan`` and no difference when early fusion could not run).
    Notebook 05."""
    if not early:
        return None, {"early_f1": float("nan"), "early_minus_late": float("nan"),
                      "early_sentence": "Early fusion could not run on this run."}, _NO_DIFFERENCES.copy()
    seed0 = profile.seeds[0]
    table = score_table({"early fusion": early[seed0], f"{main} (late)": late.first}, test.y,
                        n_boot=profile.bootstrap, seed=profile.seed, threshold=profile.threshold,
                        f1_by_seed={"early fusion": [micro_f1(test.y, p) for p in early.values()],
                                    f"{main} (late)": list(late.f1.values())})
    diffs = paired_differences({main: late.first, "early": early[seed0]}, [(main, "early")], test.y, profile)
    f1 = table["f1"].to_numpy()
    return table.round(1).set_index("model"), {
        "early_f1": round(float(f1[0]), 1), "early_minus_late": round(float(f1[0] - f1[1]), 1),
        "early_sentence": difference_sentence(diffs, main, "early", f"The late {main_label(main)}", "early fusion"),
    }, diffs


_NAIVE_VERDICT = {
    "above": "The warning holds: a fusion model that learns from inputs better than any it will meet learns to "
             "trust the wrong modality.",
    "below": "On this run the warning does not hold: the naive fit scores higher, although it learned from "
             "over-confident inputs (the table shows how much better the classifiers look on their own training "
             "products).",
}


def naive_numbers(naive: FusionRun | None, train: FusionSet | None, table1: pd.DataFrame, honest: FusionRun,
                  modalities: Sequence[str], test: FusionSet,
                  profile: Any) -> tuple[pd.DataFrame | None, dict[str, Any], pd.DataFrame]:
    """The naive variant's table (each base classifier's F1 on its own training products beside test), its numbers,
    the sentence saying whether the warning holds on this run (from the paired difference honest − naive), and
    that difference; no table and ``nan`` when the variant could not run."""
    if naive is None or train is None:
        return None, {"naive_f1": float("nan"), "naive_minus_honest": float("nan"),
                      "naive_sentence": "The naive variant could not run on this run."}, _NO_DIFFERENCES.copy()
    f1, tri_f1 = 100 * next(iter(naive.f1.values())), 100 * next(iter(honest.f1.values()))
    t1 = table1.set_index("model")["f1"]
    table = pd.DataFrame({"base classifier F1 on its own training products":
                          {m: 100 * micro_f1(train.y, x) for m, x in zip(modalities, train.inputs, strict=True)},
                          "on test": {m: float(t1[m]) for m in modalities}}).round(1)
    main = main_method(modalities)
    diffs = paired_differences({main: honest.first, "naive": naive.first}, [(main, "naive")], test.y, profile)
    sentence = difference_sentence(diffs, main, "naive", f"Fitted on validation, the {main_label(main)}",
                                   "the same network fitted on training-set outputs")
    sentence += " " + _NAIVE_VERDICT.get(_verdict(diffs, main, "naive"),
                                         "On this run the warning is not borne out by a measurable difference.")
    return table, {"naive_f1": round(f1, 1), "naive_minus_honest": round(f1 - tri_f1, 1),
                   "naive_sentence": sentence}, diffs


def threshold_sentence(curve: pd.DataFrame, tuned: float, test_f1: float, test_f1_tuned: float,
                       default: float = 0.5) -> str:
    """What notebook 02's validation curve says about the threshold: where validation micro-F1 peaks against the
    default, and whether the tuned threshold changed test F1 (saying so when tuning does not help)."""
    at = curve.set_index("threshold")["micro_f1"]
    peak, base = 100 * float(at.max()), 100 * float(at.loc[min(at.index, key=lambda t: abs(t - default))])
    if np.isclose(tuned, default):
        return (f"Validation micro-F1 peaks at the default threshold {default:.2f} ({base:.1f} %), so tuning "
                "changes nothing here.")
    gain = test_f1_tuned - test_f1
    effect = (f"raises test micro-F1 by {gain:.1f} points" if gain >= 0.05 else
              f"lowers test micro-F1 by {-gain:.1f} points: tuning does not help here" if gain <= -0.05 else
              "leaves test micro-F1 unchanged: tuning does not help here")
    return (f"Validation micro-F1 peaks at threshold {tuned:.2f} ({peak:.1f} %, against {base:.1f} % at "
            f"{default:.2f}); on test, that threshold {effect}.")


def missing_modality_sentence(groups: Mapping[str, tuple[int, float]], model: str = "the tri-modal network") -> str:
    """One sentence on how ``model`` scores on test products lacking a modality; ``groups`` maps the missing
    thing (``"a description"``) to ``(number of products, micro-F1 in %)``. An empty group is said to be
    empty instead of being given a meaningless score. Notebook 05 and the results chapter."""
    parts = []
    for noun, (n, f1) in groups.items():
        if n == 0:
            parts.append(f"no test product lacks {noun}")
        else:
            product = "product" if n == 1 else "products"
            parts.append(f"on the {n} test {product} without {noun} {model} scores {f1:.1f} % micro-F1")
    text = "; ".join(parts)
    return (text[:1].upper() + text[1:] + ".") if text else ""


def missing_table(test: FusionSet, fused: np.ndarray, best: np.ndarray, best_single: str, profile: Any,
                  modalities: Sequence[str], masked: np.ndarray | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """F1 of the main fused network (:func:`prodlib.fusion.main_method` of ``modalities``), of the same network with
    the presence mask (``masked``) and of the best single model on the test products without a description, without
    an image, and with both (only the modalities the study uses; ``test.present`` says who lacks what); the
    chapter's numbers and sentences, the mask's paired against the plain network's. Notebook 05."""
    from prodlib.analysis import subgroup_f1

    if test.present is None:
        raise ValueError("the test FusionSet has no presence matrix; build it with fusion.fusion_set(..., ds=ds)")
    lacks = {m: test.present[:, k] == 0 for k, m in enumerate(modalities) if m in ("description", "image")}
    nouns = {"description": "a description", "image": "a usable image"}
    groups = {"all test products": np.ones(len(test.ids), bool), **{f"no {m}": v for m, v in lacks.items()}}
    if lacks:
        groups[" and ".join(lacks) + " present"] = ~np.logical_or.reduce(list(lacks.values()))
    boot = {"n_boot": profile.bootstrap, "seed": profile.seed, "threshold": profile.threshold}
    table = subgroup_f1(test.y, fused, groups, **boot)
    if masked is not None:
        table["f1 with mask"] = subgroup_f1(test.y, masked, groups, **boot)["f1"]
    alone = subgroup_f1(test.y, best, groups, **boot)["f1"]
    table[f"f1 {best_single} alone"] = alone.where(table["group"] != f"no {best_single}")  # it had no input there
    t = table.set_index("group")
    label = main_label(main_method(modalities))
    sentence = missing_modality_sentence({nouns[m]: (int(v.sum()), float(t.loc[f"no {m}", "f1"]))
                                          for m, v in lacks.items()}, f"the {label}")
    shown = table[table["products"] > 0]  # an empty group is said in the sentence, not shown as a row of blanks
    numbers: dict[str, Any] = {"missing_sentence": sentence or "This study uses no modality a product can lack "
                               "here (titles are never empty).", "table_missing":
                               shown.round(1).set_index("group").astype(object).fillna("no input")}
    for m, short in (("description", "desc"), ("image", "image")):
        n = int(lacks[m].sum()) if m in lacks else 0
        numbers[f"n_no_{short}"] = n
        numbers[f"f1_no_{short}"] = round(float(t.loc[f"no {m}", "f1"]), 1) if n else float("nan")
    if masked is not None:
        numbers["mask_sentence"] = _mask_sentence(test, fused, masked, groups, label, profile)
    return table, numbers


def _mask_sentence(test: FusionSet, fused: np.ndarray, masked: np.ndarray, groups: Mapping[str, np.ndarray],
                   label: str, profile: Any) -> str:
    """The masked network against the plain one, paired, on all test products and on each group lacking a modality."""
    said = []
    for name, rows in groups.items():
        if name.endswith(" present") or not rows.any():
            continue
        diff = paired_differences({"mask": masked[rows], "plain": fused[rows]}, [("mask", "plain")], test.y[rows],
                                  profile).iloc[0]
        verdict, numbers = _judged(diff, ("better", "worse", "not shown to differ"))
        where = "on all test products" if name == "all test products" else f"on the {rows.sum()} with {name}"
        said.append(f"{verdict} {where}: {numbers}")
    return f"Given the mask input, the {label} is, against itself without the mask, " + "; ".join(said) + "."


def robustness_table(network: Any, masked: Any, test: FusionSet, fill: np.ndarray, modalities: Sequence[str],
                     profile: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Test micro-F1 (%) of the fitted main network and its masked twin when one modality is blanked for every test
    product (:func:`prodlib.fusion.blank_modality` with ``fill``, the training prevalence), beside each single model
    (``no input`` for the blanked one), and a sentence: what each loss costs, and whether the network without the
    worst-hit modality still beats the best single model left (paired bootstrap). Notebook 05."""
    from prodlib.fusion import blank_modality

    label = main_label(main_method(modalities))
    singles = dict(zip(modalities, test.inputs, strict=True))
    f1 = {m: 100 * micro_f1(test.y, p, profile.threshold) for m, p in singles.items()}
    rows, probs, probs_masked = [], {}, {}
    for k, blanked in [(-1, "nothing"), *enumerate(modalities)]:
        data = test if k < 0 else blank_modality(test, k, fill)
        probs[blanked] = network.predict(data.inputs)
        probs_masked[blanked] = masked.predict(data.inputs, present=data.present)
        row = {"blanked": blanked, label: 100 * micro_f1(test.y, probs[blanked], profile.threshold),
               "with mask": 100 * micro_f1(test.y, probs_masked[blanked], profile.threshold)}
        rows.append(row | {f"{m} alone": (np.nan if m == blanked else f1[m]) for m in modalities})
    table = pd.DataFrame(rows)
    t = table.set_index("blanked")
    base = t.loc["nothing"]
    costs = [f"without the {m} it scores {t.loc[m, label]:.1f} % ({t.loc[m, label] - base[label]:+.1f} "
             f"points; with the mask {t.loc[m, 'with mask']:.1f} %)" for m in modalities]
    worst = min(modalities, key=lambda m: t.loc[m, label])
    left = max((m for m in modalities if m != worst), key=lambda m: f1[m])
    diffs = paired_differences({"plain": probs[worst], "mask": probs_masked[worst], left: singles[left]},
                               [("plain", left), ("mask", left)], test.y, profile).set_index("a")

    def against_left(who: str) -> str:
        verdict, numbers = _judged(diffs.loc[who], ("still better than", "worse than", "not shown to differ from"))
        return f"{verdict} it: {numbers}"

    sentence = (f"With every modality the {label} scores {base[label]:.1f} % test micro-F1; " + "; ".join(costs)
                + f". Losing the {worst} hurts it most; the best single model left is the {left} classifier "
                f"({f1[left]:.1f} %), and without the {worst} the network is {against_left('plain')}; the masked "
                f"network {against_left('mask')}.")
    return table, {"robust_sentence": sentence, "robust_worst": worst,
                   "table_robust": t.round(1).astype(object).fillna("no input")}


def save_fusion_stage(out: Any, ds: Any, test: FusionSet, runs: Mapping[str, FusionRun], baselines: Mapping[str, Any],
                      early: Mapping[int, np.ndarray], tables: Mapping[str, pd.DataFrame | None], *,
                      config: Mapping[str, Any], best_single: str, ridge: Any, modalities: Sequence[str],
                      profile: Any, runs_oof: Mapping[str, FusionRun] | None = None,
                      early_net: Any = None) -> None:
    """Write stage ``05_fusion``: each method's test probabilities (``predictions_test_<name>.npz``, ``+`` written
    ``_``; out-of-fold fits as ``<name>_oof``) and ``metrics.json`` (Tables 1 and 3, ``paired_differences``, search,
    seeds, ridge, missing modalities, best single model, ``main``: the main network's name, configuration and test
    metrics) and ``early_net``, the first seed's early-fusion network that chapter 7 reuses. Notebook 05."""
    if early_net is not None:
        early_net.save(out.path)
    probs = {name: run.first for name, run in runs.items()}
    probs.update({f"{name}_oof": run.first for name, run in (runs_oof or {}).items()})
    probs.update({name: res.probs_test for name, res in baselines.items()})
    if early:
        probs["early"] = early[profile.seeds[0]]
    for name, p in probs.items():
        out.save_predictions(f"test_{name.replace('+', '_')}", test.ids, p, ds.classes)

    def records(name: str) -> Any:
        table = tables.get(name)
        return None if table is None else table.to_dict(orient="records")

    out.save_metrics({
        "table1": records("table1"), "table3": records("table3"),
        "main": {"name": (main := main_method(modalities)), "config": dict(config),
                 "test": evaluate(test.y, runs[main].first, ds.classes)},
        "f1_by_seed": {k: r.f1 for k, r in runs.items()},
        "f1_by_seed_oof": {k: r.f1 for k, r in (runs_oof or {}).items()},
        "ridge": {"alpha": ridge.alpha_, "weights": dict(zip(modalities, ridge.weights_.tolist(), strict=True))},
        "search": records("search"), "missing_modalities": records("missing"),
        "robustness": records("robust"),
        "paired_differences": records("paired") or [],
        "tfidf_C": {k: v.C for k, v in baselines.items()}, "best_single": best_single,
        "fitted_on": "val and out-of-fold training predictions" if runs_oof else "val", "evaluated_on": "test",
    })


def missed_beside_paper(y_test: np.ndarray, p_test: np.ndarray, classes: Sequence[str], model: str, *,
                        k: int = 5, threshold: float = 0.5, min_support: int = 1) -> pd.DataFrame:
    """Our ``k`` most-missed test classes (among those with ``min_support`` test products, the profile's
    ``missed_min_support``) in the paper's ``Name (missed/support)`` form beside the paper's Table 2 column for
    ``model`` (``title``, ``description`` or ``image``). Notebooks 02–04."""
    ours = most_missed(y_test, p_test, classes, k=k, threshold=threshold, min_support=min_support)
    theirs = paper.missed_table(model)
    rank = range(1, max(len(ours), len(theirs)) + 1)
    return pd.DataFrame({
        "ours (missed/support)": [ours["label"].get(i, "") for i in rank],
        "paper (missed/support)": [theirs["label"].get(i, "") for i in rank],
    }, index=pd.Index(rank, name="rank"))


def missed_tables(missed: Mapping[str, pd.DataFrame],
                  main: str | None = "trimodal") -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """Tables 2 and 4 beside the paper's, from :func:`prodlib.metrics.most_missed` per model (the classifiers of the
    study and its ``main`` fused network), and one sentence naming each classifier's most-missed class (a left-out
    modality is said to be left out; no Table 4 without a fused network, ``main=None``). Notebook 06."""
    singles = [m for m in ("image", "description", "title") if m in missed]
    table2 = pd.DataFrame({f"{m} ({who})": (paper.missed_table(m)["label"] if who == "paper" else missed[m]["label"])
                           for m in singles for who in ("paper", "ours")})
    table4 = None if main is None else pd.DataFrame({"trimodal (paper)": paper.missed_table("trimodal")["label"],
                                                     f"{main} (ours)": missed[main]["label"]})
    table2.index.name = "rank"
    if table4 is not None:
        table4.index.name = "rank"
    top = {m: t.iloc[0]["label"] if len(t) else "none" for m, t in missed.items()}
    said = [f"the {m} classifier misses {top[m]} most" if m in top else f"the {m} was left out of this study"
            for m in ("title", "description", "image")]
    sentence = "; ".join(said)
    numbers: dict[str, Any] = {f"top_missed_{m.replace('+', '_')}": v for m, v in top.items()}
    numbers.update(top_missed_main=top.get(main or "", "none"),
                   top_missed_sentence=sentence[0].upper() + sentence[1:] + ".")
    return table2, table4, {**numbers, "table2": table2, "table4": table4}


def sweep_numbers(sweep: pd.DataFrame) -> dict[str, Any]:
    """The numbers and sentence of notebook 04's sweep (:func:`prodlib.classifiers.k_sweep`): the K validation
    chose, its validation and test F1, and what the random-weights row says about pretraining."""
    chosen = sweep[sweep["chosen"] == "yes"].iloc[0]
    out: dict[str, Any] = {"chosen_k": int(chosen["K"]), "chosen_val_f1": float(chosen["val_f1"]),
                           "chosen_test_f1": float(chosen["test_f1"])}
    random = sweep[(sweep["weights"] == "random") & (sweep["chosen"] != "yes")]
    if chosen["weights"] != "ImageNet" or random.empty:
        out["pretraining_sentence"] = ("This run has no pretrained backbone, so it cannot say what ImageNet "
                                       "pretraining buys." if chosen["weights"] != "ImageNet" else
                                       "The profile trains no random-weights row, so this run does not measure what "
                                       "ImageNet pretraining buys.")
        return out
    r = random.iloc[0]
    gap = float(chosen["val_f1"] - r["val_f1"])
    where = (f"{gap:.1f} points below" if gap > 0 else f"{-gap:.1f} points above" if gap < 0 else "level with")
    out["pretraining_sentence"] = (
        f"From random weights the same backbone reaches {r['val_f1']:.1f} % validation micro-F1 at K = "
        f"{int(r['K'])}, {where} the chosen pretrained run ({chosen['val_f1']:.1f} %)"
        + (": pretraining did not help here." if gap <= 0 else "."))
    return out
