"""Text preprocessing rules, the two pipelines and the training-only vocabulary (prodlib.text)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodlib import text as T
from prodlib.config import get_profile
from prodlib.dataset import Dataset


def test_lowercase_and_whitespace():
    assert T.lowercase("Blue SHIRT") == "blue shirt"
    assert T.collapse_whitespace("  a \t b\n\nc  ") == "a b c"


def test_strip_html_removes_tags_and_decodes_entities():
    assert T.collapse_whitespace(T.strip_html("<p class='x'>Tom &amp; Jerry</p><br/>mug")) == "Tom & Jerry mug"


def test_remove_digits_and_punctuation():
    assert T.collapse_whitespace(T.remove_digits("pack of 2, 100ml")) == "pack of , ml"
    assert T.collapse_whitespace(T.remove_punctuation("don't stop: cotton-rich!")) == "dont stop cotton rich"
    assert T.remove_punctuation("snake_case") == "snake case"


def test_split_punctuation_keeps_marks_as_tokens():
    assert T.split_punctuation("slim-fit (blue),2") == "slim - fit ( blue ) , 2"


def test_drop_long_words_at_30_characters():
    thirty, long = "a" * 30, "b" * 31
    assert T.drop_long_words(["ok", thirty, long]) == ["ok", thirty]
    assert T.drop_long_words(["abcd", "ab"], max_chars=3) == ["ab"]


def test_stop_words_and_truncation():
    assert T.drop_stop_words(["the", "shirt", "is", "dont", "red"]) == ["shirt", "red"]
    assert T.truncate_words(["a", "b", "c"], 2) == ["a", "b"]
    with pytest.raises(ValueError, match="max_words"):
        T.truncate_words(["a"], 0)


def test_clean_description_applies_every_rule():
    raw = ("<p>The BEST Shirt, 100% cotton!</p> Visit http://www.example.com/a-very-long-url-indeed-xyz "
           "for   MORE shirts")
    assert T.clean_description(raw) == "best shirt cotton visit shirts"
    words = " ".join(f"w{chr(97 + i % 26)}x" for i in range(400))
    assert len(T.clean_description(words).split()) == 300
    assert len(T.clean_description(words, max_words=7).split()) == 7
    assert T.clean_description(None) == "" and T.clean_description(float("nan")) == ""


def test_clean_title_keeps_stop_words_and_digits():
    assert T.clean_title("The Men's Shirt (Pack of 2)") == "the men ' s shirt ( pack of 2 )"
    assert len(T.clean_title(" ".join(["word"] * 80)).split()) == 57
    assert T.clean_text(["A B"], "title", 1) == ["a"]
    with pytest.raises(ValueError, match="title, description"):
        T.clean_text(["x"], "body", 5)


def test_vocabulary_reserved_rows_order_and_limits():
    vocab = T.Vocabulary.fit(["b a a", "c a b", "d"], max_size=5)
    assert vocab.words == ["<pad>", "<oov>", "a", "b", "c"]  # by count, ties first-seen; d cut by max_size
    assert vocab.index("a") == 2 and vocab.index("d") == T.OOV and vocab.index("zzz") == T.OOV
    assert "a" in vocab and "<pad>" not in vocab and "d" not in vocab
    assert T.Vocabulary.fit(["x x y"], max_size=10, min_count=2).words == ["<pad>", "<oov>", "x"]
    with pytest.raises(ValueError, match="max_size"):
        T.Vocabulary.fit(["a"], max_size=2)


def test_encode_pads_and_truncates_to_int32():
    vocab = T.Vocabulary.fit(["a b c"], max_size=10)
    x = vocab.encode(["a b", "c b a q c", ""], length=4)
    assert x.dtype == np.int32 and x.shape == (3, 4)
    assert x.tolist() == [[2, 3, 0, 0], [4, 3, 2, 1], [0, 0, 0, 0]]
    assert vocab.oov_rate(["a q", "q"]) == pytest.approx(2 / 3)


def _tiny_dataset() -> Dataset:
    rows = [("p1", "Red Shirt", "<b>Cotton</b> shirt"), ("p2", "Blue Shirt", "A blue shirt."),
            ("p3", "Green Mug", "Ceramic mug"), ("p4", "Teapot uniqueword", "Teapot uniqueword")]
    table = pd.DataFrame(rows, columns=["id", "title", "description"]).set_index("id", drop=False)
    table["category_paths"] = [[["a"]]] * 4
    table["labels"] = [["a"]] * 4
    return Dataset(table=table, classes=["a"], splits={"train": ["p1", "p2"], "val": ["p3"], "test": ["p4"]},
                   profile="smoke")


def test_prepare_text_fits_vocabulary_on_train_only():
    profile = get_profile("smoke", title_len=5, desc_len=6)
    td = T.prepare_text(_tiny_dataset(), "title", profile)
    assert "uniqueword" not in td.vocab and "teapot" not in td.vocab  # test-only words map to OOV
    assert td.x["test"].tolist() == [[T.OOV, T.OOV, 0, 0, 0]]
    assert td.x["train"].shape == (2, 5) and td.vocab.index("shirt") == 2  # the most frequent train word
    desc = T.prepare_text(_tiny_dataset(), "description", profile)
    assert desc.clean["train"] == ["cotton shirt", "blue shirt"] and desc.x["val"].shape == (1, 6)
    stats = desc.stats()
    assert stats["oov_rate_train"] == 0.0 and stats["oov_rate_test"] == 1.0
    assert list(td.examples(1).columns) == ["raw", "cleaned", "raw words", "clean words"]


@pytest.mark.parametrize("field", ["title", "description"])
def test_trace_ends_with_the_cleaned_text(field):
    raw = "<b>The Blue</b> Shirt-Dress, 2 pcs & http://example.com/a/very/long/path/that/never/ends"
    trace = T.trace_cleaning(raw, field, width=500)
    cleaned = T.clean_title(raw) if field == "title" else T.clean_description(raw)
    assert trace["step"].iloc[0] == "raw" and trace["text"].iloc[-1] == cleaned
    assert trace["words"].iloc[-1] == len(cleaned.split())
    assert len(trace) == (6 if field == "title" else 8)
