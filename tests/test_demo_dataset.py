import numpy as np
import pytest

from prodlib.artifacts import ArtifactMismatch, StageOutput
from prodlib.config import get_profile
from prodlib.dataset import DATA_STAGE, build_dataset, load_dataset, save_dataset
from prodlib.demo import DEMO_SOURCE, DEMO_TREE, demo_leaves, generate_demo_catalog
from prodlib.explore import label_modes_side_by_side, modality_summary, text_stats


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo_catalog(600, seed=3, image_dir=tmp_path_factory.mktemp("img"), image_size=48)


def test_demo_is_deterministic(tmp_path, demo):
    again = generate_demo_catalog(600, seed=3, image_dir=tmp_path, image_size=48)
    other = generate_demo_catalog(600, seed=4)
    cols = ["id", "title", "description", "category_paths"]
    assert demo[cols].equals(again[cols])
    assert not demo["title"].equals(other["title"])


def test_demo_follows_the_catalog_contract_and_is_labelled_synthetic(demo):
    assert list(demo.columns) == ["id", "title", "description", "category_paths", "image", "source"]
    assert demo["id"].is_unique
    assert (demo["source"] == DEMO_SOURCE).all()
    roots = set(DEMO_TREE) | {"Gift Ideas"}
    assert all(p[0] in roots for paths in demo["category_paths"] for p in paths)


def test_demo_has_multilabel_long_tail_and_missing_modalities(demo):
    n_paths = demo["category_paths"].map(len)
    assert 0.15 < (n_paths > 1).mean() < 0.45
    leaf_counts = demo["category_paths"].map(lambda ps: ps[0][-1]).value_counts()
    assert leaf_counts.iloc[0] > 5 * leaf_counts.iloc[-1]  # long tail
    assert 0.05 < (demo["description"] == "").mean() < 0.3
    assert demo["image"].isna().sum() > 0 and demo["image"].notna().mean() > 0.9


def test_demo_modalities_carry_complementary_evidence(demo):
    leaves = {x.leaf: x for x in demo_leaves()}
    first = demo["category_paths"].map(lambda ps: leaves[ps[0][-1]])
    in_title = [leaf.keyword in title.lower() for leaf, title in zip(first, demo["title"], strict=True)]
    named = np.array([leaf.named_in_title for leaf in first])
    hits = np.array(in_title)
    assert hits[named].mean() > 0.7  # title-named leaves are visible in titles...
    assert hits[~named].mean() == 0.0  # ...image-only leaves never are


def test_generic_names_merge_subtrees(demo):
    table = label_modes_side_by_side(demo["category_paths"])
    assert {"Accessories", "Women"} <= set(table["flat label"])


def test_dataset_roundtrip_and_tamper_check(tmp_path, demo):
    prof = get_profile("smoke", label_min_count=10)
    ds = build_dataset(demo, prof)
    assert ds.table["labels"].map(len).min() >= 1
    assert sum(len(v) for v in ds.splits.values()) == len(ds.table)
    out = StageOutput(prof, DATA_STAGE, fingerprint=ds.fingerprint, run_dir=tmp_path)
    save_dataset(ds, out)
    out.finish()
    back = load_dataset(prof, tmp_path)
    assert back.fingerprint == ds.fingerprint and back.classes == ds.classes
    assert np.array_equal(back.y("test"), ds.y("test"))
    catalog = out.path / "catalog.jsonl"
    catalog.write_text(catalog.read_text().replace("Acme", "Acne"))
    with pytest.raises(ArtifactMismatch, match="changed after its run"):
        load_dataset(prof, tmp_path)


def test_too_high_min_count_is_explained(demo):
    with pytest.raises(ValueError, match="lower label_min_count"):
        build_dataset(demo, get_profile("smoke", label_min_count=10_000))


def test_exploration_summaries(demo):
    mods = modality_summary(demo)
    assert mods.loc["image", "missing"] == demo["image"].isna().sum()
    stats = text_stats(demo)
    assert stats.loc["description", "missing"] == (demo["description"] == "").sum()
    assert stats.loc["title", "vocabulary"] > 20


def test_modalities_are_decided_from_the_data_and_absent_ones_stop_their_classifier(tmp_path, demo):
    from prodlib.artifacts import ModalityAbsent, start_stage
    from prodlib.config import ProfileError

    prof = get_profile("smoke", label_min_count=10)
    assert build_dataset(demo, prof).stats["modalities"]["present"] == ["title", "description", "image"]
    few = demo.copy()
    few["description"] = [d if i % 10 == 0 else "" for i, d in enumerate(few["description"])]  # 10 % carry one
    few["image"] = None
    ds = build_dataset(few, prof)
    decided = ds.stats["modalities"]
    assert decided["present"] == ["title"] and decided["share"]["image"] == 0
    assert abs(decided["share"]["description"] - (few["description"] != "").mean()) < 1e-4
    assert "below min_modality_share 20%" in decided["why"]["description"]
    assert build_dataset(few, get_profile("smoke", label_min_count=10, min_modality_share=0.05)
                         ).stats["modalities"]["present"] == ["title", "description"]
    chosen = build_dataset(demo, get_profile("smoke", label_min_count=10, modalities="title,image"))
    assert chosen.stats["modalities"]["present"] == ["title", "image"]
    assert "left out by the profile" in chosen.stats["modalities"]["why"]["description"]
    with pytest.raises(ValueError, match=r"names \['image'\], which no product"):
        build_dataset(few, get_profile("smoke", label_min_count=10, modalities="title,image"))
    with pytest.raises(ProfileError, match="modalities"):
        get_profile("smoke", modalities="title,photo")
    with pytest.raises(ProfileError, match="min_modality_share"):
        get_profile("smoke", min_modality_share=1.5)
    out = StageOutput(prof, DATA_STAGE, fingerprint=ds.fingerprint, run_dir=tmp_path)
    save_dataset(ds, out)
    out.finish(modalities=decided)
    assert modality_summary(ds.table, decided)["used"].to_dict() == {"title": "yes", "description": "no",
                                                                    "image": "no", "all three": ""}
    why = r"03_description stops: .*left the description out .*\(\d+ of \d+ products \(\d+\.\d%\), below"
    with pytest.raises(ModalityAbsent, match=why):
        start_stage("03_description", prof, tmp_path)
    with pytest.raises(ModalityAbsent, match="04_image stops"):
        start_stage("04_image", prof, tmp_path)
    assert start_stage("02_title", prof, tmp_path)[1].fingerprint == ds.fingerprint
    with pytest.raises(ModalityAbsent, match=r"05_fusion stops: .*kept only the title \(.*below.*\): with one "
                                             r"modality there is nothing to fuse"):
        start_stage("05_fusion", prof, tmp_path, inputs=iter(["02_title", "03_description", "04_image"]))
    two = get_profile("smoke", label_min_count=10, modalities="title,image")
    out2 = StageOutput(two, DATA_STAGE, fingerprint=chosen.fingerprint, run_dir=tmp_path / "two")
    save_dataset(chosen, out2)
    out2.finish()
    _, ds2, fused = start_stage("05_fusion", two, tmp_path / "two", inputs=["02_title", "03_description", "04_image"])
    assert ds2.modalities == ["title", "image"] and fused.inputs == ["02_title", "04_image"]  # no left-out input
