"""The sample site helper: served on 127.0.0.1, an editable copy, stopped cleanly."""

import urllib.error
import urllib.request

import pytest

from rag_news.sample_site import SITE_DIR, SampleSite


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode("utf-8")


def test_copy_is_served_editable_and_removed_on_stop():
    site = SampleSite(copy=True).start()
    try:
        assert site.base_url.startswith("http://127.0.0.1:")
        urls = site.urls()
        assert len(urls) == len([ln for ln in (SITE_DIR / "urls.txt").read_text().splitlines()
                                 if ln.strip() and not ln.startswith("#")])
        path = site.page_path(urls[0])
        assert path.read_text(encoding="utf-8") == (SITE_DIR / path.relative_to(site.directory)).read_text(encoding="utf-8")
        path.write_text("<html><body><p>edited copy</p></body></html>", encoding="utf-8")
        assert "edited copy" in _get(urls[0])
        assert "edited copy" not in (SITE_DIR / path.relative_to(site.directory)).read_text(encoding="utf-8")
        with pytest.raises(ValueError):
            site.page_path("http://example.com/x.html")
        directory, base = site.directory, site.base_url
    finally:
        site.stop()
    assert not directory.exists()
    with pytest.raises(urllib.error.URLError):
        _get(base)
    with pytest.raises(RuntimeError):
        site.urls()
