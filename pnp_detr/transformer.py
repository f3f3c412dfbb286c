"""DETR's post-norm transformer (DETR models/transformer.py, as the PnP-DETR fork runs it):
encoder layers on (sampled) tokens with the position embedding added to queries and
keys, decoder layers from zero targets with the query embedding added at every layer and
one shared final LayerNorm applied to every layer's output.

Initialisation as the official `Transformer._reset_parameters`: Xavier-uniform on every
>= 2-d weight of encoder and decoder (the fused in_proj is one (3d, d) matrix, so its q,
k and v parts share the bound of that shape), attention biases zero (torch
nn.MultiheadAttention), FFN biases PyTorch's default U(+-1/sqrt(fan_in)), LayerNorm eps 1e-5.
Tensors are batch-first here: [B, T, d] where torch uses [T, B, d].
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.layers.basic import Dtype, dense, torch_bias_init
from pnp_detr.sampler import SampledTokens, SortSampler

LN_EPS = 1e-5   # torch nn.LayerNorm


def xavier_uniform(fan_in: int, fan_out: int):
    """torch.nn.init.xavier_uniform_ of a (fan_out, fan_in) matrix, for a kernel of any shape."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LN_EPS, dtype=dtype, name=name,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


def with_pos(x, pos):
    return x if pos is None else x + pos.astype(x.dtype)


class MultiheadAttention(nn.Module):
    """torch nn.MultiheadAttention: q / k / v projections (the fused `in_proj` split in
    three, each [d, heads, d / heads]), softmax(q k^T / sqrt(d / heads)) over the keys that
    `key_valid` [B, S] marks True, dropout on the attention weights, `out_proj`."""
    num_heads: int
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, query, key, value, key_valid=None, deterministic: bool = True):
        d = query.shape[-1]
        head_dim = d // self.num_heads

        def project(name, x):
            return nn.DenseGeneral(
                (self.num_heads, head_dim), dtype=self.dtype, name=name,
                kernel_init=nn.with_logical_partitioning(xavier_uniform(d, 3 * d), ("embed", "heads", "kv")),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("heads", "kv")))(x)

        q = project("query", query) * jnp.asarray(head_dim ** -0.5, self.dtype)
        k = project("key", key)
        v = project("value", value)
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k).astype(jnp.float32)
        if key_valid is not None:
            logits = jnp.where(key_valid[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhc->bqhc", weights, v)
        return nn.DenseGeneral(
            d, axis=(-2, -1), dtype=self.dtype, name="out_proj",
            kernel_init=nn.with_logical_partitioning(xavier_uniform(d, d), ("heads", "kv", "embed")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))(out)


def feed_forward(x, ffn_dim: int, dropout: float, dtype: Dtype, deterministic: bool):
    """linear1 -> ReLU -> dropout -> linear2, created as `linear1` / `linear2` of the calling layer."""
    d = x.shape[-1]
    h = dense(ffn_dim, ("embed", "mlp"), name="linear1", dtype=dtype,
              kernel_init=xavier_uniform(d, ffn_dim), bias_init=torch_bias_init(d))(x)
    h = nn.Dropout(dropout)(nn.relu(h), deterministic=deterministic)
    return dense(d, ("mlp", "embed"), name="linear2", dtype=dtype,
                 kernel_init=xavier_uniform(ffn_dim, d), bias_init=torch_bias_init(ffn_dim))(h)


class EncoderLayer(nn.Module):
    """`TransformerEncoderLayer.forward_post`."""
    num_heads: int
    ffn_dim: int
    dropout: float = 0.1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, src, pos, key_valid, deterministic: bool = True):
        def drop(x):
            return nn.Dropout(self.dropout)(x, deterministic=deterministic)
        q = k = with_pos(src, pos)
        attn = MultiheadAttention(self.num_heads, self.dropout, self.dtype, name="self_attn")
        src = layer_norm("norm1", self.dtype)(src + drop(attn(q, k, src, key_valid, deterministic)))
        ffn = feed_forward(src, self.ffn_dim, self.dropout, self.dtype, deterministic)
        return layer_norm("norm2", self.dtype)(src + drop(ffn))


class DecoderLayer(nn.Module):
    """`TransformerDecoderLayer.forward_post`."""
    num_heads: int
    ffn_dim: int
    dropout: float = 0.1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tgt, memory, memory_pos, memory_valid, query_pos, deterministic: bool = True):
        def drop(x):
            return nn.Dropout(self.dropout)(x, deterministic=deterministic)

        def attention(name):
            return MultiheadAttention(self.num_heads, self.dropout, self.dtype, name=name)
        q = k = with_pos(tgt, query_pos)
        tgt = layer_norm("norm1", self.dtype)(tgt + drop(attention("self_attn")(q, k, tgt, None, deterministic)))
        cross = attention("multihead_attn")(with_pos(tgt, query_pos), with_pos(memory, memory_pos), memory,
                                            memory_valid, deterministic)
        tgt = layer_norm("norm2", self.dtype)(tgt + drop(cross))
        ffn = feed_forward(tgt, self.ffn_dim, self.dropout, self.dtype, deterministic)
        return layer_norm("norm3", self.dtype)(tgt + drop(ffn))


class Encoder(nn.Module):
    """`TransformerEncoder` without a final norm (post-norm DETR)."""
    num_layers: int
    num_heads: int
    ffn_dim: int
    dropout: float = 0.1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, src, pos, key_valid, deterministic: bool = True):
        src = src.astype(self.dtype)
        for i in range(self.num_layers):
            src = EncoderLayer(self.num_heads, self.ffn_dim, self.dropout, self.dtype,
                               name=f"layers_{i}")(src, pos, key_valid, deterministic)
        return src


class Decoder(nn.Module):
    """`TransformerDecoder(return_intermediate=True)`: targets start at zeros; returns the
    shared final `norm` of every layer's output, [num_layers, B, Q, d]."""
    num_layers: int
    num_heads: int
    ffn_dim: int
    dropout: float = 0.1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, memory, memory_pos, memory_valid, query_pos, deterministic: bool = True):
        b, d = memory.shape[0], memory.shape[-1]
        query_pos = jnp.broadcast_to(query_pos[None], (b,) + query_pos.shape)
        tgt = jnp.zeros((b, query_pos.shape[1], d), self.dtype)
        norm = layer_norm("norm", self.dtype)
        outputs = []
        for i in range(self.num_layers):
            tgt = DecoderLayer(self.num_heads, self.ffn_dim, self.dropout, self.dtype, name=f"layers_{i}")(
                tgt, memory, memory_pos, memory_valid, query_pos, deterministic)
            outputs.append(norm(tgt))
        return jnp.stack(outputs)


def all_cells(x, valid, pos) -> SampledTokens:
    """Plain DETR: every feature cell is a token, padded cells masked."""
    b, cells, _ = x.shape
    index = jnp.broadcast_to(jnp.arange(cells, dtype=jnp.int32)[None], (b, cells))
    return SampledTokens(tokens=x, pos=pos, valid=valid, poll_index=index, poll_valid=valid,
                         sample_reg_loss=jnp.zeros((), jnp.float32))


class Transformer(nn.Module):
    """The official `Transformer.forward`: the PnP sampler (or, `use_sampler=False`, plain
    DETR's every cell) -> encoder -> decoder. Returns the decoder outputs [layers, B, Q, d]
    and the tokens the encoder ran on; the encoder memory is sown as
    intermediates/transformer/memory."""
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    use_sampler: bool = True
    num_pool_tokens: int = 30
    score_net: str = "2layer-fc-256"
    pool_logits_net: str = "1layer-fc"
    pos_in_pool_logits: bool = False
    max_alpha: float = 0.8
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, valid, pos, query_pos, alpha, deterministic: bool = True):
        """x [B, L, d] projected features, valid [B, L], pos [B, L, d], query_pos [Q, d]."""
        if self.use_sampler:
            sampled = SortSampler(self.num_pool_tokens, self.score_net, self.pool_logits_net,
                                  self.pos_in_pool_logits, self.max_alpha, self.dtype, name="sampler")(
                x, valid, pos, alpha)
        else:
            sampled = all_cells(x, valid, pos)
        memory = Encoder(self.num_encoder_layers, self.num_heads, self.ffn_dim, self.dropout, self.dtype,
                         name="encoder")(sampled.tokens, sampled.pos, sampled.valid, deterministic)
        self.sow("intermediates", "memory", memory)
        hidden = Decoder(self.num_decoder_layers, self.num_heads, self.ffn_dim, self.dropout, self.dtype,
                         name="decoder")(memory, sampled.pos, sampled.valid, query_pos, deterministic)
        return hidden, sampled
