"""Blocks used by two or more papers."""
from common.layers.basic import (
    torch_bias_init,
    DropPath,
    LayerScale,
    Mlp,
    dense,
    dot_product_attention,
    gradient_barrier,
    drop_path_rates,
    torch_conv_init,
    torch_linear_init,
    trunc_normal,
)

__all__ = [
    "DropPath",
    "LayerScale",
    "Mlp",
    "dense",
    "dot_product_attention",
    "drop_path_rates",
    "torch_bias_init",
    "torch_conv_init",
    "torch_linear_init",
    "trunc_normal",
]
