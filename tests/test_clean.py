"""Cleaning real HTML: the article stays, the page furniture goes, metadata is kept."""

from langchain_core.documents import Document

from rag_news.clean import clean, extract
from rag_news.sample_site import SITE_DIR

FURNITURE = ["We use cookies", "Accept all cookies", "Most read", "Subscribe today", "All rights reserved",
             "Privacy policy", "Get the Ledger in your inbox", "Advertisement", "Related stories",
             "Share on", "Comments are closed"]


def _page(path: str, url: str = "http://127.0.0.1:1/x.html") -> Document:
    html = (SITE_DIR / path).read_text(encoding="utf-8")
    return Document(page_content=html, metadata={"source": url, "final_url": url, "status": 200})


def test_article_kept_and_boilerplate_gone():
    doc = clean(_page("2026/11/council-budget-vote.html"))
    text = doc.page_content
    assert "approved its 2027 budget late on Thursday by 23 votes to 14" in text
    assert "Property tax rises by 2.9 percent" in text
    for junk in FURNITURE:
        assert junk not in text, junk
    assert "\n\n" in text  # paragraphs stay separate (the chunker splits on them)


def test_metadata_is_kept():
    m = clean(_page("2026/11/tidal-plant-opens.html")).metadata
    assert m["title"] == "Larkspur Bay tidal power plant opens after six years of construction"
    assert m["author"] == "Mara Ellison"
    assert m["published"] == "2026-11-18"
    assert m["site_name"] == "The Larkspur Ledger"
    assert m["language"] == "en"
    assert m["canonical_url"].endswith("/2026/11/tidal-plant-opens.html")
    assert m["extraction"] == "trafilatura"
    assert len(m["content_hash"]) == 64 and m["words"] > 150


def test_no_hard_wrapping_or_broken_hyphenated_words():
    long_para = ("The state-of-the-art, well-known, much-discussed harbour-side redevelopment " * 12).strip()
    html = (f"<html><head><title>T</title></head><body><article><h1>T</h1><p>{long_para}</p>"
            f"<p>{long_para}</p></article></body></html>")
    text, _ = extract(html)
    assert long_para in text  # one line, hyphenated words intact


def test_fallback_when_extraction_finds_nothing_and_none_for_empty_pages():
    html = ("<html><head><title>Notice</title></head><body><div><span>Water supply interrupted on Mill "
            "Lane until Friday noon.</span></div><script>var x = 'not text';</script></body></html>")
    text, info = extract(html)
    assert "Water supply interrupted on Mill Lane" in text and "not text" not in text
    assert info["extraction"] in {"fallback", "trafilatura"}
    empty = Document(page_content="<html><body><nav>Home</nav></body></html>",
                     metadata={"source": "http://127.0.0.1:1/e"})
    assert clean(empty) is None


def test_identical_text_has_identical_hash_across_layouts():
    a = clean(_page("2026/11/hospital-wing.html"))
    html = (SITE_DIR / "2026/11/hospital-wing.html").read_text().replace("Most read", "Popular now")
    b = clean(Document(page_content=html, metadata={"source": "http://127.0.0.1:1/other"}))
    assert a.metadata["content_hash"] == b.metadata["content_hash"]
