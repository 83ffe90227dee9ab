#!/usr/bin/env bash
# Issue 11 on the GPU machine, one command: the 4-bit Mixtral path at full size with random weights
# (benchmarks/bench_gpu_mixtral.py: decode and prefill speed, memory at 2k and 4k tokens, a decode profile).
#
# The machine has torch, transformers and accelerate but no bitsandbytes and no network, so the wheel is
# carried in .whl/ (see benchmarks/gpu/README.md) and unpacked with pip --no-deps --no-index into a scratch
# folder; rag_news is used from the working tree (rag_news.llm/.settings/.mixtral need only torch and
# transformers; the package loads its other exports lazily), so none of its other dependencies are needed.
#
#   OUT=folder                  where the JSON and the log go (default .device-out/)
#   PYTHON=python3              the interpreter
#   RAG_NEWS_GPU_DRYRUN=1       rehearse on a CPU-only machine: the scaled model (--config tiny --device cpu)
#   RAG_NEWS_GPU_ARGS="..."     extra flags for the benchmark, e.g. "--new-tokens 128"
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
OUT=${OUT:-$PWD/.device-out}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$PY" -c "import bitsandbytes" 2>/dev/null; then
  WHEEL=$(ls .whl/bitsandbytes-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$WHEEL" ]; then
    echo "run.sh: FAILED: bitsandbytes is not installed and no .whl/bitsandbytes-*.whl was carried" \
         "(download it first, see benchmarks/gpu/README.md, and pass carry [\".whl\"])" >&2
    exit 2
  fi
  DEPS=$(mktemp -d)
  echo "run.sh: installing $WHEEL (--no-deps --no-index) into $DEPS" >&2
  "$PY" -m pip install -q --no-deps --no-index --target "$DEPS" "$WHEEL"
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PY" - <<'PYEOF' 2>&1 | tee "$OUT/versions.txt"
import platform, torch, transformers, accelerate, bitsandbytes
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, accelerate {accelerate.__version__}, "
      f"bitsandbytes {bitsandbytes.__version__}, GPU: {gpu}")
PYEOF

if [ "${RAG_NEWS_GPU_DRYRUN:-0}" = 1 ]; then
  ARGS=(--config tiny --device cpu)
else
  ARGS=(--config full --device cuda)
fi
# shellcheck disable=SC2086  # RAG_NEWS_GPU_ARGS is a list of flags
"$PY" benchmarks/bench_gpu_mixtral.py "${ARGS[@]}" --profile --out "$OUT/bench_gpu_mixtral.json" \
  ${RAG_NEWS_GPU_ARGS:-} 2>&1 | tee "$OUT/bench_gpu_mixtral.log"
