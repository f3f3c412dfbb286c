"""CMT: the controllable music transformer (wzk1015/video-bgm-generation src/model.py,
src/utils.py; a fast-transformers `causal-linear` TransformerEncoder). Spec: §3.

Module names follow the official state dict (`encoder_emb_pitch`, `transformer_encoder/
layers_3/attention/query_projection`, `proj_type`, ...) so cmt/convert.py is a rename table.

Inputs: `prefix` int [B, 7, 3] (genre, key, instrument rows), `x` int [B, S, 9] in model
column order (cmt.encoding.MODEL_FIELDS). The transformer runs over [prefix (7) | music (S)];
position t of the music rows predicts row t + 1: stage 1 the type, stage 2 the other six
attributes from `project_concat_type([h, E_type(type)])` with the teacher-forced (training) or
sampled (inference) type.

The recurrent form (`init_cache`, `step_prefix`, `step_music`) runs the same weights one row
at a time with the linear-attention state (S, z) per layer: constant memory per step.
"""
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.basic import dense, torch_bias_init, torch_linear_init
from common.layers.linear_attention import CausalLinearAttentionLayer
from common.models import register_variants
from cmt.encoding import INIT_VOCAB, VOCAB

# model.py: emb_sizes of barbeat, type, beat_density, pitch, duration, instr, onset_density
EMB_SIZES = (64, 32, 64, 512, 128, 32, 64)
EMB_NAMES = ("barbeat", "type", "beat_density", "pitch", "duration", "instr", "onset_density")
HEADS = ("barbeat", "beat_density", "pitch", "duration", "instr", "onset_density")   # stage 2
INIT_NAMES = ("genre", "key", "instrument")
INIT_EMB, TIME_EMB, MAX_LEN, N_PREFIX = 64, 256, 20000, 7

VARIANTS = {
    # the released checkpoint (loss_8_params.pt): 39,006,324 trainable parameters
    "cmt": dict(d_model=512, num_layers=12, num_heads=8, ffn_dim=2048),
    # tests and the CPU demo: 272,500 / 849,780
    "tiny": dict(d_model=64, num_layers=2, num_heads=4, ffn_dim=128),
    "small": dict(d_model=128, num_layers=4, num_heads=4, ffn_dim=256),
}


def sinusoid_table(length: int, d: int) -> np.ndarray:
    """utils.BeatPositionalEncoding.pe in float32 (the checkpoint's own buffer is loaded over
    it: recomputing differs from torch's by up to 2e-3 at large ticks)."""
    position = np.arange(length, dtype=np.float32)[:, None]
    div = np.exp(np.arange(0, d, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / d))
    pe = np.zeros((length, d), np.float32)
    pe[:, 0::2] = np.sin(position * div)
    pe[:, 1::2] = np.cos(position * div)
    return pe


def _linear(features, fan_in, axes, name, dtype):
    return dense(features, axes, name=name, dtype=dtype, kernel_init=torch_linear_init,
                 bias_init=torch_bias_init(fan_in))


class ScaledEmbed(nn.Module):
    """utils.Embeddings: lookup x sqrt(dim), N(0, 1) init (PyTorch nn.Embedding)."""
    num: int
    features: int

    @nn.compact
    def __call__(self, idx):
        table = self.param("embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, None)),
                           (self.num, self.features))
        return jnp.take(table, idx, axis=0) * math.sqrt(self.features)


class EncoderLayer(nn.Module):
    """fast-transformers TransformerEncoderLayer (post-norm, exact GELU, LN eps 1e-5)."""
    d_model: int
    num_heads: int
    ffn_dim: int
    dropout: float
    chunk: int
    dtype: Any

    def setup(self):
        self.attention = CausalLinearAttentionLayer(self.num_heads, self.d_model // self.num_heads, self.d_model,
                                                    chunk=self.chunk, dtype=self.dtype)
        self.linear1 = _linear(self.ffn_dim, self.d_model, ("embed", "mlp"), "linear1", self.dtype)
        self.linear2 = _linear(self.d_model, self.ffn_dim, ("mlp", "embed"), "linear2", self.dtype)
        self.norm1 = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)
        self.norm2 = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)
        self.drop = nn.Dropout(self.dropout)

    def _ffn(self, x, train):
        y = self.drop(nn.gelu(self.linear1(x), approximate=False), deterministic=not train)
        return self.norm2(x + self.drop(self.linear2(y), deterministic=not train))

    def __call__(self, x, train: bool = False):
        x = self.norm1(x + self.drop(self.attention(x), deterministic=not train))
        return self._ffn(x, train)

    def step(self, x, state):
        a, state = self.attention.step(x, state)
        return self._ffn(self.norm1(x + a), False), state


class Encoder(nn.Module):
    d_model: int
    num_layers: int
    num_heads: int
    ffn_dim: int
    dropout: float
    chunk: int
    dtype: Any

    def setup(self):
        self.layers = [EncoderLayer(self.d_model, self.num_heads, self.ffn_dim, self.dropout, self.chunk,
                                    self.dtype, name=f"layers_{i}") for i in range(self.num_layers)]
        self.norm = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)

    def __call__(self, x, train: bool = False):
        for layer in self.layers:
            x = layer(x, train)
        return self.norm(x)

    def step(self, x, states):
        new = []
        for layer, st in zip(self.layers, states):
            x, st = layer.step(x, st)
            new.append(st)
        return self.norm(x), tuple(new)

    def init_states(self, batch):
        return tuple(layer.attention.init_state(batch) for layer in self.layers)


class CMT(nn.Module):
    d_model: int = 512
    num_layers: int = 12
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    vocab: tuple = VOCAB
    init_vocab: tuple = INIT_VOCAB
    chunk: int = 64
    dtype: Any = jnp.float32

    def setup(self):
        d, dt = self.d_model, self.dtype
        for name, n in zip(INIT_NAMES, self.init_vocab):
            setattr(self, f"init_emb_{name}", ScaledEmbed(n, INIT_EMB, name=f"init_emb_{name}"))
        self.init_in_linear = _linear(d, 3 * INIT_EMB, (None, "embed"), "init_in_linear", dt)
        for name, n, size in zip(EMB_NAMES, self.vocab, EMB_SIZES):
            setattr(self, f"encoder_emb_{name}", ScaledEmbed(n, size, name=f"encoder_emb_{name}"))
        self.encoder_emb_time_encoding = ScaledEmbed(self.vocab[7], TIME_EMB, name="encoder_emb_time_encoding")
        self.encoder_in_linear = _linear(d, sum(EMB_SIZES), (None, "embed"), "encoder_in_linear", dt)
        self.encoder_time_linear = _linear(d, TIME_EMB, (None, "embed"), "encoder_time_linear", dt)
        self.pe = self.variable("buffers", "pe", lambda: jnp.asarray(sinusoid_table(MAX_LEN, d)))
        self.transformer_encoder = Encoder(d, self.num_layers, self.num_heads, self.ffn_dim, self.dropout,
                                           self.chunk, dt)
        self.project_concat_type = _linear(d, d + EMB_SIZES[1], (None, "embed"), "project_concat_type", dt)
        for name, n in zip(EMB_NAMES, self.vocab):
            setattr(self, f"proj_{name}", _linear(n, d, ("embed", None), f"proj_{name}", dt))
        self.drop = nn.Dropout(self.dropout)

    # ------------------------------------------------------------------ embeddings
    def embed_prefix(self, prefix):
        """forward_init_token: [B, 7, 3] -> [B, 7, d]; no positional encoding, no dropout."""
        e = jnp.concatenate([getattr(self, f"init_emb_{n}")(prefix[..., i]) for i, n in enumerate(INIT_NAMES)], -1)
        return self.init_in_linear(e.astype(self.dtype))

    def embed_music(self, x, train: bool = False):
        """forward_hidden's embedding: [B, S, 9] -> [B, S, d] with the beat positional
        encoding indexed by the tick (column 8) and dropout."""
        e = jnp.concatenate([getattr(self, f"encoder_emb_{n}")(x[..., i]) for i, n in enumerate(EMB_NAMES)], -1)
        h = self.encoder_in_linear(e.astype(self.dtype)) + self.encoder_time_linear(
            self.encoder_emb_time_encoding(x[..., 7]).astype(self.dtype))
        h = h + jnp.take(self.pe.value, x[..., 8], axis=0).astype(self.dtype)
        return self.drop(h, deterministic=not train)

    # ------------------------------------------------------------------ heads
    def type_logits(self, h):
        return self.proj_type(h)

    def attribute_logits(self, h, type_ids):
        """Stage 2: the six other attributes given the (teacher-forced or sampled) type."""
        u = self.project_concat_type(jnp.concatenate([h, self.encoder_emb_type(type_ids).astype(h.dtype)], -1))
        return {name: getattr(self, f"proj_{name}")(u) for name in HEADS}

    # ------------------------------------------------------------------ parallel form
    def hidden(self, prefix, x, train: bool = False):
        """Transformer output at the music rows [B, S, d] (official forward_hidden h[:, 7:])."""
        seq = jnp.concatenate([self.embed_prefix(prefix), self.embed_music(x, train)], 1)
        return self.transformer_encoder(seq, train)[:, prefix.shape[1]:]

    def __call__(self, prefix, x, target_type, train: bool = False):
        """Logits {attribute: [B, S, vocab]} (the official train_forward's seven outputs)."""
        h = self.hidden(prefix, x, train)
        return {"type": self.type_logits(h), **self.attribute_logits(h, target_type), "hidden": h}

    # ------------------------------------------------------------------ recurrent form
    def init_cache(self, batch: int):
        return self.transformer_encoder.init_states(batch)

    def step_prefix(self, prefix_row, cache):
        """One init row [B, 3] through the recurrent encoder -> (h [B, d], cache)."""
        return self.transformer_encoder.step(self.embed_prefix(prefix_row[:, None])[:, 0], cache)

    def step_music(self, row, cache):
        """One music row [B, 9] -> (h [B, d], cache); h gives the next row's logits."""
        return self.transformer_encoder.step(self.embed_music(row[:, None])[:, 0], cache)


def create_model(variant: str, **overrides) -> CMT:
    return CMT(**{**VARIANTS[variant], **overrides})


register_variants(__name__, VARIANTS, create_model)


def init_variables(model: CMT, rng=None, length: int = 4):
    rng = jax.random.PRNGKey(0) if rng is None else rng
    x = jnp.zeros((1, length, 9), jnp.int32)
    return model.init({"params": rng, "dropout": rng}, jnp.zeros((1, N_PREFIX, 3), jnp.int32), x,
                      jnp.zeros((1, length), jnp.int32))


def count_params(model: CMT) -> int:
    shapes = jax.eval_shape(lambda: nn.meta.unbox(init_variables(model)["params"]))
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(shapes))
