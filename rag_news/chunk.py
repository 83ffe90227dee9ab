"""Chunk: split articles into passages that fit the embedding model's window.

Entry point: :func:`chunk`. Lengths are measured in the embedding model's own tokens (a
langchain-text-splitters ``RecursiveCharacterTextSplitter`` built on the Hugging Face tokenizer), splitting
on paragraphs, then lines, then sentences, then words. Each chunk is prefixed with its article's title (so
a passage that never names its subject still retrieves), keeps the article's metadata and gets a stable id.
The title is cut so that prefix + chunk always fit the model's ``max_seq_length``: no silent truncation.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from .clean import content_hash
from .settings import Settings
from .urls import normalize_url

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]
_TITLE_BUDGET = 48  # tokens of title kept in the prefix


def chunk_id(article_key: str, index: int, text: str) -> str:
    h = hashlib.sha256(f"{article_key}\x00{index}\x00{text}".encode("utf-8")).hexdigest()
    return h[:32]


def _token_len(tokenizer):
    def n(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return n


def _truncate(tokenizer, text: str, max_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    return tokenizer.decode(ids[:max_tokens]).strip() + "…"


def _drop_title_heading(text: str, title: str) -> str:
    """The title is already the prefix: drop a leading Markdown heading that repeats it."""
    first, _, rest = text.partition("\n")
    if first.startswith("#") and " ".join(first.lstrip("#").split()).lower() == " ".join(title.split()).lower():
        return rest.lstrip("\n")
    return text


def _article_key(article: Document) -> str:
    url = article.metadata.get("final_url") or article.metadata.get("source") or article.metadata.get("url")
    return normalize_url(url) if url else "text:" + content_hash(article.page_content)


def chunk(articles: Iterable[Document], tokenizer, settings: Settings | None = None,
          max_seq_length: int = 384) -> list[Document]:
    """Split article ``Document``s into chunk ``Document``s (``page_content`` = title prefix + passage).

    ``tokenizer`` is the embedding model's tokenizer; ``max_seq_length`` its window (special tokens
    included). An article's identity in the index is its metadata ``key`` (the pipeline sets it); without
    one, its normalised URL (``final_url``, else ``source``), else a hash of its text.
    """
    settings = settings or Settings()
    n_tokens = _token_len(tokenizer)
    specials = 2  # [CLS]/<s> and [SEP]/</s>
    out: list[Document] = []
    for article in articles:
        title = _truncate(tokenizer, (article.metadata.get("title") or "").strip(), _TITLE_BUDGET)
        prefix = f"{title}\n\n" if title else ""
        room = max_seq_length - specials - n_tokens(prefix) - 2
        size = max(16, min(settings.chunk_tokens, room))
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=size, chunk_overlap=min(settings.chunk_overlap, size // 4), length_function=n_tokens,
            separators=SEPARATORS, keep_separator="end", strip_whitespace=True,
        )
        key = article.metadata.get("key") or _article_key(article)
        body = _drop_title_heading(article.page_content, article.metadata.get("title") or "")
        pieces = [p for p in splitter.split_text(body) if p.strip()]
        for i, piece in enumerate(pieces):
            text = prefix + piece
            meta = {k: v for k, v in article.metadata.items() if k not in ("content_hash", "words")}
            cid = chunk_id(key, i, text)
            meta.update(key=key, chunk_id=cid, chunk_index=i, chunks_in_article=len(pieces), tokens=n_tokens(text))
            out.append(Document(page_content=text, metadata=meta, id=cid))
    return out
