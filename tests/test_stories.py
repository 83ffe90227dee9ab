"""Stories across outlets (rag_news.stories) on both backends: near-copies found through the MinHash LSH
bands kept in the store, write-ups through lead vectors in the date window confirmed by shared names, kept
across reopening, a removed article leaving its story, restory, listing; and the pipeline assigning stories
at index time (real pages served on 127.0.0.1, real cleaning, real MiniLM). Texts from the dev syndication
set (benchmarks/stories)."""

import gzip
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag_news import stories
from rag_news.stories import StoryParams, assign, assign_many, list_stories, outlet, restory, stories_of

from test_store_backends import backend, stage  # noqa: F401 - the two-backend fixture

SET = Path(__file__).resolve().parent.parent / "benchmarks" / "stories" / "syndication_dev.jsonl.gz"


@pytest.fixture(scope="module")
def dev():
    rows = [json.loads(x) for x in gzip.open(SET, "rt", encoding="utf-8")]
    return {r["id"]: r for r in rows if "id" in r}


def _rec(a):
    return {"key": a["id"], "url": a["url"], "title": a["title"], "published": a["published"],
            "first_seen": a["published"], "site_name": a["site_name"]}


def test_outlet_is_the_site_name_else_the_host():
    assert outlet({"site_name": "The Larkspur Ledger", "url": "https://x.example/a"}) == "The Larkspur Ledger"
    assert outlet({"url": "https://www.billboard.com/articles/1"}) == "billboard.com"


def test_copies_join_across_passes_and_reopening_and_a_removed_article_leaves_its_story(backend, dev):  # noqa: F811
    s, open_ = backend
    idx = open_()
    original, copy1 = dev["9cb8224b660f"], dev["9cb8224b660f-c0"]
    other = dev["042bb7b5feda"]  # another story (games)
    for a in (original, other):
        stage(idx, idx.embeddings, s, a["id"], a["title"], a["text"], a["published"])
    assign_many(idx, [(_rec(original), original["text"]), (_rec(other), other["text"])])
    idx.commit()
    idx.close()
    idx = open_()  # a later pass, another process: the bands are read from the store
    stage(idx, idx.embeddings, s, copy1["id"], copy1["title"], copy1["text"], copy1["published"])
    e = assign(idx, _rec(copy1), copy1["text"])
    assert e["joined"] == "copy" and e["story"] == idx.story_entries([original["id"]])[original["id"]]["story"]
    idx.commit()
    assert idx.story_entries([other["id"]])[other["id"]]["story"] != e["story"]
    listed = list_stories(idx)["stories"]
    assert [len(s["articles"]) for s in listed] == [2, 1] and listed[0]["outlets"] == 2
    assert {a["outlet"] for a in listed[0]["articles"]} == {"billboard.com", copy1["site_name"]}
    assert set(listed[0]) == {"id", "title", "outlets", "first_seen", "last_updated", "articles"}
    assert stories_of(idx, [copy1["id"]])[copy1["id"]]["outlets"] == ["billboard.com", copy1["site_name"]]
    idx.remove(original["id"])
    idx.commit()
    assert idx.story_entries([original["id"]]) == {}
    assert [len(s["articles"]) for s in list_stories(idx)["stories"]] == [1, 1]
    assert idx.story_members([e["story"]])[0]["key"] == copy1["id"]  # the copy keeps the story
    assert {x["key"] for x in idx.stories_between("2026-10-01", "2026-10-31")} == {copy1["id"], other["id"]}


def test_a_writeup_joins_only_within_the_window_with_shared_names(tmp_path, small_embedder, dev):
    from rag_news.store import NewsIndex

    a, w = dev["9cb8224b660f"], dev["9cb8224b660f-w"]
    lead = np.ones(8, np.float32) / np.sqrt(8)

    def joined(rec, text, params=None, name=[0]):
        name[0] += 1
        idx = NewsIndex.open(tmp_path / str(name[0]), small_embedder, create=True)
        assign(idx, _rec(a), a["text"], lead)
        idx.commit()
        return assign(idx, rec, text, lead, params)["joined"]

    assert joined(_rec(w), w["text"]) == "write-up"  # same lead vector, shared names, two days apart
    assert joined({**_rec(w), "published": "2026-12-30"}, w["text"]) is None  # outside the window
    assert joined({**_rec(w), "title": "a report"}, "nothing named here at all, just words.") is None
    assert joined(_rec(w), w["text"], StoryParams(min_shared=50)) is None
    assert joined(_rec(w), w["text"], StoryParams(lead_threshold=1.5)) is None


def test_a_batch_reads_each_day_of_its_window_once(tmp_path, small_embedder, dev):
    """assign_many's articles share one Neighbours: the committed entries of a day are read once for the
    batch (a store read per article and day would grow with the corpus at newsroom volumes)."""
    from rag_news.store import NewsIndex

    a, w = dev["9cb8224b660f"], dev["9cb8224b660f-w"]
    lead = np.ones(8, np.float32) / np.sqrt(8)
    idx = NewsIndex.open(tmp_path / "index", small_embedder, create=True)
    assign(idx, _rec(a), a["text"], lead)
    idx.commit()
    reads, real = [], idx.stories_between
    idx.stories_between = lambda lo, hi: (reads.append((lo, hi)), real(lo, hi))[1]
    others = [x for k, x in sorted(dev.items()) if "-" not in k and k != a["id"]][:4]
    apart = np.eye(8, dtype=np.float32)  # leads far from the original's
    neighbours = stories.Neighbours(idx)
    got = [assign(idx, {**_rec(o), "published": w["published"]}, o["text"], apart[i], neighbours=neighbours)["joined"]
           for i, o in enumerate(others)]
    got.append(assign(idx, _rec(w), w["text"], lead, neighbours=neighbours)["joined"])
    assert got == [None, None, None, None, "write-up"]  # the committed original still found from the cache
    window = 2 * int(StoryParams().window_days) + 1
    assert len(reads) == window and all(lo == hi for lo, hi in reads) and len(set(reads)) == window
    assert neighbours.reads == window


def test_restory_re_forms_every_story_with_new_parameters(tmp_path, small_embedder, dev, settings):
    from rag_news.store import NewsIndex

    idx = NewsIndex.open(tmp_path / "i", small_embedder, create=True)
    ids = [i for i in ("9cb8224b660f", "9cb8224b660f-c0", "9cb8224b660f-c1", "042bb7b5feda") if i in dev]
    for i in ids:
        stage(idx, small_embedder, settings, i, dev[i]["title"], dev[i]["text"], dev[i]["published"])
    idx.commit()
    assert list_stories(idx)["stories"] == []  # indexed without stories
    got = restory(idx, StoryParams())
    sizes = sorted(len(s["articles"]) for s in list_stories(idx)["stories"])
    assert got["articles"] == len(ids) and sizes == [1, len(ids) - 1]
    restory(idx, StoryParams(copy_threshold=1.01, lead_threshold=2.0))  # nothing is a copy any more
    assert all(len(s["articles"]) == 1 for s in list_stories(idx)["stories"])
    assert len(list_stories(idx)["stories"]) == len(idx)


@pytest.fixture(scope="module")
def syndicated(tmp_path_factory, cache_dir, small_embedder):
    """Three sample-site pages indexed by the real pipeline: the storm warning, a rewritten copy of it on
    another outlet (its own headline, site name, an editor's note) and an unrelated article."""
    from conftest import make_settings
    from rag_news import index_urls
    from rag_news.sample_site import SITE_DIR, serve

    tmp = tmp_path_factory.mktemp("syndicated")
    site = tmp / "site"
    shutil.copytree(SITE_DIR, site)
    html = (site / "2026/11/storm-warning.html").read_text(encoding="utf-8")
    copy = re.sub(r"<title>.*?</title>", "<title>Amber warning: Orla to hit the coast | Metro Wire</title>", html, 1)
    copy = copy.replace("The Larkspur Ledger", "Metro Wire")  # the other outlet's masthead and site name
    copy = re.sub(r'<link rel="canonical"[^>]*>', "", copy)  # its own page, not the original's
    at = copy.index("<p>", copy.index("<article"))
    copy = copy[:at] + "<p>Editor's note: this story was first published by The Larkspur Ledger.</p>" + copy[at:]
    (site / "2026/11/orla-wire.html").write_text(copy, encoding="utf-8")
    settings = make_settings(tmp, cache_dir)
    with serve(site) as base:
        urls = [base + "2026/11/storm-warning.html", base + "2026/11/orla-wire.html", base + "2026/10/bridge-repairs.html"]
        report = index_urls(urls, settings, embedder=small_embedder)
    return settings, urls, report


def test_the_pipeline_puts_a_rewritten_copy_in_the_story_of_its_original(syndicated):
    from rag_news import open_index

    settings, urls, report = syndicated
    assert report.articles_new == 3
    index = open_index(settings.index_dir, settings)
    listed = list_stories(index)["stories"]
    assert [(len(s["articles"]), s["outlets"]) for s in listed] == [(2, 2), (1, 1)], listed
    assert sorted(a["outlet"] for a in listed[0]["articles"]) == ["Metro Wire", "The Larkspur Ledger"]
    assert stories.outlet(index.article(index.key_for_url(urls[2]))) in {a["outlet"] for a in listed[1]["articles"]}


def test_retrieval_shows_one_article_per_story_unless_asked_otherwise(syndicated):
    from rag_news import open_index
    from rag_news.retrieve import NewsRetriever

    settings, urls, _ = syndicated
    r = NewsRetriever(index=open_index(settings.index_dir, settings), read_dates=False,
                      max_gap=None)  # the bridge story, far from the question, takes the free slots
    capped = r.search("Storm Orla gusts on the coast", k=4)
    told: dict[str, set] = {}
    for d in capped:
        told.setdefault(d.metadata["story"], set()).add(d.metadata["url"])
    assert len(told) == 2 and all(len(u) == 1 for u in told.values())  # two stories, one outlet each
    assert not set(urls[:2]) <= {d.metadata["url"] for d in capped}  # the copy on the other outlet: no slot
    free = r.search("Storm Orla gusts on the coast", k=4, max_per_story=0)
    assert {d.metadata["url"] for d in free} >= set(urls[:2])  # both outlets' copies, uncapped
    assert len(NewsRetriever(index=r.index, read_dates=False, max_per_story=2, max_gap=None).search("Storm Orla", k=4)) > 2


def test_sources_say_which_outlets_carry_the_story_with_a_stub_reader(syndicated):
    from test_answer import stub_reader

    from rag_news.answer import NewsQA

    settings, urls, _ = syndicated
    qa = NewsQA(settings.replace(min_relevance=0, context_tokens=0, k=2),
                llm=stub_reader("Storm Orla brings gusts of 110 km/h to the coast [1]."))
    answer = qa.ask("How strong will the gusts of Storm Orla be?")
    storm = next(s for s in answer.as_dict()["sources"] if "Orla" in s["title"])
    assert storm["outlets"] == 2 and sorted(storm["carried_by"]) == ["Metro Wire", "The Larkspur Ledger"]
    more = qa.ask("How strong will the gusts of Storm Orla be?", max_per_story=0)
    assert len({s.story for s in more.sources}) < len(more.sources)  # per request: copies allowed


def test_stories_on_the_command_line_and_over_http(syndicated, capsys):
    import httpx
    from servers import LiveServer

    from rag_news.answer import NewsQA
    from rag_news.serve import Service, create_app
    from rag_news.stories import main

    settings, urls, _ = syndicated
    assert main(["--index-dir", str(settings.index_dir), "--json", "--since", "2026-11-01"]) == 0
    listed = json.loads(capsys.readouterr().out)["stories"]
    assert [s["outlets"] for s in listed] == [2] and set(listed[0]["articles"][0]) == {"url", "outlet", "title",
                                                                                         "published"}
    assert main(["--index-dir", str(settings.index_dir)]) == 0
    assert "2 outlet(s)" in capsys.readouterr().out
    with LiveServer(create_app(Service(NewsQA(settings)))) as live:
        got = httpx.get(live.url + "/stories", params={"until": "2026-10-31"}, timeout=60).json()
        bad = httpx.get(live.url + "/stories", params={"since": "yesterday"}, timeout=60)
    assert [len(s["articles"]) for s in got["stories"]] == [1] and bad.status_code in (400, 422)
