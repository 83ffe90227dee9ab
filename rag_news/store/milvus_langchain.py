"""The Milvus backend's chunks as a LangChain vector store (``langchain_milvus.Milvus``), for reading:
``similarity_search`` (dense), and Milvus's own dense + BM25 hybrid search
(``similarity_search(q, k, ranker_type="rrf")``). Write through the index (``rag_news.index``), not
through this view: chunks added here have no article record, and the index's searches skip them."""

from __future__ import annotations


def langchain_view(store):
    """``langchain_milvus.Milvus`` over ``store``'s chunk collection (same connection URI)."""
    from langchain_milvus import BM25BuiltInFunction, Milvus

    return Milvus(embedding_function=store.embeddings, collection_name=store.chunks_col,
                  connection_args={"uri": store.uri}, primary_field="chunk_id", text_field="text",
                  vector_field=["dense", "sparse"], consistency_level="Strong",
                  search_params=[{"metric_type": "IP", "params": {}}, {"metric_type": "BM25", "params": {}}],
                  builtin_function=BM25BuiltInFunction(input_field_names="text", output_field_names="sparse"))
