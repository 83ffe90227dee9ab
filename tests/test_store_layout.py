"""The store package's layout (issue 23 part 4): no import cycle among rag_news/store/*.py, and the drawing
in the package's docstring (who imports whom) is the code's import graph, module for module, arrow for arrow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import rag_news.store

STORE = Path(rag_news.store.__file__).parent


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The store modules ``path`` imports, at module level or inside functions (``from .x import``,
    ``from . import x``, ``from rag_news.store.x import``, ``import rag_news.store.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:
                names = [base.split(".")[0]] if base else [a.name for a in node.names]
            elif node.level == 0 and base.startswith("rag_news.store"):
                rest = base[len("rag_news.store"):].lstrip(".")
                names = [rest.split(".")[0]] if rest else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name[len("rag_news.store."):].split(".")[0] for a in node.names
                     if a.name.startswith("rag_news.store.")]
        found.update(n for n in names if n in modules)
    return found - {path.stem}


def code_graph() -> dict[str, set[str]]:
    paths = {p.stem: p for p in STORE.glob("*.py")}
    return {name: imports_of(p, set(paths)) for name, p in paths.items()}


def drawn_graph() -> dict[str, set[str]]:
    graph = {}
    for line in rag_news.store.__doc__.splitlines():
        m = re.match(r"^\s+(?:[a-z]+\s+)?(\w+)\s+-->(.*)$", line)
        if m:
            assert m.group(1) not in graph, f"{m.group(1)} drawn twice"
            graph[m.group(1)] = {d.strip() for d in m.group(2).split(",") if d.strip()}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_the_store_modules_import_each_other_without_a_cycle():
    graph = code_graph()
    assert {"faiss_store", "writer", "milvus_store", "milvus_writer", "postgres_store", "postgres_writer"} <= set(graph)
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_drawing_in_the_package_docstring_is_the_import_graph():
    code, drawn = code_graph(), drawn_graph()
    assert set(drawn) == set(code), f"modules not drawn: {set(code) - set(drawn)}; drawn, not there: {set(drawn) - set(code)}"
    wrong = {m: (sorted(drawn[m]), sorted(code[m])) for m in code if drawn[m] != code[m]}
    assert not wrong, f"module: (drawn, imported) {wrong}"
    order = list(drawn)  # drawn top to bottom: every arrow points down
    up = [(m, d) for m in order for d in drawn[m] if order.index(d) < order.index(m)]
    assert not up, f"arrows pointing up the drawing: {up}"


def test_the_cycle_check_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


CALLERS = ["pipeline.py", "retrieve.py", "serve.py", "stories.py", "tools.py", "mcp/server.py", "chat_api.py",
           "reindex.py", "answer.py"]


def private_uses(path: Path) -> list[str]:
    """``obj._name`` in ``path`` where ``obj`` is not ``self``/``cls`` and ``_name`` is not defined in that
    module (as a function, a class attribute or a ``self._name`` assignment): another module's private state."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    uses = [(node.lineno, node.value, node.attr) for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
    uses += [(node.lineno, node.args[0], node.args[1].value) for node in ast.walk(tree)  # getattr(x, "_name")
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
             and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)]
    return [f"{path.name}:{line} {value.id}.{attr}" for line, value, attr in uses
            if isinstance(value, ast.Name) and value.id not in ("self", "cls") and re.match(r"_[a-z]", attr)
            and attr not in own]


THIRD_PARTY = {"client._model"}  # answer.py: llama-cpp-python's Llama object (its model handle), not ours


def test_no_module_reaches_into_a_store_or_writer_private_state():
    root = STORE.parent
    found = [u for p in sorted(STORE.glob("*.py")) + [root / c for c in CALLERS] for u in private_uses(p)
             if u.split(" ")[1] not in THIRD_PARTY]
    assert found == []


def store_members() -> set[str]:
    from rag_news.store.base import Store

    return {n for n in dir(Store) if not n.startswith("_") or n == "__len__"} - set(dir(object)) | {
        n for n in getattr(Store, "__annotations__", {})} | {"__len__"}


# how each caller names the index it holds
HOLDERS = {"pipeline.py": ("idx", "self.idx"), "retrieve.py": ("idx", "self.index"), "serve.py": ("qa.index", "qa.loaded_index"),
           "tools.py": ("qa.index",), "stories.py": ("store",), "reindex.py": ("idx", "index", "store")}


def test_the_store_protocol_holds_everything_its_callers_use_and_every_backend_has_it():
    from rag_news.store import NewsIndex
    from rag_news.store.milvus_store import MilvusStore
    from rag_news.store.postgres_store import PostgresStore

    members = store_members()
    root = STORE.parent
    used = set()
    for name, holders in HOLDERS.items():
        for node in ast.walk(ast.parse((root / name).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) in holders:
                used.add((name, node.attr))
    assert used and {a for _, a in used} >= {"writer", "upsert", "commit", "dense_search", "stats"}
    assert [u for u in sorted(used) if u[1] not in members] == []
    for backend in (NewsIndex, MilvusStore, PostgresStore):
        assert [m for m in sorted(members) if m not in ("embeddings", "meta") and not hasattr(backend, m)] == [], backend


def test_fault_injection_is_a_hook_passed_in_not_an_environment_lookup(tmp_path, small_embedder, settings):
    """The writer calls the hook it was given at its named points; a hook that fails at ``swapping`` (the
    pass's transaction written, not committed) leaves the last committed pass. No module reads a pause
    variable from the environment."""
    from rag_news.faults import Faults
    from rag_news.store import NewsIndex

    from test_store_backends import stage

    class Recorder(Faults):
        def __init__(self, fail_at=None):
            self.names, self.fail_at = [], fail_at

        def reached(self, name):
            self.names.append(name)
            if name == self.fail_at:
                raise RuntimeError(f"injected at {name}")

    hook = Recorder()
    idx = NewsIndex.open(tmp_path / "f", small_embedder, create=True, faults=hook)
    stage(idx, small_embedder, settings, "http://127.0.0.1/a", "A", "The harbour ferry leaves at noon.")
    idx.commit()
    assert hook.names == ["writing", "swapping"]
    failing = NewsIndex.open(tmp_path / "f", small_embedder, faults=Recorder(fail_at="swapping"))
    stage(failing, small_embedder, settings, "http://127.0.0.1/b", "B", "The library opens in the old depot.")
    try:
        failing.commit()
    except RuntimeError as e:
        assert "injected at swapping" in str(e)
    else:
        raise AssertionError("the hook was not called")
    reader = NewsIndex.open(tmp_path / "f", small_embedder)
    assert len(reader) == 1 and reader.article("http://127.0.0.1/b") is None and reader.check() == []
    sources = [p for p in STORE.parent.rglob("*.py")]
    assert not [p.name for p in sources if "PAUSE_AT" in p.read_text(encoding="utf-8")]
