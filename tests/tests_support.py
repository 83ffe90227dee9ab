SMALL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

MIXTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def char_tokenizer(chat_template: str | None = MIXTRAL_TEMPLATE):
    """A character-level fast tokenizer with 256 ids (3 special + printable characters), built offline."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\x0b\x0c"] + list("—’“”…éü")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for i in range(len(vocab), 256):
        vocab[f"<extra_{i}>"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")
    fast.chat_template = chat_template
    return fast


def tiny_mixtral(folder, seed: int = 0, chat_template: str | None = MIXTRAL_TEMPLATE):
    """Save a scaled-down Mixtral (random weights, Mixtral's ratios: 8 experts, top-2, intermediate = 3.5 x
    hidden; hidden 256, vocab 256, 2 layers) and its tokenizer to ``folder`` in bf16, as checkpoints are."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(hidden_size=256, intermediate_size=896, num_hidden_layers=2, num_attention_heads=8,
                           num_key_value_heads=4, vocab_size=256, num_local_experts=8, num_experts_per_tok=2,
                           max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(seed)
    MixtralForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    char_tokenizer(chat_template).save_pretrained(folder)
    return folder
