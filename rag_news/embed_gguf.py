"""Convert a sentence-transformers BERT model (all-MiniLM-L6-v2 and its kin: BertModel + mean pooling) to a
GGUF file llama.cpp serves embeddings from, so the same model runs in-process and on an embedding server::

    python -m rag_news.embed_gguf sentence-transformers/all-MiniLM-L6-v2 minilm.gguf
    python -m llama_cpp.server --model minilm.gguf --embedding true --model_alias \\
        sentence-transformers/all-MiniLM-L6-v2 --host 127.0.0.1 --port 8080
    RAG_NEWS_EMBEDDING_BACKEND=openai RAG_NEWS_EMBEDDING_BASE_URL=http://127.0.0.1:8080/v1 ...

Tensor names come from the ``gguf`` package's own BERT map, the vocabulary is written the way llama.cpp's
``convert_hf_to_gguf.py`` writes WordPiece vocabularies (``##`` pieces bare, other words with a leading
``▁``), weights in float32 (or float16 with ``--f16``). Other architectures: use llama.cpp's converter.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .errors import ConfigError


def _phantom(tok: str) -> str:
    if tok.startswith("[") and tok.endswith("]"):
        return tok
    return tok[2:] if tok.startswith("##") else "\u2581" + tok


def _write_vocab(w, model_dir: Path, cfg: dict) -> None:
    import gguf

    vocab = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([_phantom(t) for t in tokens])
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    ids = {t: i for i, t in enumerate(tokens)}
    w.add_bos_token_id(ids["[CLS]"])
    w.add_eos_token_id(ids["[SEP]"])
    w.add_sep_token_id(ids["[SEP]"])
    w.add_pad_token_id(ids["[PAD]"])
    w.add_unk_token_id(ids["[UNK]"])
    w.add_mask_token_id(ids["[MASK]"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    w.add_token_type_count(int(cfg.get("type_vocab_size", 2)))


def convert(model_dir: str | Path, out: str | Path, f16: bool = False) -> Path:
    """Write ``model_dir`` (a local sentence-transformers BERT folder) as GGUF to ``out``; returns ``out``."""
    import gguf
    from safetensors.numpy import load_file

    model_dir, out = Path(model_dir), Path(out)
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") != "bert":
        raise ConfigError(f"{model_dir}: model_type {cfg.get('model_type')!r}; this converter reads BERT models only")
    pool = json.loads((model_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    pooling = gguf.PoolingType.CLS if pool.get("pooling_mode_cls_token") else gguf.PoolingType.MEAN
    n_layers = int(cfg["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    w = gguf.GGUFWriter(str(out), "bert")
    w.add_name(model_dir.name)
    w.add_context_length(int(cfg["max_position_embeddings"]))
    w.add_embedding_length(int(cfg["hidden_size"]))
    w.add_feed_forward_length(int(cfg["intermediate_size"]))
    w.add_block_count(n_layers)
    w.add_head_count(int(cfg["num_attention_heads"]))
    w.add_layer_norm_eps(float(cfg.get("layer_norm_eps", 1e-12)))
    w.add_causal_attention(False)
    w.add_pooling_type(pooling)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    _write_vocab(w, model_dir, cfg)
    for name, tensor in load_file(str(model_dir / "model.safetensors")).items():
        name = name.removeprefix("bert.")
        if name.startswith("pooler.") or name.endswith("position_ids"):
            continue  # sentence-transformers pools itself; position ids are implicit
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ConfigError(f"{model_dir}: no GGUF name for tensor {name}")
        data = tensor.astype(np.float16 if f16 and tensor.ndim == 2 and not new.startswith("token_types")
                             else np.float32)
        w.add_tensor(new, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag_news.embed_gguf", description=__doc__.splitlines()[0])
    ap.add_argument("model", help="sentence-transformers model id (packaged / cached) or folder")
    ap.add_argument("out", help="the .gguf file to write")
    ap.add_argument("--f16", action="store_true", help="float16 weight matrices (half the size)")
    args = ap.parse_args(argv)
    from .models import resolve_sentence_model
    from .settings import Settings

    print(convert(resolve_sentence_model(args.model, Settings().cache_dir), args.out, f16=args.f16))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
