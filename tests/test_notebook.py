"""notebooks/walkthrough.ipynb: stored without outputs, built on the public API, and executed top to bottom
(papermill, the real kernel) offline with the packaged models: the sample site served on 127.0.0.1, mpnet,
the packaged SmolLM2 standing in for Mixtral."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"


def _cells(nb: dict, kind: str) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == kind]


def test_notebook_is_stored_without_outputs_and_has_a_parameters_cell():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = _cells(nb, "code")
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1
    names = set(re.findall(r"^(\w+)\s*=", "".join(params[0]["source"]), re.M))
    assert {"model", "backend", "index_dir", "urls"} <= names


def test_notebook_uses_only_the_public_api():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    source = "\n".join("".join(c["source"]) for c in _cells(nb, "code"))
    imports = re.findall(r"^\s*(?:from\s+(rag_news[\w.]*)\s+import\s+([^\n]+)|import\s+(rag_news[\w.]*))", source, re.M)
    assert imports
    for module, names, plain in imports:
        mod = module or plain
        assert not any(part.startswith("_") for part in mod.split(".")), mod
        assert not any(n.strip().split(" as ")[0].startswith("_") for n in names.split(",")), names


@pytest.mark.timeout(900)
def test_walkthrough_executes_offline(tmp_path, cache_dir, monkeypatch):
    import papermill  # the `notebook` extra, installed by scripts/setup.sh: missing it is a failure, not a skip
    monkeypatch.setenv("RAG_NEWS_CACHE_DIR", str(cache_dir))  # share the reassembled mpnet / ONNX export
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RAG_NEWS_CONFIG", raising=False)
    out = tmp_path / "walkthrough.out.ipynb"
    sample = (ROOT / "data" / "sample-questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = tmp_path / "questions.jsonl"  # one answerable and one unanswerable: the eval cell's every path
    questions.write_text("\n".join(l for l in sample if '"site-03"' in l or '"site-07"' in l) + "\n", encoding="utf-8")
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"index_dir": str(tmp_path / "index"),
                                                                     "questions_file": str(questions)},
                               kernel_name="python3", cwd=str(ROOT), progress_bar=False, execution_timeout=600)
    nb = json.loads(out.read_text(encoding="utf-8"))
    outputs = [o for c in _cells(nb, "code") for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                     + "".join(o.get("data", {}).get("text/plain", "")) for o in outputs)
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2  # chunk-length histogram, evaluation bar chart
    assert "HTTP 404" in text  # the deliberately failing URL is reported with its reason
    assert "no CUDA GPU" in text  # the substitution of the offline model is visible
    assert "[INST]" in text or "<|im_start|>" in text  # the chat template the prompt goes through
    assert re.search(r"re-embedded \d+ chunk\(s\), all from the edited article", text)
    assert "stopped the sample site" in text
    assert "Where will the Eastmoor branch library be built?" in text and "What is the population of Paris?" in text
    assert "Larkspur Bay tidal power plant supply" not in text  # the eval read the two-question file
