"""Text preprocessing for the title and description classifiers: each rule a small visible function,
the two pipelines built from them, and a vocabulary fitted on the training split only.

The paper's rules (PAPER.md, *Preprocessing*): descriptions lose words longer than 30 characters, stop
words, digits, punctuation and excess whitespace and keep at most 300 words; titles keep their stop words
and at most 57 words. Lower-casing, HTML removal and the vocabulary rules are the reproduction's defaults.
Explained in notebook 02 (*Title classifier*) and notebook 03 (*Description classifier*).
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from prodlib.config import Profile
    from prodlib.dataset import Dataset

__all__ = [
    "FIELDS",
    "OOV",
    "PAD",
    "STOP_WORDS",
    "TextData",
    "Vocabulary",
    "clean_description",
    "clean_text",
    "clean_title",
    "collapse_whitespace",
    "drop_long_words",
    "drop_stop_words",
    "lowercase",
    "prepare_text",
    "remove_digits",
    "remove_punctuation",
    "split_punctuation",
    "strip_html",
    "tokenize",
    "trace_cleaning",
    "truncate_words",
]

#: Index of the padding token in every :class:`Vocabulary` (its embedding row stays zero).
PAD = 0
#: Index of the out-of-vocabulary token (words never seen in training, or cut by ``max_size``).
OOV = 1

#: A fixed English stop-word list (the classic NLTK English list, written without apostrophes because
#: :func:`remove_punctuation` joins contractions: ``don't`` → ``dont``). Fixed in the module so a run does
#: not depend on a downloaded corpus.
STOP_WORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you youre youve youll youd your yours yourself yourselves he him his
himself she shes her hers herself it its itself they them their theirs themselves what which who whom this
that thatll these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where why how
all any both each few more most other some such no nor not only own same so than too very s t can will just
don dont should shouldve now d ll m o re ve y ain aren arent couldn couldnt didn didnt doesn doesnt hadn
hadnt hasn hasnt haven havent isn isnt ma mightn mightnt mustn mustnt needn neednt shan shant shouldn
shouldnt wasn wasnt weren werent won wont wouldn wouldnt
""".split())

_TAG = re.compile(r"<[^>]*>")
_DIGITS = re.compile(r"\d+")
_APOSTROPHE = re.compile(r"['\u2019`]")
_PUNCT = re.compile(r"[^\w\s]|_")
_SPLIT_PUNCT = re.compile(r"\w+|[^\w\s]")
_SPACE = re.compile(r"\s+")

FIELDS = ("title", "description")


# --- the rules, one function each -----------------------------------------------------------------------

def lowercase(text: str) -> str:
    """``"Blue SHIRT"`` → ``"blue shirt"``."""
    return text.lower()


def strip_html(text: str) -> str:
    """Remove tags (``<br/>``, ``<p class=...>``) and decode entities (``&amp;`` → ``&``); tags become spaces."""
    return html.unescape(_TAG.sub(" ", text))


def remove_digits(text: str) -> str:
    """Replace every run of digits by a space: ``"pack of 2"`` → ``"pack of  "``."""
    return _DIGITS.sub(" ", text)


def remove_punctuation(text: str) -> str:
    """Drop apostrophes inside words (``don't`` → ``dont``) and replace other punctuation by spaces."""
    return _PUNCT.sub(" ", _APOSTROPHE.sub("", text))


def split_punctuation(text: str) -> str:
    """Set punctuation marks apart as their own tokens: ``"shirt,blue"`` → ``"shirt , blue"`` (titles; GloVe
    has vectors for ``,``, ``(``, ``-`` …)."""
    return " ".join(_SPLIT_PUNCT.findall(text))


def collapse_whitespace(text: str) -> str:
    """Runs of spaces, tabs and newlines become one space; ends are trimmed."""
    return _SPACE.sub(" ", text).strip()


def tokenize(text: str) -> list[str]:
    """Split a cleaned text on whitespace."""
    return text.split()


def drop_long_words(tokens: Iterable[str], max_chars: int = 30) -> list[str]:
    """Drop tokens longer than ``max_chars`` characters (URLs, glued words, hashes)."""
    return [t for t in tokens if len(t) <= max_chars]


def drop_stop_words(tokens: Iterable[str], stop_words: frozenset[str] = STOP_WORDS) -> list[str]:
    """Drop tokens found in ``stop_words`` (:data:`STOP_WORDS` by default)."""
    return [t for t in tokens if t not in stop_words]


def truncate_words(tokens: Sequence[str], max_words: int) -> list[str]:
    """Keep the first ``max_words`` tokens."""
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    return list(tokens[:max_words])


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


# --- the two pipelines ------------------------------------------------------------------------------------

def _pipeline(field: str, max_words: int) -> list[tuple[str, Callable[[str], str]]]:
    """The named steps of one field's cleaning, in order; :func:`clean_description`, :func:`clean_title` and
    :func:`trace_cleaning` all run this list, so a trace shows exactly what the cleaner does."""
    def words(fn: Callable[[list[str]], list[str]]) -> Callable[[str], str]:
        return lambda s: " ".join(fn(tokenize(s)))

    if field == "description":
        return [
            ("lowercase", lowercase),
            ("strip HTML", strip_html),
            ("drop words > 30 characters", words(drop_long_words)),
            ("remove digits", remove_digits),
            ("remove punctuation", remove_punctuation),
            ("drop stop words", words(drop_stop_words)),  # tokenize + join also collapses whitespace
            (f"keep {max_words} words", words(lambda t: truncate_words(t, max_words))),
        ]
    if field == "title":
        return [
            ("lowercase", lowercase),
            ("strip HTML", strip_html),
            ("split punctuation", split_punctuation),
            ("collapse whitespace", collapse_whitespace),
            (f"keep {max_words} words", words(lambda t: truncate_words(t, max_words))),
        ]
    raise ValueError(f"unknown text field {field!r}; choose one of {', '.join(FIELDS)}")


def _run(text: Any, field: str, max_words: int) -> str:
    s = _as_text(text)
    for _, step in _pipeline(field, max_words):
        s = step(s)
    return s


def clean_description(text: Any, max_words: int = 300) -> str:
    """The paper's description rule: lowercase, strip HTML, drop words over 30 characters, digits,
    punctuation, stop words and excess whitespace; keep at most ``max_words`` words.

    Long words are judged on whitespace-separated tokens *before* punctuation is removed, so a URL is one
    long word and goes as a whole.

    >>> clean_description("<p>The BEST shirt, 100% cotton!</p>")
    'best shirt cotton'
    """
    return _run(text, "description", max_words)


def clean_title(text: Any, max_words: int = 57) -> str:
    """The paper's title rule: lowercase, strip HTML, punctuation set apart as tokens, stop words and digits
    kept; at most ``max_words`` tokens.

    >>> clean_title("Men's Slim-Fit Shirt (Pack of 2)")
    "men ' s slim - fit shirt ( pack of 2 )"
    """
    return _run(text, "title", max_words)


def trace_cleaning(text: Any, field: str, max_words: int | None = None, width: int = 110) -> pd.DataFrame:
    """Every step of ``field``'s cleaning applied to one ``text``: the step, the text after it (shortened to
    ``width`` characters) and its word count (notebooks 02 and 03)."""
    max_words = max_words or (57 if field == "title" else 300)
    s = _as_text(text)
    rows = [("raw", s)]
    for name, step in _pipeline(field, max_words):
        s = step(s)
        rows.append((name, s))
    return pd.DataFrame([{"step": name, "text": _shorten(t, width), "words": len(t.split())} for name, t in rows])


def _shorten(s: str, width: int) -> str:
    s = collapse_whitespace(s)
    return s if len(s) <= width else s[: width - 1] + "…"


def clean_text(texts: Iterable[Any], field: str, max_words: int) -> list[str]:
    """Apply :func:`clean_title` or :func:`clean_description` (``field``) to every text."""
    if field not in FIELDS:
        raise ValueError(f"unknown text field {field!r}; choose one of {', '.join(FIELDS)}")
    fn = clean_title if field == "title" else clean_description
    return [fn(t, max_words) for t in texts]


# --- vocabulary -------------------------------------------------------------------------------------------

@dataclass
class Vocabulary:
    """Word ↔ index map fitted on training texts only: index 0 = padding, 1 = out-of-vocabulary, then words
    by descending training count (ties in first-seen order)."""

    words: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    min_count: int = 1

    SPECIALS = ("<pad>", "<oov>")

    def __post_init__(self) -> None:
        if list(self.words[:2]) != list(self.SPECIALS):
            raise ValueError(f"a vocabulary's first two entries must be {self.SPECIALS}")
        self._index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def fit(cls, texts: Iterable[str], max_size: int, min_count: int = 1) -> Vocabulary:
        """Count whitespace tokens of ``texts`` (the TRAINING split) and keep the ``max_size - 2`` most
        frequent with at least ``min_count`` occurrences; ``max_size`` includes the two reserved rows."""
        if max_size < 3:
            raise ValueError(f"max_size must be at least 3 (padding, OOV and one word), got {max_size}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text))
        kept = [(w, c) for w, c in counts.items() if c >= min_count]  # Counter keeps first-seen order
        kept.sort(key=lambda wc: -wc[1])  # stable: ties stay in first-seen order
        kept = kept[: max_size - 2]
        return cls(words=[*cls.SPECIALS, *(w for w, _ in kept)], counts=dict(kept), min_count=min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index and self._index[word] > OOV  # type: ignore[index]

    def index(self, word: str) -> int:
        """The index of ``word`` (:data:`OOV` when unknown)."""
        return self._index.get(word, OOV)

    def encode(self, texts: Iterable[str], length: int) -> np.ndarray:
        """``int32`` matrix (n × ``length``): token indices, truncated at ``length`` and right-padded with 0."""
        if length < 1:
            raise ValueError(f"sequence length must be at least 1, got {length}")
        texts = list(texts)
        out = np.zeros((len(texts), length), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self._index.get(w, OOV) for w in tokenize(text)[:length]]
            out[row, : len(ids)] = ids
        return out

    def oov_rate(self, texts: Iterable[str]) -> float:
        """Share of tokens of ``texts`` that map to OOV (0 for no tokens)."""
        total = oov = 0
        for text in texts:
            for w in tokenize(text):
                total += 1
                oov += w not in self
        return oov / total if total else 0.0

    def to_json(self) -> str:
        return json.dumps({"words": self.words, "counts": self.counts, "min_count": self.min_count})

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        data = json.loads(text)
        return cls(words=data["words"], counts=data["counts"], min_count=data["min_count"])


# --- one call per notebook ----------------------------------------------------------------------------------

@dataclass
class TextData:
    """One text field of a dataset, cleaned, with its training vocabulary and encoded splits."""

    field: str
    raw: dict[str, list[str]]
    clean: dict[str, list[str]]
    vocab: Vocabulary
    x: dict[str, np.ndarray]
    seq_len: int
    max_words: int

    def lengths(self, split: str = "train") -> np.ndarray:
        """Number of tokens of each cleaned text of ``split`` (before padding/truncation to ``seq_len``)."""
        return np.array([len(tokenize(t)) for t in self.clean[split]], dtype=int)

    def examples(self, n: int = 5, split: str = "train", width: int = 160) -> pd.DataFrame:
        """The first ``n`` texts of ``split``: raw (shortened to ``width`` characters) beside cleaned."""
        rows = [{"raw": _shorten(r, width), "cleaned": _shorten(c, width), "raw words": len(r.split()),
                 "clean words": len(c.split())}
                for r, c in zip(self.raw[split][:n], self.clean[split][:n], strict=True)]
        return pd.DataFrame(rows)

    def stats(self) -> dict[str, Any]:
        """Vocabulary size, token lengths and OOV rates per split (how much each split's text the training
        vocabulary covers)."""
        lengths = self.lengths("train")
        out: dict[str, Any] = {
            "vocab_size": len(self.vocab),
            "distinct_train_words": len(self.vocab.counts),
            "seq_len": self.seq_len,
            "median_words": float(np.median(lengths)) if len(lengths) else 0.0,
            "p95_words": float(np.percentile(lengths, 95)) if len(lengths) else 0.0,
            "truncated_share": float(np.mean(lengths > self.seq_len)) if len(lengths) else 0.0,
            "empty_texts": {s: int(sum(1 for t in c if not t)) for s, c in self.clean.items()},
        }
        for split, texts in self.clean.items():
            out[f"oov_rate_{split}"] = self.vocab.oov_rate(texts)
        return out


def prepare_text(ds: Dataset, field: str, profile: Profile, splits: Sequence[str] = ("train", "val", "test"),
                 ) -> TextData:
    """Clean ``field`` (``title`` or ``description``) of every split, fit the vocabulary on train only and
    encode all splits to ``profile.title_len`` / ``profile.desc_len`` indices (notebooks 02 and 03)."""
    if field not in FIELDS:
        raise ValueError(f"unknown text field {field!r}; choose one of {', '.join(FIELDS)}")
    seq_len = profile.title_len if field == "title" else profile.desc_len
    max_words = 57 if field == "title" else 300  # the paper's word limits; seq_len may cut further
    raw = {s: [_as_text(t) for t in ds.part(s)[field].tolist()] for s in splits}
    clean = {s: clean_text(texts, field, max_words) for s, texts in raw.items()}
    vocab = Vocabulary.fit(clean["train"], max_size=profile.max_vocab)
    x = {s: vocab.encode(texts, seq_len) for s, texts in clean.items()}
    return TextData(field=field, raw=raw, clean=clean, vocab=vocab, x=x, seq_len=seq_len, max_words=max_words)
