"""Mixtral whose experts are real ``nn.Linear`` layers, so bitsandbytes quantizes them.

transformers 5 stores each layer's eight experts as two fused 3-D parameters (``gate_up_proj``,
``down_proj``). bitsandbytes replaces ``nn.Linear`` modules only, so a "4-bit" Mixtral loaded the plain
way keeps ~96% of its weights in 16-bit (bitsandbytes #1849). Here the experts are a ``ModuleList`` of
``w1``/``w2``/``w3`` linears — exactly the layout of Mistral's checkpoints — and a checkpoint conversion
mapping registered for this class loads ``block_sparse_moe.experts.N.wK`` straight into them, so each
expert is quantized as it is loaded and the full-precision experts never exist in memory.

The routing is transformers' own (``MixtralSparseMoeBlock`` and its router are reused); only the expert
container differs, so outputs equal the stock model's for the same weights (tested).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import MixtralForCausalLM
from transformers.activations import ACT2FN
from transformers.models.mixtral.configuration_mixtral import MixtralConfig
from transformers.models.mixtral import modeling_mixtral


class MixtralExpertMLP(nn.Module):
    """One expert, as in the checkpoint: ``w2(act(w1 x) * w3 x)``."""

    def __init__(self, config: MixtralConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.w3 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.act_fn(self.w1(x)) * self.w3(x))


class MixtralLinearExperts(nn.ModuleList):
    """Drop-in for ``MixtralExperts``: same call signature, per-expert linear layers."""

    def __init__(self, config: MixtralConfig):
        super().__init__([MixtralExpertMLP(config) for _ in range(config.num_local_experts)])
        self.num_experts = config.num_local_experts

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        final = torch.zeros_like(hidden_states)
        with torch.no_grad():
            mask = nn.functional.one_hot(top_k_index, num_classes=self.num_experts).permute(2, 1, 0)
            hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for (e,) in hit.tolist():
            pos, tok = torch.where(mask[e])
            out = self[e](hidden_states[tok]) * top_k_weights[tok, pos, None]
            final.index_add_(0, tok, out.to(final.dtype))
        return final


class MixtralLinearExpertsModel(modeling_mixtral.MixtralModel):
    """``MixtralModel`` with :class:`MixtralLinearExperts` in every layer."""

    def __init__(self, config: MixtralConfig):
        super().__init__(config)
        for layer in self.layers:
            layer.mlp.experts = MixtralLinearExperts(config)
        self.post_init()

    def _init_weights(self, module):
        if not isinstance(module, MixtralLinearExperts):  # its linears are initialised as linears
            super()._init_weights(module)


class MixtralLinearExpertsForCausalLM(MixtralForCausalLM):
    """``MixtralForCausalLM`` over :class:`MixtralLinearExpertsModel`."""

    def __init__(self, config: MixtralConfig):
        super().__init__(config)
        self.model = MixtralLinearExpertsModel(config)
        self.post_init()

    def _init_weights(self, module):
        if not isinstance(module, MixtralLinearExperts):
            super()._init_weights(module)


def _register_conversion() -> None:
    # Checkpoints name the MoE block "block_sparse_moe"; the module is "mlp". Expert keys are kept as they
    # are (no merging into fused tensors). Mappings are looked up by class name before model_type, so
    # registering both classes keeps the stock "mixtral" mapping (which fuses experts) off them, and the
    # stock classes are untouched.
    from transformers.conversion_mapping import WeightRenaming, register_checkpoint_conversion_mapping

    register_checkpoint_conversion_mapping(
        MixtralLinearExpertsForCausalLM.__name__, [WeightRenaming(".block_sparse_moe.", ".mlp.")],
        overwrite=True)
    register_checkpoint_conversion_mapping(MixtralLinearExpertsModel.__name__, [], overwrite=True)


_register_conversion()


def fused_to_linear_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn a stock (fused) transformers-5 Mixtral state dict into this class's layout (for tests/tools)."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".experts.gate_up_proj"):
            prefix = key[: -len("gate_up_proj")]
            inter = value.shape[1] // 2
            for e in range(value.shape[0]):
                out[f"{prefix}{e}.w1.weight"] = value[e, :inter].clone()
                out[f"{prefix}{e}.w3.weight"] = value[e, inter:].clone()
        elif key.endswith(".experts.down_proj"):
            prefix = key[: -len("down_proj")]
            for e in range(value.shape[0]):
                out[f"{prefix}{e}.w2.weight"] = value[e].clone()
        else:
            out[key] = value
    return out


def has_fused_experts() -> bool:
    """True when this transformers stores Mixtral experts as fused parameters (the case handled here)."""
    experts = getattr(modeling_mixtral, "MixtralExperts", None)
    return experts is not None and not issubclass(experts, (nn.ModuleList,))
