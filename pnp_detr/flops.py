"""XLA's FLOP count of the PnP-DETR transformer (sampler + encoder + decoder) at a poll
ratio: the paper's efficiency claim, measured on the compiled program (nothing runs).

A Python-float alpha compiles a program with exactly trunc(L alpha) fine slots; a traced
alpha (training) has trunc(max_alpha L) slots, so it costs what alpha = max_alpha costs.
XLA counts a multiply-add as 2 FLOPs and also counts element-wise work.
"""
import jax
import jax.numpy as jnp

from pnp_detr.transformer import Transformer


def transformer_flops(cells: int, alpha, *, hidden_dim: int = 256, num_queries: int = 100,
                      use_sampler: bool = True, **transformer_fields) -> float:
    """FLOPs of the transformer on one image whose `cells` feature cells are all valid;
    `alpha` a float, or a jax.ShapeDtypeStruct for the training program's traced ratio."""
    model = Transformer(use_sampler=use_sampler, **transformer_fields)
    x = jax.ShapeDtypeStruct((1, cells, hidden_dim), jnp.float32)
    valid = jax.ShapeDtypeStruct((1, cells), jnp.bool_)
    query_pos = jax.ShapeDtypeStruct((num_queries, hidden_dim), jnp.float32)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x.shape), jnp.ones(valid.shape, bool),
                                               jnp.zeros(x.shape), jnp.zeros(query_pos.shape), 0.5))
    if isinstance(alpha, jax.ShapeDtypeStruct):
        fn = jax.jit(lambda p, x, v, pos, qp, a: model.apply(p, x, v, pos, qp, a)[0])
        compiled = fn.lower(params, x, valid, x, query_pos, alpha).compile()
    else:
        fn = jax.jit(lambda p, x, v, pos, qp: model.apply(p, x, v, pos, qp, alpha)[0])
        compiled = fn.lower(params, x, valid, x, query_pos).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def model_transformer_flops(model, canvas: tuple[int, int], alpha) -> float:
    """`transformer_flops` for a PnPDETR module on an image filling `canvas` (h, w)."""
    stride = 16 if model.dilation else 32
    cells = -(-canvas[0] // stride) * -(-canvas[1] // stride)
    return transformer_flops(
        cells, alpha, hidden_dim=model.hidden_dim, num_queries=model.num_queries, use_sampler=model.use_sampler,
        num_heads=model.num_heads, ffn_dim=model.ffn_dim, num_encoder_layers=model.num_encoder_layers,
        num_decoder_layers=model.num_decoder_layers, num_pool_tokens=model.num_pool_tokens,
        score_net=model.score_net, pool_logits_net=model.pool_logits_net,
        pos_in_pool_logits=model.pos_in_pool_logits, max_alpha=model.max_alpha)
