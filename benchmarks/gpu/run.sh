#!/usr/bin/env bash
# Issue 11 on the GPU machine, one command: the 4-bit Mixtral path at full size with random weights
# (benchmarks/bench_gpu_mixtral.py: decode and prefill speed, memory at 2k and 4k tokens, a decode profile).
# Then, in the same run (issue 28): mpnet embedding throughput, fp32 vs fp16, over bench_embed.py's texts
# (benchmarks/bench_gpu_embed.py; the texts and mpnet's tokenizer/config carried in .gpu-data/, written by
# `python benchmarks/bench_gpu_embed.py --prepare .gpu-data`), and a 1M-chunk dense search, GPU FAISS vs
# CPU FAISS (benchmarks/bench_gpu_faiss.py) when a FAISS with GPU support can be had: already installed, a
# carried .whl/faiss_gpu-*.whl, or pip reaching an index; otherwise that part is skipped, saying why (the
# faiss-gpu 1.15.1 wheel is 129 MiB, over the 64 MiB that travels to the device machine). A part that fails
# does not stop the next one; the exit status is that of the first part that failed.
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
#   RAG_NEWS_GPU_PARTS="mixtral embed faiss"   which parts to run (default: all three, in this order)
#   RAG_NEWS_GPU_FAISS_N=1000000               chunks in the FAISS search (dry run: 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
OUT=${OUT:-$PWD/.device-out}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
DRY=${RAG_NEWS_GPU_DRYRUN:-0}
PARTS=" ${RAG_NEWS_GPU_PARTS:-mixtral embed faiss} "

if [[ $PARTS == *" mixtral "* ]] && ! "$PY" -c "import bitsandbytes" 2>/dev/null; then
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
import importlib, platform, torch
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
def version(name):
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return "absent"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      + ", ".join(f"{m} {version(m)}" for m in ("transformers", "accelerate", "bitsandbytes", "faiss"))
      + f", GPU: {gpu}")
PYEOF

FAILED=0
part_failed() { echo "run.sh: $1 FAILED (exit $2)" >&2; [ "$FAILED" != 0 ] || FAILED=$2; }

if [[ $PARTS == *" mixtral "* ]]; then
  if [ "$DRY" = 1 ]; then ARGS=(--config tiny --device cpu); else ARGS=(--config full --device cuda); fi
  # shellcheck disable=SC2086  # RAG_NEWS_GPU_ARGS is a list of flags
  "$PY" benchmarks/bench_gpu_mixtral.py "${ARGS[@]}" --profile --out "$OUT/bench_gpu_mixtral.json" \
    ${RAG_NEWS_GPU_ARGS:-} 2>&1 | tee "$OUT/bench_gpu_mixtral.log" || part_failed bench_gpu_mixtral $?
fi

if [[ $PARTS == *" embed "* ]]; then
  if [ ! -f .gpu-data/embed_texts.json ] || [ ! -d .gpu-data/mpnet ]; then
    echo "run.sh: embedding part skipped: .gpu-data/embed_texts.json and .gpu-data/mpnet/ were not carried" \
         "(write them with: python benchmarks/bench_gpu_embed.py --prepare .gpu-data; carry [\".gpu-data\"])" >&2
  else
    if [ "$DRY" = 1 ]; then EARGS=(--device cpu --limit 8); else EARGS=(--device cuda); fi
    "$PY" benchmarks/bench_gpu_embed.py "${EARGS[@]}" --texts .gpu-data/embed_texts.json --model .gpu-data/mpnet \
      --out "$OUT/bench_gpu_embed.json" 2>&1 | tee "$OUT/bench_gpu_embed.log" || part_failed bench_gpu_embed $?
  fi
fi

faiss_gpu() { "$PY" -c "import faiss, sys; sys.exit(0 if hasattr(faiss, 'StandardGpuResources') else 1)" 2>/dev/null; }
if [[ $PARTS == *" faiss "* ]]; then
  if [ "$DRY" = 1 ]; then
    FARGS=(--device cpu --n "${RAG_NEWS_GPU_FAISS_N:-20000}")
  else
    FARGS=(--device cuda --n "${RAG_NEWS_GPU_FAISS_N:-1000000}")
    if ! faiss_gpu; then
      FDEPS=$(mktemp -d)
      FWHEEL=$(ls .whl/faiss_gpu-*.whl 2>/dev/null | head -n 1 || true)
      if [ -n "$FWHEEL" ]; then
        "$PY" -m pip install -q --no-deps --no-index --target "$FDEPS" "$FWHEEL" || true
      else  # the CUDA runtime/cuBLAS/cuRAND it links come with a CUDA build of torch; --no-deps keeps torch's
        timeout 120 "$PY" -m pip install -q --no-deps --timeout 10 --retries 0 --target "$FDEPS" faiss-gpu==1.15.1 \
          >/dev/null 2>&1 || true
      fi
      export PYTHONPATH="$FDEPS${PYTHONPATH:+:$PYTHONPATH}"
    fi
  fi
  if [ "$DRY" != 1 ] && ! faiss_gpu; then
    echo "run.sh: FAISS part skipped: no FAISS with GPU support here (not installed, no .whl/faiss_gpu-*.whl" \
         "carried: the faiss-gpu 1.15.1 wheel is 129 MiB, over the 64 MiB that travels, and pip reached no index)" \
         | tee "$OUT/bench_gpu_faiss.log" >&2
  else
    "$PY" benchmarks/bench_gpu_faiss.py "${FARGS[@]}" --out "$OUT/bench_gpu_faiss.json" 2>&1 \
      | tee "$OUT/bench_gpu_faiss.log" || part_failed bench_gpu_faiss $?
  fi
fi
exit "$FAILED"
