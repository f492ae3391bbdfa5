"""Pretrained vectors from files, coverage, the Word2Vec fallback and the offline downloader (prodlib.embeddings)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from gensim.models import KeyedVectors

from prodlib import embeddings as E
from prodlib.text import OOV, PAD, Vocabulary

VECS = {"shirt": [0.1, 0.2, 0.3], "blue": [0.4, 0.5, 0.6], "mug": [-0.1, 0.0, 0.9], "Teapot": [1.0, 1.0, 1.0]}


@pytest.fixture(autouse=True)
def _no_cache_no_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GENSIM_DATA_DIR", str(tmp_path / "gensim-data"))
    monkeypatch.delenv("PRODLIB_GLOVE", raising=False)
    monkeypatch.delenv("PRODLIB_WORD2VEC", raising=False)


def _glove(path, header: bool):
    lines = [f"{w} {' '.join(map(str, v))}" for w, v in VECS.items()]
    path.write_text(("4 3\n" if header else "") + "\n".join(lines) + "\n")
    return path


def _kv() -> KeyedVectors:
    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(list(VECS), np.array(list(VECS.values()), dtype=np.float32))
    return kv


@pytest.mark.parametrize("kind", ["glove-no-header", "glove-header", "w2v-binary", "w2v-text", "glove-gz"])
def test_load_vectors_formats(tmp_path, kind):
    if kind == "glove-no-header":
        path = _glove(tmp_path / "vectors.txt", header=False)
    elif kind == "glove-header":
        path = _glove(tmp_path / "vectors.txt", header=True)
    elif kind == "glove-gz":
        import gzip

        path = tmp_path / "vectors.txt.gz"
        with gzip.open(path, "wt") as fh:
            fh.write(_glove(tmp_path / "plain.txt", header=False).read_text())
    else:
        binary = kind == "w2v-binary"
        path = tmp_path / ("vectors.bin" if binary else "vectors.w2v.txt")
        _kv().save_word2vec_format(str(path), binary=binary)
    kv = E.load_vectors(path)
    assert kv.vector_size == 3 and len(kv.key_to_index) == 4
    np.testing.assert_allclose(kv["blue"], VECS["blue"], rtol=1e-6)


def test_load_vectors_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        E.load_vectors(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="unknown embedding format"):
        E.load_vectors(_glove(tmp_path / "v.txt", False), fmt="fasttext")


def test_embedding_matrix_coverage_padding_and_random_rows():
    vocab = Vocabulary.fit(["blue shirt shirt", "teapot red"], max_size=10)
    matrix, covered = E.embedding_matrix(vocab, _kv(), dim=99, seed=3)
    assert matrix.shape == (len(vocab), 3)  # the file's dimension wins
    assert covered == 3  # shirt, blue, teapot (via its Capitalised form); red has no vector
    assert np.all(matrix[PAD] == 0)
    np.testing.assert_allclose(matrix[vocab.index("shirt")], VECS["shirt"])
    np.testing.assert_allclose(matrix[vocab.index("teapot")], VECS["Teapot"])
    red = matrix[vocab.index("red")]
    assert np.any(red != 0) and np.all(np.isfinite(matrix[OOV]))
    again, _ = E.embedding_matrix(vocab, _kv(), dim=3, seed=3)
    other, _ = E.embedding_matrix(vocab, _kv(), dim=3, seed=4)
    assert np.array_equal(again, matrix) and not np.array_equal(other[vocab.index("red")], red)


def test_text_embeddings_from_env_file_reports_coverage(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODLIB_GLOVE", str(_glove(tmp_path / "g.txt", header=False)))
    vocab = Vocabulary.fit(["blue shirt mug", "red cup"], max_size=10)
    matrix, info = E.text_embeddings(vocab, "glove", dim=300, seed=0, train_texts=["blue shirt mug", "red cup"])
    assert info.source == "file" and info.path_or_name.endswith("g.txt")
    assert (info.n_vocab, info.n_covered, info.dim) == (5, 3, 3)
    assert info.coverage == pytest.approx(0.6)
    assert "3-d, not the profile's 300" in info.note and matrix.shape == (7, 3)
    assert info.to_dict()["coverage"] == pytest.approx(0.6) and "60.0 %" in str(info)


def test_gensim_data_cache_is_used_without_network(tmp_path, monkeypatch):
    folder = tmp_path / "gensim-data" / "word2vec-google-news-300"
    folder.mkdir(parents=True)
    _kv().save_word2vec_format(str(folder / "word2vec-google-news-300.gz"), binary=True)
    monkeypatch.setattr(E, "from_downloader", lambda *a, **k: pytest.fail("must not download"))
    vocab = Vocabulary.fit(["mug shirt"], max_size=10)
    _, info = E.text_embeddings(vocab, "word2vec", dim=3, seed=0, train_texts=["mug shirt"])
    assert info.source == "gensim-data cache" and info.coverage == 1.0


def test_word2vec_fallback_is_seeded_and_deterministic(monkeypatch):
    monkeypatch.setattr(E, "reachable", lambda *a, **k: False)
    texts = ["red cotton shirt", "blue cotton shirt", "ceramic coffee mug", "white coffee mug"] * 5
    vocab = Vocabulary.fit(texts, max_size=50)
    m1, info = E.text_embeddings(vocab, "word2vec", dim=8, seed=7, train_texts=texts)
    m2, _ = E.text_embeddings(vocab, "word2vec", dim=8, seed=7, train_texts=texts)
    m3, _ = E.text_embeddings(vocab, "word2vec", dim=8, seed=8, train_texts=texts)
    assert info.source == "word2vec trained on training split" and info.coverage == 1.0
    assert "unreachable" in info.note and "PRODLIB_WORD2VEC" in info.note
    assert m1.shape == (len(vocab), 8) and np.array_equal(m1, m2) and not np.array_equal(m1, m3)
    assert np.all(m1[PAD] == 0)
    with pytest.raises(ValueError, match="no non-empty"):
        E.train_word2vec(["", " "], dim=4, seed=0)


def test_none_kind_and_bad_kind():
    vocab = Vocabulary.fit(["a b"], max_size=10)
    matrix, info = E.text_embeddings(vocab, "none", dim=4, seed=0, train_texts=["a b"])
    assert matrix is None and info.source == "random" and info.coverage == 0.0
    with pytest.raises(ValueError, match="glove, word2vec"):
        E.text_embeddings(vocab, "fasttext", dim=4, seed=0, train_texts=["a b"])


def test_downloader_fails_fast_when_connection_hangs(monkeypatch):
    monkeypatch.delenv("PRODLIB_OFFLINE", raising=False)

    def hang(*args, **kwargs):
        time.sleep(20)
        raise OSError("never")

    monkeypatch.setattr(socket, "create_connection", hang)
    t0 = time.perf_counter()
    kv, message = E.from_downloader("glove-wiki-gigaword-300", timeout=0.3)
    assert kv is None and "unreachable" in message
    assert time.perf_counter() - t0 < 2.0


def test_downloader_error_is_reported_not_raised(monkeypatch):
    import gensim.downloader as api

    monkeypatch.setattr(E, "reachable", lambda *a, **k: True)

    def boom(name, return_path=False):
        raise TimeoutError("timed out")

    monkeypatch.setattr(api, "load", boom)
    kv, message = E.from_downloader("glove-wiki-gigaword-300", timeout=0.1)
    assert kv is None and "TimeoutError" in message
    assert socket.getdefaulttimeout() is None


def test_offline_variable_skips_probe(monkeypatch):
    monkeypatch.setenv("PRODLIB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("must not probe"))
    from prodlib.download import reachable

    assert reachable("example.org") is False
