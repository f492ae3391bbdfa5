import pytest

from prodlib.config import PROFILES, Profile, ProfileError, get_profile


def test_builtin_profiles_have_their_names():
    assert set(PROFILES) == {"smoke", "sample", "full"}
    for name, prof in PROFILES.items():
        assert prof.name == name


def test_full_profile_matches_the_paper():
    full = get_profile("full")
    assert full.n_products == 119_063
    assert full.test_size == 29_063
    assert full.label_min_count == 400
    assert full.image_size == 224
    assert full.trainable_layers == 40
    assert full.title_len == 57 and full.desc_len == 300


def test_unknown_profile_names_the_valid_choices():
    with pytest.raises(ProfileError, match="smoke, sample, full"):
        get_profile("fast")


def test_unknown_field_names_the_valid_fields():
    with pytest.raises(ProfileError, match="text_epochs"):
        get_profile("smoke", text_epoch=3)


def test_overrides_are_coerced_from_strings():
    prof = get_profile("smoke", text_epochs="2", augment="true", seeds="1,2,3", dropout="0.25")
    assert prof.text_epochs == 2
    assert prof.augment is True
    assert prof.seeds == (1, 2, 3)
    assert prof.dropout == 0.25
    assert get_profile("smoke").text_epochs != 2  # the built-in profile is untouched


def test_bad_override_type_says_what_is_expected():
    with pytest.raises(ProfileError, match="integer"):
        get_profile("smoke", text_epochs="many")
    with pytest.raises(ProfileError, match="true/false"):
        get_profile("smoke", augment="maybe")


def test_default_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PRODLIB_PROFILE", "sample")
    assert get_profile().name == "sample"
    monkeypatch.delenv("PRODLIB_PROFILE")
    assert get_profile().name == "smoke"


def test_profile_serialises_to_plain_json():
    import json

    data = get_profile("sample").to_dict()
    assert json.loads(json.dumps(data))["kim_windows"] == [3, 4, 5]
    assert isinstance(get_profile(PROFILES["smoke"]), Profile)


def test_profile_from_notebook_parameters():
    from prodlib.config import profile_from_params

    assert profile_from_params("smoke", '{"text_epochs": 3}').text_epochs == 3
    assert profile_from_params("smoke", {"text_epochs": 4}).text_epochs == 4
    assert profile_from_params("smoke", None).name == "smoke"
    with pytest.raises(ProfileError, match="not a JSON object"):
        profile_from_params("smoke", "{text_epochs: 3")
    with pytest.raises(ProfileError, match="mapping"):
        profile_from_params("smoke", ["text_epochs"])


@pytest.mark.parametrize("overrides, field", [
    ({"text_epochs": "-3"}, "text_epochs"), ({"test_size": "1.0"}, "test_size"), ({"val_size": 0}, "val_size"),
    ({"threshold": "2"}, "threshold"), ({"seeds": "a,b"}, "seeds"), ({"fusion_units": "1,2,3,4"}, "fusion_units"),
    ({"dropout": 1}, "dropout"), ({"image_backbone": "vgg"}, "image_backbone"), ({"kim_windows": ""}, "kim_windows"),
    ({"n_products": 0}, "n_products"), ({"learning_rate": "-1e-3"}, "learning_rate"),
    ({"fusion_folds": 1}, "fusion_folds"), ({"fusion_fit_on": "train"}, "fusion_fit_on"),
    ({"oof_folds": 1}, "oof_folds"),
])
def test_out_of_range_values_are_refused_naming_what_is_allowed(overrides, field):
    with pytest.raises(ProfileError, match=rf"{field}=.*\(allowed: "):
        get_profile("smoke", **overrides)


@pytest.mark.parametrize("field", ["name", "description", "extra"])
def test_fields_fixed_by_the_profile_cannot_be_overridden(field):
    # --set name=full used to end in a TypeError (get_profile's own name argument)
    with pytest.raises(ProfileError, match="cannot be overridden"):
        get_profile("smoke", **{field: "full"})


def test_sizes_are_counts_or_fractions_never_silently_one_product():
    assert get_profile("smoke", test_size="3").test_size == 3
    assert get_profile("smoke", test_size="0.3").test_size == 0.3
    with pytest.raises(ProfileError, match="integer"):
        get_profile("smoke", text_epochs=2.5)


def test_builtin_profiles_are_valid():
    from prodlib.config import validate_profile

    for prof in PROFILES.values():
        assert validate_profile(prof) is prof


def test_cli_bad_values_exit_2_before_anything_runs(tmp_path, capsys):
    from prodlib.__main__ import main

    for pair in ["text_epochs=-3", "name=full", "test_size=1.0", "threshold=2", "seeds=a,b", "fusion_units=1,2,3,4",
                 "extra=1"]:
        assert main(["run", "--profile", "smoke", "--no-book", "--run-dir", str(tmp_path), "--set", pair]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, pair
    assert main(["run", "--run-dir", str(tmp_path), "--run-name", "../x"]) == 2
    assert not any(tmp_path.iterdir())
