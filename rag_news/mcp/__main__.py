"""``python -m rag_news.mcp [--transport stdio|http]``: serve rag-news' tools over MCP (see the package)."""

from __future__ import annotations

import argparse
import logging
import sys

PROG = "python -m rag_news.mcp"
log = logging.getLogger("rag_news.mcp")


def build_parser() -> argparse.ArgumentParser:
    from ..cli import add_answer_flags, add_settings_flags

    ap = argparse.ArgumentParser(prog=PROG, description="rag-news as an MCP server: search_news, ask_news, "
                                 "index_status over stdio (default) or streamable HTTP on 127.0.0.1.")
    ap.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                    help="stdio: an MCP client starts this process (default); http: streamable HTTP")
    ap.add_argument("--host", default="127.0.0.1", help="http: address to bind (loopback only; default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8765, help="http: port (default 8765)")
    ap.add_argument("--path", default="/mcp", help="http: endpoint path (default /mcp)")
    ap.add_argument("--warm", action="store_true", help="load the index and the model before serving "
                    "(default: on the first call that needs them, so the client's handshake is immediate)")
    add_answer_flags(ap)
    add_settings_flags(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    from ..answer import NewsQA
    from ..cli import answer_settings_from_args
    from ..errors import ConfigError
    from ..serve import is_loopback
    from .server import build_server

    args = build_parser().parse_args(argv)
    # stdout carries the protocol on stdio: every log line goes to stderr
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.transport == "http" and not is_loopback(args.host):
        raise ConfigError(f"--host {args.host}: the MCP server has no authentication and binds loopback "
                          "addresses only (127.0.0.1, ::1, localhost)")
    settings = answer_settings_from_args(args)
    qa = NewsQA(settings)
    if args.warm:
        qa.warm_up()
    server = build_server(qa)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        log.warning("serving MCP on http://%s:%d%s", args.host, args.port, args.path)
        server.run("streamable-http", host=args.host, port=args.port, streamable_http_path=args.path)
    return 0


def cli() -> None:
    from ..cli import run
    run(main, PROG)


if __name__ == "__main__":
    cli()
