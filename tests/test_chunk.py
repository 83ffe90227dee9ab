"""Chunks fit the embedding model's token window, keep metadata and carry the title."""

from langchain_core.documents import Document

from rag_news.chunk import chunk


def _article(text: str, title: str = "Harbour works begin", key: str = "http://127.0.0.1/a") -> Document:
    return Document(page_content=text, metadata={"key": key, "title": title, "url": key,
                                                 "published": "2026-11-01", "content_hash": "x", "words": 1})


def _long_text(paragraphs: int, sep: str) -> str:
    return sep.join(
        f"Paragraph {i}: the harbour authority said dredging of berth {i} would start in spring, "
        f"that {i * 37} tonnes of silt would be removed, and that the work would be monitored closely "
        f"by divers from the coastal survey team for any damage to the old sea wall."
        for i in range(paragraphs))


def test_chunks_fit_the_window_and_carry_title_and_metadata(small_embedder, settings):
    tok, window = small_embedder.tokenizer, small_embedder.max_seq_length
    chunks = chunk([_article(_long_text(40, "\n\n"))], tok, settings, max_seq_length=window)
    assert len(chunks) > 5
    for c in chunks:
        n = len(tok.encode(c.page_content, add_special_tokens=True))
        assert n <= window, n  # no silent truncation by the model
        assert c.page_content.startswith("Harbour works begin\n\n")
        assert c.metadata["url"] == "http://127.0.0.1/a" and c.metadata["published"] == "2026-11-01"
        assert "content_hash" not in c.metadata
    ids = [c.metadata["chunk_id"] for c in chunks]
    assert len(set(ids)) == len(ids)
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    # chunks end on paragraph / sentence boundaries, not mid-word
    assert all(c.page_content.rstrip().endswith((".", "wall.")) for c in chunks)


def test_single_newline_paragraphs_still_split(small_embedder, settings):
    # trafilatura's plain text separates paragraphs with one newline; that must not become one huge chunk
    chunks = chunk([_article(_long_text(30, "\n"))], small_embedder.tokenizer, settings,
                   max_seq_length=small_embedder.max_seq_length)
    assert len(chunks) > 5


def test_ids_are_stable_and_title_heading_not_repeated(small_embedder, settings):
    text = "# Harbour works begin\n\n" + _long_text(3, "\n\n")
    a = chunk([_article(text)], small_embedder.tokenizer, settings)
    b = chunk([_article(text)], small_embedder.tokenizer, settings)
    assert [c.id for c in a] == [c.id for c in b]
    assert a[0].page_content.count("Harbour works begin") == 1


def test_very_long_title_is_cut_to_keep_room_for_text(small_embedder, settings):
    title = "Council " * 300
    chunks = chunk([_article(_long_text(10, "\n\n"), title=title)], small_embedder.tokenizer, settings,
                   max_seq_length=small_embedder.max_seq_length)
    for c in chunks:
        assert len(small_embedder.tokenizer.encode(c.page_content)) <= small_embedder.max_seq_length


def test_articles_without_a_key_are_keyed_by_their_url(small_embedder, settings):
    art = Document(page_content=_long_text(3, "\n\n"), metadata={"title": "T", "source": "http://127.0.0.1/b?utm_source=x"})
    bare = Document(page_content=_long_text(3, "\n\n"), metadata={"title": "T"})
    by_url, by_text = (chunk([a], small_embedder.tokenizer, settings) for a in (art, bare))
    assert by_url[0].metadata["key"] == "http://127.0.0.1/b"  # tracking parameter dropped
    assert by_text[0].metadata["key"].startswith("text:")
    assert by_url[0].id != by_text[0].id
