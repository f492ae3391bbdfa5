"""Word embeddings for the text classifiers: pretrained GloVe (titles) and Word2Vec (descriptions) as in
the paper, with an honest offline fallback.

Where the vectors come from, in order:

1. a local file given by ``path`` or the environment (``PRODLIB_GLOVE``, ``PRODLIB_WORD2VEC``): GloVe text
   (with or without the word2vec header line), word2vec binary (``.bin``) or text, optionally gzipped, or a
   gensim ``KeyedVectors`` file (``.kv``);
2. the gensim-data cache (``$GENSIM_DATA_DIR`` or ``~/gensim-data``): ``glove-wiki-gigaword-300``,
   ``word2vec-google-news-300``;
3. ``gensim.downloader`` — only after a short reachability check says the network allows it, so an offline
   machine fails in seconds instead of hanging;
4. otherwise Word2Vec trained with gensim on the TRAINING split's cleaned text (seeded, one worker, so the
   same data give the same vectors). The returned :class:`EmbeddingInfo` says which one was used, and how
   much of the vocabulary it covers (the paper: GloVe covered 77.5 % of the title vocabulary).

Words without a vector get a seeded random vector with the pretrained vectors' spread; the padding row is
zero. When the file's dimension differs from ``profile.embedding_dim`` the file's dimension is used (the
model is built with ``matrix.shape[1]``) and the note says so. Explained in notebooks 02 and 03.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prodlib.text import OOV, PAD, Vocabulary, tokenize

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

    from prodlib.config import Profile
    from prodlib.text import TextData

__all__ = [
    "EMBEDDING_KINDS",
    "EmbeddingInfo",
    "PRETRAINED",
    "embedding_matrix",
    "field_embeddings",
    "find_cached",
    "from_downloader",
    "load_vectors",
    "network_available",
    "text_embeddings",
    "train_word2vec",
]

#: kind → (environment variable with a local file, gensim-data name)
PRETRAINED: dict[str, tuple[str, str]] = {
    "glove": ("PRODLIB_GLOVE", "glove-wiki-gigaword-300"),
    "word2vec": ("PRODLIB_WORD2VEC", "word2vec-google-news-300"),
}
EMBEDDING_KINDS = ("glove", "word2vec", "trained", "none")
_DOWNLOAD_HOST = ("raw.githubusercontent.com", 443)


@dataclass
class EmbeddingInfo:
    """Which vectors initialised an embedding layer, and how much of the vocabulary they covered."""

    source: str
    """``file``, ``gensim-data cache``, ``gensim downloader``, ``word2vec trained on training split`` or
    ``random``."""
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


# --- reading vectors ------------------------------------------------------------------------------------

def _sniff(path: Path) -> str:
    """``glove``, ``word2vec-text`` or ``word2vec-binary`` from the first bytes of a (possibly gzipped) file."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        head = fh.read(4096)
    first, _, rest = head.partition(b"\n")
    fields = first.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return "glove"
    try:
        rest.decode("utf-8")
    except UnicodeDecodeError as exc:  # a cut multi-byte character at the very end is still text
        if exc.start < len(rest) - 4:
            return "word2vec-binary"
    return "word2vec-binary" if b"\x00" in rest else "word2vec-text"


def load_vectors(path: str | os.PathLike[str], fmt: str = "auto") -> KeyedVectors:
    """Read word vectors from ``path``.

    ``fmt``: ``auto`` (by suffix, then the first bytes), ``glove`` (text, no header), ``word2vec-text`` (text with a
    ``<count> <dim>`` header), ``word2vec-binary`` or ``kv`` (gensim's own format). Raises
    ``FileNotFoundError`` / ``ValueError`` with what to do.
    """
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"embedding file {path} does not exist; fix the path (or unset the variable)")
    name = path.name.removesuffix(".gz")
    if fmt == "auto":
        if name.endswith(".kv") or name.endswith(".model"):
            fmt = "kv"
        elif name.endswith(".bin"):
            fmt = "word2vec-binary"
        else:  # gensim-data's word2vec-google-news-300.gz is binary without a .bin suffix: sniff the bytes
            fmt = _sniff(path)
    if fmt == "kv":
        return KeyedVectors.load(str(path))
    if fmt == "word2vec-binary":
        return KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="ignore")
    if fmt in ("word2vec-text", "glove"):
        return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=fmt == "glove",
                                                 unicode_errors="ignore")
    raise ValueError(f"unknown embedding format {fmt!r}; choose auto, glove, word2vec-text, word2vec-binary or kv")


def network_available(host: tuple[str, int] = _DOWNLOAD_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds (DNS included: the probe runs in
    a daemon thread, so a hanging resolver cannot block the caller). ``PRODLIB_OFFLINE=1`` says no at once."""
    if os.environ.get("PRODLIB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(host, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def find_cached(name: str) -> Path | None:
    """The gensim-data file of ``name`` if it was downloaded before (``$GENSIM_DATA_DIR`` or ``~/gensim-data``)."""
    base = Path(os.environ.get("GENSIM_DATA_DIR", Path.home() / "gensim-data"))
    folder = base / name
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(name)
                   and not p.name.endswith((".py", ".json", ".txt")))
    return files[0] if files else None


def from_downloader(name: str, timeout: float = 3.0) -> tuple[KeyedVectors | None, str]:
    """``(vectors, message)`` from ``gensim.downloader.load(name)``, or ``(None, why not)`` when the network
    is unreachable within ``timeout`` seconds or the download fails. Never hangs offline."""
    if not network_available(timeout=timeout):
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
    """Skip-gram Word2Vec on whitespace-tokenised ``texts`` (the training split only), seeded with one worker
    so that it is deterministic. The offline stand-in for pretrained vectors."""
    from gensim.models import Word2Vec

    sentences = [tokenize(t) for t in texts]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ValueError("no non-empty training text to train Word2Vec on; check the text column")
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count, sg=1,
                     seed=seed, workers=1, epochs=epochs)
    return model.wv


# --- the embedding matrix -----------------------------------------------------------------------------------

def _lookup(kv: KeyedVectors, word: str) -> np.ndarray | None:
    for candidate in (word, word.capitalize(), word.upper()):  # word2vec GoogleNews is case-sensitive
        if candidate in kv.key_to_index:
            return kv[candidate]
    return None


def embedding_matrix(vocab: Vocabulary, kv: KeyedVectors | None, dim: int, seed: int) -> tuple[np.ndarray, int]:
    """``(matrix, n_covered)``: one row per vocabulary index; words found in ``kv`` (exact, Capitalised or
    UPPER form) take their vector, the others a seeded normal vector with the spread of ``kv``'s vectors;
    the padding row is zero. ``dim`` is ignored when ``kv`` is given (its own dimension wins)."""
    if kv is not None:
        dim = int(kv.vector_size)
        scale = float(np.std(kv.vectors[: min(len(kv.vectors), 100_000)])) or 0.1
    else:
        scale = 0.1
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[PAD] = 0.0
    covered = 0
    if kv is not None:
        for i, word in enumerate(vocab.words):
            if i <= OOV:
                continue
            vec = _lookup(kv, word)
            if vec is not None:
                matrix[i] = vec
                covered += 1
    return matrix, covered


def text_embeddings(vocab: Vocabulary, kind: str, dim: int, seed: int, train_texts: Sequence[str], *,
                    path: str | os.PathLike[str] | None = None, allow_download: bool = True,
                    timeout: float = 3.0) -> tuple[np.ndarray | None, EmbeddingInfo]:
    """The initial embedding matrix for ``vocab`` and an :class:`EmbeddingInfo` saying where it came from.

    ``kind``: ``glove`` or ``word2vec`` (pretrained, with the fallbacks listed in the module docstring),
    ``trained`` (Word2Vec on ``train_texts`` directly) or ``none`` (``(None, info)``: Keras' random init).
    ``dim`` is the profile's ``embedding_dim`` (used for trained vectors; a file's own dimension wins).
    Notebooks 02 (GloVe for titles) and 03 (Word2Vec for descriptions).
    """
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {', '.join(EMBEDDING_KINDS)}")
    n_vocab = len(vocab) - 2
    if kind == "none":
        return None, EmbeddingInfo("random", "keras uniform init", dim, 0.0, n_vocab, 0,
                                   "no pretrained vectors requested (profile says none)")
    kv: KeyedVectors | None = None
    source, where, notes = "", "", []
    if kind in PRETRAINED:
        env, name = PRETRAINED[kind]
        file = path or os.environ.get(env)
        if file:
            kv, source, where = load_vectors(file), "file", str(file)
        elif (cached := find_cached(name)) is not None:
            kv, source, where = load_vectors(cached), "gensim-data cache", str(cached)
        elif allow_download:
            kv, message = from_downloader(name, timeout=timeout)
            source, where = "gensim downloader", name
            notes.append(message)
        else:
            notes.append("downloads disabled")
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
    info = EmbeddingInfo(source=source, path_or_name=where, dim=int(matrix.shape[1]),
                         coverage=covered / n_vocab if n_vocab else 0.0, n_vocab=n_vocab, n_covered=covered,
                         note="; ".join(notes))
    return matrix, info


def field_embeddings(td: TextData, profile: Profile, **kwargs: Any) -> tuple[np.ndarray | None, EmbeddingInfo]:
    """:func:`text_embeddings` for a prepared text field: ``profile.title_embeddings`` (GloVe) for titles,
    ``profile.desc_embeddings`` (Word2Vec) for descriptions, fallback trained on ``td``'s training text.
    Notebooks 02 and 03."""
    kind = profile.title_embeddings if td.field == "title" else profile.desc_embeddings
    return text_embeddings(td.vocab, kind, profile.embedding_dim, profile.seed, td.clean["train"], **kwargs)
