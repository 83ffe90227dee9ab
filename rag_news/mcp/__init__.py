"""``python -m rag_news.mcp``: rag-news as a Model Context Protocol server, so assistants and agent
frameworks can search and ask the indexed news as tools.

Built with the official MCP Python SDK (``mcp``; :class:`mcp.server.mcpserver.MCPServer`). Transports:
stdio (the default: an MCP client starts the process and talks over its stdin/stdout) and streamable
HTTP on 127.0.0.1 (``--transport http --port 8765``, endpoint ``/mcp``). Tools (see :mod:`.server`):

* ``search_news(query, k?, since?, until?, outlet?)`` — passages retrieval finds, no model involved;
* ``ask_news(question, since?, until?, research?)`` — a grounded answer with ``[n]`` citations, its sources,
  whether it abstained, and the searches it made;
* ``list_stories(since?, until?, limit?)`` — the period's stories across outlets, most outlets first
  (:mod:`rag_news.stories`);
* ``index_status()`` — what the index holds.

The tools are a thin layer over :class:`rag_news.answer.NewsQA` and :mod:`rag_news.tools`, the same API
the CLI and the HTTP server use. Failures a caller can fix (an empty question, a bad date, no index yet)
come back as MCP tool errors (``isError: true`` and the reason as text); anything else is the SDK's
generic tool error, its traceback on stderr.
"""

from .server import build_server

__all__ = ["build_server"]
