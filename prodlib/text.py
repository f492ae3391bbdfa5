"""Text preprocessing: one small function per rule, the title and description pipelines built from them (the paper's
rules, plus our lower-casing and HTML removal) and a vocabulary fitted on the training split only (notebooks 02, 03)."""

from __future__ import annotations

import html
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

__all__ = ["FIELDS", "OOV", "PAD", "STOP_WORDS", "TextData", "Vocabulary", "clean_description", "clean_text",
           "clean_title", "collapse_whitespace", "drop_long_words", "drop_stop_words", "lowercase", "prepare_text",
           "remove_digits", "remove_punctuation", "split_punctuation", "strip_html", "tokenize", "trace_cleaning",
           "truncate_words"]

#: Index of the padding token in every :class:`Vocabulary` (its embedding row stays zero).
PAD = 0
#: Index of the out-of-vocabulary token (words unseen in training, or cut by ``max_size``).
OOV = 1

#: NLTK's English stop words, without apostrophes as :func:`remove_punctuation` leaves them; no download needed.
STOP_WORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you youre youve youll youd your yours yourself yourselves he him his himself she
shes her hers herself it its itself they them their theirs themselves what which who whom this that thatll these those
am is are was were be been being have has had having do does did doing a an the and but if or because as until while of
at by for with about against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other some such no nor not
only own same so than too very s t can will just don dont should shouldve now d ll m o re ve y ain aren arent couldn
couldnt didn didnt doesn doesnt hadn hadnt hasn hasnt haven havent isn isnt ma mightn mightnt mustn mustnt needn neednt
shan shant shouldn shouldnt wasn wasnt weren werent won wont wouldn wouldnt
""".split())

#: An HTML tag (also one cut off at the end) or comment; a ``<`` not followed by a letter or ``/`` is text.
HTML_TAG = re.compile(r"<!--.*?(?:-->|$)|</?[A-Za-z][^<>]*(?:>|$)", re.S)

FIELDS = ("title", "description")


def lowercase(text: str) -> str:
    """``"Blue SHIRT"`` → ``"blue shirt"``."""
    return text.lower()


def strip_html(text: str) -> str:
    """Decode entities (``&lt;b&gt;`` → ``<b>``), then replace tags by spaces; the catalog readers use it too."""
    if "&" in text:
        text = html.unescape(text)
    return HTML_TAG.sub(" ", text) if "<" in text else text


def remove_digits(text: str) -> str:
    """Replace every run of digits by a space."""
    return re.sub(r"\d+", " ", text)


def remove_punctuation(text: str) -> str:
    """Drop apostrophes (``don't`` → ``dont``) and replace other punctuation by spaces."""
    return re.sub(r"[^\w\s]|_", " ", re.sub(r"['\u2019`]", "", text))


def split_punctuation(text: str) -> str:
    """Set punctuation apart as tokens: ``"shirt,blue"`` → ``"shirt , blue"`` (titles; GloVe has ``,`` ``(`` …)."""
    return " ".join(re.findall(r"\w+|[^\w\s]", text))


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace become one space; ends are trimmed."""
    return re.sub(r"\s+", " ", text).strip()


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
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _check_field(field: str) -> None:
    if field not in FIELDS:
        raise ValueError(f"unknown text field {field!r}; choose one of {', '.join(FIELDS)}")


def _pipeline(field: str, max_words: int) -> list[tuple[str, Callable[[str], str]]]:
    """The named steps of one field's cleaning; the cleaners and :func:`trace_cleaning` all run this list."""
    def words(fn: Callable[[list[str]], list[str]]) -> Callable[[str], str]:
        return lambda s: " ".join(fn(tokenize(s)))

    _check_field(field)
    start = [("lowercase", lowercase), ("strip HTML", strip_html)]
    keep = (f"keep {max_words} words", words(lambda t: truncate_words(t, max_words)))
    if field == "title":
        return [*start, ("split punctuation", split_punctuation), ("collapse whitespace", collapse_whitespace), keep]
    # the word steps (tokenize + join) also collapse whitespace
    return [*start, ("drop words > 30 characters", words(drop_long_words)), ("remove digits", remove_digits),
            ("remove punctuation", remove_punctuation), ("drop stop words", words(drop_stop_words)), keep]


def _steps(text: Any, steps: list[tuple[str, Callable[[str], str]]]) -> list[tuple[str, str]]:
    """``(step, text after it)`` for each of ``steps`` (a :func:`_pipeline`), starting with ``("raw", text)``."""
    rows = [("raw", _as_text(text))]
    for name, step in steps:
        rows.append((name, step(rows[-1][1])))
    return rows


def clean_description(text: Any, max_words: int = 300) -> str:
    """The paper's description rule: lowercase, strip HTML, drop words over 30 characters (judged before
    punctuation goes, so a URL goes whole), digits, punctuation, stop words; at most ``max_words`` words.

    >>> clean_description("<p>The BEST shirt, 100% cotton!</p>")
    'best shirt cotton'
    """
    return _steps(text, _pipeline("description", max_words))[-1][1]


def clean_title(text: Any, max_words: int = 57) -> str:
    """The paper's title rule: lowercase, strip HTML, punctuation as tokens, stop words and digits kept.

    >>> clean_title("Men's Slim-Fit Shirt (Pack of 2)")
    "men ' s slim - fit shirt ( pack of 2 )"
    """
    return _steps(text, _pipeline("title", max_words))[-1][1]


def trace_cleaning(text: Any, field: str, max_words: int | None = None, width: int = 110) -> pd.DataFrame:
    """Each cleaning step of ``field`` on ``text``: step, text after it (cut to ``width``), words (notebooks 02, 03)."""
    rows = _steps(text, _pipeline(field, max_words or (57 if field == "title" else 300)))
    return pd.DataFrame([{"step": name, "text": _shorten(t, width), "words": len(t.split())} for name, t in rows])


def _shorten(s: str, width: int) -> str:
    s = collapse_whitespace(s)
    return s if len(s) <= width else s[: width - 1] + "…"


def clean_text(texts: Iterable[Any], field: str, max_words: int) -> list[str]:
    """:func:`clean_title` or :func:`clean_description` (``field``) of every text."""
    steps = _pipeline(field, max_words)  # what clean_title / clean_description run
    return [_steps(t, steps)[-1][1] for t in texts]


@dataclass
class Vocabulary:
    """Word ↔ index map of training texts: 0 = padding, 1 = OOV, then words by descending count (ties first-seen)."""

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
        """The ``max_size - 2`` most frequent tokens of ``texts`` (training split) seen at least ``min_count`` times."""
        if max_size < 3:
            raise ValueError(f"max_size must be at least 3 (padding, OOV and one word), got {max_size}")
        counts = Counter(w for text in texts for w in tokenize(text))
        kept = [(w, c) for w, c in counts.items() if c >= min_count]  # Counter keeps first-seen order
        kept = sorted(kept, key=lambda wc: -wc[1])[: max_size - 2]  # stable: ties stay in first-seen order
        return cls(words=[*cls.SPECIALS, *(w for w, _ in kept)], counts=dict(kept), min_count=min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index and self._index[word] > OOV  # type: ignore[index]

    def index(self, word: str) -> int:
        """The index of ``word`` (:data:`OOV` when unknown)."""
        return self._index.get(word, OOV)

    def encode(self, texts: Iterable[str], length: int) -> np.ndarray:
        """``int32`` matrix (n × ``length``) of token indices, truncated and right-padded with 0."""
        if length < 1:
            raise ValueError(f"sequence length must be at least 1, got {length}")
        texts = list(texts)
        out = np.zeros((len(texts), length), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self._index.get(w, OOV) for w in tokenize(text)[:length]]
            out[row, : len(ids)] = ids
        return out

    def oov_rate(self, texts: Iterable[str]) -> float:
        """Share of the tokens of ``texts`` that map to OOV (0 for no tokens)."""
        flags = [w not in self for text in texts for w in tokenize(text)]
        return sum(flags) / len(flags) if flags else 0.0


@dataclass
class TextData:
    """One text field of a dataset: raw and cleaned texts, training vocabulary and encoded splits."""

    field: str
    raw: dict[str, list[str]]
    clean: dict[str, list[str]]
    vocab: Vocabulary
    x: dict[str, np.ndarray]
    seq_len: int
    max_words: int

    def lengths(self, split: str = "train") -> np.ndarray:
        """Tokens of each cleaned text of ``split`` (before padding/truncation to ``seq_len``)."""
        return np.array([len(tokenize(t)) for t in self.clean[split]], dtype=int)

    def examples(self, n: int = 5, split: str = "train", width: int = 160) -> pd.DataFrame:
        """The first ``n`` texts of ``split``, raw beside cleaned (cut to ``width`` characters)."""
        return pd.DataFrame([{"raw": _shorten(r, width), "cleaned": _shorten(c, width), "raw words": len(r.split()),
                              "clean words": len(c.split())}
                             for r, c in zip(self.raw[split][:n], self.clean[split][:n], strict=True)])

    def stats(self) -> dict[str, Any]:
        """Vocabulary size, token lengths, and per split the empty texts and OOV rate."""
        lengths = self.lengths("train")
        some = len(lengths) > 0
        return {"vocab_size": len(self.vocab), "distinct_train_words": len(self.vocab.counts), "seq_len": self.seq_len,
                "median_words": float(np.median(lengths)) if some else 0.0,
                "p95_words": float(np.percentile(lengths, 95)) if some else 0.0,
                "truncated_share": float(np.mean(lengths > self.seq_len)) if some else 0.0,
                "empty_texts": {s: int(sum(1 for t in c if not t)) for s, c in self.clean.items()},
                **{f"oov_rate_{s}": self.vocab.oov_rate(texts) for s, texts in self.clean.items()}}


def prepare_text(ds: Dataset, field: str, profile: Profile, splits: Sequence[str] = ("train", "val", "test"),
                 ) -> TextData:
    """Clean ``field`` in each split, fit the vocabulary on train only, encode to fixed lengths (notebooks 02, 03)."""
    _check_field(field)
    seq_len = profile.title_len if field == "title" else profile.desc_len
    max_words = 57 if field == "title" else 300  # the paper's word limits; seq_len may cut further
    raw = {s: [_as_text(t) for t in ds.part(s)[field].tolist()] for s in splits}
    clean = {s: clean_text(texts, field, max_words) for s, texts in raw.items()}
    vocab = Vocabulary.fit(clean["train"], max_size=profile.max_vocab)
    x = {s: vocab.encode(texts, seq_len) for s, texts in clean.items()}
    return TextData(field, raw, clean, vocab, x, seq_len, max_words)
