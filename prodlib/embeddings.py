"""Word embeddings: pretrained GloVe (titles) and Word2Vec (descriptions) as in the paper, an honest offline
fallback (Word2Vec on the training split), and which vectors were used with their coverage (notebooks 02, 03)."""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prodlib.download import reachable
from prodlib.text import OOV, PAD, Vocabulary, tokenize

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

    from prodlib.config import Profile
    from prodlib.text import TextData

__all__ = ["EMBEDDING_KINDS", "EmbeddingInfo", "PRETRAINED", "embedding_matrix", "field_embeddings", "find_cached",
           "from_downloader", "load_vectors", "text_embeddings", "train_word2vec"]

#: kind → (environment variable with a local file, gensim-data name)
PRETRAINED: dict[str, tuple[str, str]] = {"glove": ("PRODLIB_GLOVE", "glove-wiki-gigaword-300"),
                                          "word2vec": ("PRODLIB_WORD2VEC", "word2vec-google-news-300")}
EMBEDDING_KINDS = ("glove", "word2vec", "trained", "none")
_DOWNLOAD_HOST = ("raw.githubusercontent.com", 443)


@dataclass
class EmbeddingInfo:
    """Which vectors initialised an embedding layer, and how much of the vocabulary they covered."""

    source: str
    """``file``, ``gensim-data cache``, ``gensim downloader``, ``word2vec trained on training split`` or ``random``."""
    path_or_name: str
    dim: int
    coverage: float
    """Share of the vocabulary's words (padding and OOV rows excluded) that have a vector."""
    n_vocab: int
    n_covered: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.source} ({self.path_or_name}), dim {self.dim}: {self.n_covered:,} of {self.n_vocab:,} "
                f"words covered ({100 * self.coverage:.1f} %)" + (f". {self.note}" if self.note else ""))


def _sniff(path: Path) -> str:
    """``glove``, ``word2vec-text`` or ``word2vec-binary`` from the first bytes of a (possibly gzipped) file."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:  # type: ignore[operator]
        first, _, rest = fh.read(4096).partition(b"\n")
    if len(fields := first.split()) != 2 or not all(f.isdigit() for f in fields):
        return "glove"
    try:
        rest.decode("utf-8")
    except UnicodeDecodeError as exc:  # a cut multi-byte character at the very end is still text
        if exc.start < len(rest) - 4:
            return "word2vec-binary"
    return "word2vec-binary" if b"\x00" in rest else "word2vec-text"


def load_vectors(path: str | os.PathLike[str], fmt: str = "auto") -> KeyedVectors:
    """Word vectors from ``path``; ``fmt``: ``auto`` (suffix, then first bytes), ``glove`` (text, no header),
    ``word2vec-text``, ``word2vec-binary`` or ``kv`` (gensim's format); optionally gzipped."""
    from gensim.models import KeyedVectors
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"embedding file {path} does not exist; fix the path (or unset the variable)")
    name = path.name.removesuffix(".gz")
    if fmt == "auto":  # gensim-data's word2vec-google-news-300.gz is binary without a .bin suffix: sniff it
        fmt = "kv" if name.endswith((".kv", ".model")) else "word2vec-binary" if name.endswith(".bin") else _sniff(path)
    if fmt == "kv":
        return KeyedVectors.load(str(path))
    if fmt in ("word2vec-binary", "word2vec-text", "glove"):
        return KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec-binary", no_header=fmt == "glove",
                                                 unicode_errors="ignore")
    raise ValueError(f"unknown embedding format {fmt!r}; choose auto, glove, word2vec-text, word2vec-binary or kv")


def find_cached(name: str) -> Path | None:
    """The gensim-data file of ``name`` if downloaded before (``$GENSIM_DATA_DIR`` or ``~/gensim-data``)."""
    folder = Path(os.environ.get("GENSIM_DATA_DIR", Path.home() / "gensim-data")) / name
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(name)
                   and not p.name.endswith((".py", ".json", ".txt"))) if folder.is_dir() else []
    return files[0] if files else None


def from_downloader(name: str, timeout: float = 3.0) -> tuple[KeyedVectors | None, str]:
    """``(vectors, message)`` from ``gensim.downloader.load(name)``, or ``(None, why not)`` when the host is
    unreachable within ``timeout`` seconds or the download fails. Never hangs offline."""
    if not reachable(*_DOWNLOAD_HOST, timeout=timeout):
        return None, f"gensim downloader skipped: {_DOWNLOAD_HOST[0]} unreachable within {timeout:g} s (offline)"
    old = socket.getdefaulttimeout()
    try:
        import gensim.downloader as api
        socket.setdefaulttimeout(max(timeout, 30.0))  # gensim's urlopen calls have no timeout of their own
        return api.load(name), f"downloaded {name} with gensim.downloader"
    except Exception as exc:  # a failed download must fall back, not stop the notebook
        return None, f"gensim downloader failed for {name}: {type(exc).__name__}: {exc}"
    finally:
        socket.setdefaulttimeout(old)


def train_word2vec(texts: Iterable[str], dim: int, seed: int, *, epochs: int = 10, window: int = 5,
                   min_count: int = 1) -> KeyedVectors:
    """Skip-gram Word2Vec on the tokens of ``texts`` (training split only); one worker and seeded, so deterministic."""
    from gensim.models import Word2Vec
    sentences = [s for s in (tokenize(t) for t in texts) if s]
    if not sentences:
        raise ValueError("no non-empty training text to train Word2Vec on; check the text column")
    return Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count, sg=1, seed=seed,
                    workers=1, epochs=epochs).wv


def embedding_matrix(vocab: Vocabulary, kv: KeyedVectors | None, dim: int, seed: int) -> tuple[np.ndarray, int]:
    """``(matrix, n_covered)``, one row per vocabulary index: a word's vector from ``kv`` (exact, Capitalised
    or UPPER), else seeded noise with ``kv``'s spread; padding row zero; ``kv``'s own dimension wins."""
    scale = 0.1
    if kv is not None:
        dim, scale = int(kv.vector_size), float(np.std(kv.vectors[:100_000])) or 0.1
    matrix = np.random.default_rng(seed).normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[PAD] = 0.0
    covered = 0
    if kv is not None:
        for i, word in enumerate(vocab.words[OOV + 1:], start=OOV + 1):  # GoogleNews word2vec is case-sensitive
            found = next((c for c in (word, word.capitalize(), word.upper()) if c in kv.key_to_index), None)
            if found is not None:
                matrix[i] = kv[found]
                covered += 1
    return matrix, covered


def text_embeddings(vocab: Vocabulary, kind: str, dim: int, seed: int, train_texts: Sequence[str], *,
                    path: str | os.PathLike[str] | None = None, allow_download: bool = True,
                    timeout: float = 3.0) -> tuple[np.ndarray | None, EmbeddingInfo]:
    """The initial embedding matrix for ``vocab`` and its :class:`EmbeddingInfo`. ``glove``/``word2vec`` try ``path``
    or ``$PRODLIB_GLOVE``/``$PRODLIB_WORD2VEC``, the gensim-data cache, the downloader, then Word2Vec on
    ``train_texts`` (``dim``-d, what ``trained`` does at once); ``none`` gives ``(None, info)``: Keras' init."""
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {', '.join(EMBEDDING_KINDS)}")
    n_vocab = len(vocab) - 2
    if kind == "none":
        return None, EmbeddingInfo("random", "keras uniform init", dim, 0.0, n_vocab, 0,
                                   "no pretrained vectors requested (profile says none)")
    kv: KeyedVectors | None
    kv, source, where, notes = None, "", "", []
    if kind in PRETRAINED:
        env, name = PRETRAINED[kind]
        if file := path or os.environ.get(env):
            kv, source, where = load_vectors(file), "file", str(file)
        elif (cached := find_cached(name)) is not None:
            kv, source, where = load_vectors(cached), "gensim-data cache", str(cached)
        else:  # source and where are replaced below when no vectors come
            kv, message = from_downloader(name, timeout=timeout) if allow_download else (None, "downloads disabled")
            source, where = "gensim downloader", name
            notes.append(message)
        if kv is None:
            notes.append(f"no {kind} vectors: set {env} to a local file to use them")
    if kv is None:
        kv = train_word2vec(train_texts, dim, seed)
        source, where = "word2vec trained on training split", f"gensim Word2Vec sg, {dim}-d, seed {seed}"
        notes.append("vectors learned from this run's training text only: coverage is high by construction "
                     "and not comparable with the paper's pretrained coverage")
    elif int(kv.vector_size) != dim:
        notes.append(f"file vectors are {kv.vector_size}-d, not the profile's {dim}: the file's dimension is used")
    matrix, covered = embedding_matrix(vocab, kv, dim, seed)
    return matrix, EmbeddingInfo(source, where, int(matrix.shape[1]), covered / n_vocab if n_vocab else 0.0,
                                 n_vocab, covered, "; ".join(notes))


def field_embeddings(td: TextData, profile: Profile, **kwargs: Any) -> tuple[np.ndarray | None, EmbeddingInfo]:
    """:func:`text_embeddings` of a field, kind ``profile.title_embeddings``/``desc_embeddings`` (notebooks 02, 03)."""
    kind = profile.title_embeddings if td.field == "title" else profile.desc_embeddings
    return text_embeddings(td.vocab, kind, profile.embedding_dim, profile.seed, td.clean["train"], **kwargs)
