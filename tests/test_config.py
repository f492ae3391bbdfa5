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
