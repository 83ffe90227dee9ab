"""The MCP tools over one :class:`~rag_news.answer.NewsQA` (see the package docstring)."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from .. import tools
from ..errors import RagNewsError

INSTRUCTIONS = (
    "rag-news answers questions about news articles it has indexed (fetched from news sites and feeds). "
    "Use search_news to read the passages themselves and judge them yourself; use ask_news for a short "
    "answer written from those passages with [n] citations, or 'I don't know' when they do not hold it. "
    "index_status says how many articles are indexed. Dates are ISO (YYYY-MM-DD)."
)

SEARCH_DESCRIPTION = (
    "Search the indexed news articles and return the best-matching passages (no answer is written). "
    "Each passage has n, title, url, outlet (the site's host name), published (ISO date or null), score and "
    "text. Write the query as the words an article would use (names, places, figures), not as an "
    "instruction. Narrow by publication date with since/until, or to one outlet."
)
ASK_DESCRIPTION = (
    "Ask a question about the news and get a short answer written only from indexed articles. The answer "
    "cites passages as [n], matching sources[n-1]; abstained is true (answer 'I don't know.') when no "
    "passage states the answer, which is a valid result, not an error. research: 'auto' (default) lets the "
    "reader run extra searches only for questions that need two articles (comparisons, 'before/after', "
    "sums; a question comparing or adding two figures is asked as two sub-questions and the arithmetic done "
    "for it); 'always' forces that; 'never' keeps one retrieval. searches lists the searches and "
    "sub-questions it ran. "
    "Slow: a local model writes the answer (tens of seconds)."
)
STORIES_DESCRIPTION = (
    "The news stories of a period across outlets, most outlets first: one story groups the copies of a wire "
    "story and the write-ups of one event by different sites. Each story has id, title, outlets (how many "
    "sites carry it), first_seen, last_updated and its articles (url, outlet, title, published). Use it to "
    "see what the news was about in a period, then search_news or ask_news for details.")
STATUS_DESCRIPTION = ("How much is indexed: articles, chunks, the index pass, the backend and the embedding "
                      "model. Call it to check rag-news has articles before searching.")

Query = Annotated[str, Field(description="What to look for, e.g. 'Eastmoor branch library tram depot'",
                             min_length=1, max_length=2000)]
Question = Annotated[str, Field(description="The question, in plain words", min_length=1, max_length=2000)]
K = Annotated[int, Field(description="How many passages to return (1-20)", ge=1, le=tools.MAX_K)]
Since = Annotated[str | None, Field(description="Only articles published on or after this date, YYYY-MM-DD")]
Until = Annotated[str | None, Field(description="Only articles published on or before this date, YYYY-MM-DD")]
Outlet = Annotated[str | None, Field(description="Only passages from this outlet: a host name such as "
                                                  "'bbc.co.uk' or a site name")]
Limit = Annotated[int, Field(description="How many stories to return at most (1-200)", ge=1, le=200)]
Research = Annotated[Literal["auto", "always", "never"] | None,
                     Field(description="Extra searches by the reader: auto (default), always or never")]


def build_server(qa, name: str = "rag-news") -> MCPServer:
    """The MCP server whose tools answer from ``qa`` (a :class:`~rag_news.answer.NewsQA`; its index and
    model load on the first call that needs them). One answer is generated at a time."""
    from .. import __version__

    server = MCPServer(name, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    one_at_a_time = threading.Lock()
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @server.tool(description=SEARCH_DESCRIPTION, annotations=read_only, structured_output=True)
    def search_news(query: Query, k: K = 5, since: Since = None, until: Until = None,
                    outlet: Outlet = None) -> dict[str, Any]:
        docs = _tool_call(lambda: tools.search_news(qa, query, k=k, since=since, until=until, outlet=outlet))
        return {"query": query, "passages": [tools.passage_dict(n, d) for n, d in enumerate(docs, 1)]}

    @server.tool(description=ASK_DESCRIPTION, annotations=read_only, structured_output=True)
    def ask_news(question: Question, since: Since = None, until: Until = None,
                 research: Research = None) -> dict[str, Any]:
        with one_at_a_time:
            return _tool_call(lambda: answer_dict(qa, question, since, until, research))

    @server.tool(description=STORIES_DESCRIPTION, annotations=read_only, structured_output=True)
    def list_stories(since: Since = None, until: Until = None, limit: Limit = 20) -> dict[str, Any]:
        return _tool_call(lambda: tools.list_stories(qa, since=since, until=until, limit=limit))

    @server.tool(description=STATUS_DESCRIPTION, annotations=read_only, structured_output=True)
    def index_status() -> dict[str, Any]:
        return _tool_call(lambda: tools.index_status(qa))

    return server


def _tool_call(work):
    """Run ``work``; a rag-news error (bad argument, no index, model missing) becomes an MCP tool error."""
    try:
        return work()
    except RagNewsError as e:
        raise ToolError(str(e)) from e


def answer_dict(qa, question: str, since: str | None, until: str | None, research: str | None) -> dict[str, Any]:
    """``qa``'s answer as the tool's result: answer, abstained, note, sources (all shown passages, numbered
    as cited), cited, searches (the reader's tool calls in research mode)."""
    from ..answer import Answer
    from ..retrieve import parse_since

    since, until = parse_since(since), parse_since(until, flag="until")
    answer, calls = None, []
    kwargs = {"research": research} if research else {}
    for item in qa.stream(question, since=since, until=until, **kwargs):
        if isinstance(item, Answer):
            answer = item
        elif isinstance(item, tools.ToolCall):
            calls.append(item.as_dict())
    assert answer is not None
    return {"question": answer.question, "answer": answer.answer, "abstained": answer.abstained,
            "note": answer.note, "cited": answer.cited,
            "sources": [{"n": s.n, "title": s.title, "url": s.url, "published": s.published} for s in answer.sources],
            "searches": calls, "model": answer.model}
