"""PnP-DETR (Wang et al., ICCV 2021) and plain DETR (Carion et al., ECCV 2020) in one
module: ResNet backbone with FrozenBatchNorm -> 1x1 input projection -> [PnP sampler] ->
post-norm transformer -> class and box heads on every decoder layer (official
models/detr.py `DETR`, models/backbone.py, models/transformer.py).

  model = create_model("pnp_detr_r50")
  out = model.apply(variables, images, pixel_mask, alpha, train=True, rngs={"dropout": key})

images [B, H, W, 3] normalised and zero-padded bottom / right; pixel_mask [B, H, W] True on
valid (un-padded) pixels; alpha the poll ratio: a Python float compiles one program for
that ratio, a jax scalar (e.g. drawn per step) runs any ratio <= max_alpha in one program.
Returns
  pred_logits [layers, B, Q, K + 1], pred_boxes [layers, B, Q, 4] (sigmoid cx, cy, w, h
  relative to each image's valid size), sample_reg_loss (scalar; 0 for DETR),
  poll_index [B, N_cap] int32 (flat cell of each fine slot in the H_f x W_f grid; every
  cell for DETR), poll_valid [B, N_cap] bool, feature_shape (H_f, W_f).
Parameter names follow the official state_dict (pnp_detr/convert.py is a rename table).
The stem and layer1 get no gradient; FROZEN_PARAMS names them for the optimizer.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from common.layers.basic import Dtype
from common.layers.resnet import ResNet
from pnp_detr.position import downsample_mask, sine_position_embedding
from pnp_detr.sampler import torch_dense
from pnp_detr.transformer import Transformer

# Regexes over parameter paths (common.optim groups): the frozen stem + layer1 (DETR trains
# only layer2..4 of the backbone) and the whole backbone (lr 1e-5 instead of 1e-4).
FROZEN_PARAMS = r"^backbone/(stem|layer1_\d+)/"
BACKBONE_PARAMS = r"^backbone/"


class BoxHead(nn.Module):
    """models/detr.py `MLP(d, d, 4, 3)` then sigmoid: normalised (cx, cy, w, h)."""
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        x = nn.relu(torch_dense(d, d, ("embed", "mlp"), "layers_0", self.dtype)(x))
        x = nn.relu(torch_dense(d, d, ("mlp", "embed"), "layers_1", self.dtype)(x))
        return jax.nn.sigmoid(torch_dense(4, d, ("embed", None), "layers_2", self.dtype)(x).astype(jnp.float32))


class PnPDETR(nn.Module):
    """See the module docstring; `use_sampler=False` is plain DETR."""
    num_classes: int = 91
    backbone_layers: tuple = (3, 4, 6, 3)
    backbone_block: str = "bottleneck"
    backbone_base_width: int = 64
    backbone_planes: tuple = (64, 128, 256, 512)   # torchvision's; the CPU demo narrows them
    dilation: bool = False                # DC5: layer4 dilated, stride 16
    # DETR: FrozenBatchNorm everywhere and stem + layer1 frozen (models/backbone.py); a model
    # trained from scratch (the CPU demo) needs "batch" and 0
    backbone_norm: str = "frozen"
    frozen_stages: int = 1
    hidden_dim: int = 256
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    num_queries: int = 100
    use_sampler: bool = True
    num_pool_tokens: int = 30             # M
    score_net: str = "2layer-fc-256"
    pool_logits_net: str = "1layer-fc"
    pos_in_pool_logits: bool = False
    max_alpha: float = 0.8
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images, pixel_mask, alpha=None, train: bool = False):
        if self.use_sampler and alpha is None:
            raise ValueError("PnP-DETR needs the poll ratio alpha")
        backbone = ResNet(layers=self.backbone_layers, block=self.backbone_block, base_width=self.backbone_base_width,
                          planes=self.backbone_planes,
                          norm=self.backbone_norm, frozen_stages=self.frozen_stages,
                          replace_stride_with_dilation=(False, False, self.dilation),
                          dtype=self.dtype, name="backbone")
        features = backbone(images, train=train, features=("layer4",))["layer4"]     # [B, H_f, W_f, C]
        b, h, w, _ = features.shape
        valid = downsample_mask(jnp.asarray(pixel_mask).astype(bool), (h, w))
        pos = sine_position_embedding(valid, self.hidden_dim // 2).reshape(b, h * w, self.hidden_dim)
        x = torch_dense(self.hidden_dim, features.shape[-1], ("conv_out", "embed"), "input_proj", self.dtype)(features)
        query_pos = self.param("query_embed", nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, "embed")),
                               (self.num_queries, self.hidden_dim))
        transformer = Transformer(self.num_heads, self.ffn_dim, self.dropout, self.num_encoder_layers,
                                  self.num_decoder_layers, self.use_sampler, self.num_pool_tokens, self.score_net,
                                  self.pool_logits_net, self.pos_in_pool_logits, self.max_alpha, self.dtype,
                                  name="transformer")
        hidden, sampled = transformer(x.reshape(b, h * w, self.hidden_dim), valid.reshape(b, h * w), pos,
                                      query_pos.astype(self.dtype), alpha, deterministic=not train)
        logits = torch_dense(self.num_classes + 1, self.hidden_dim, ("embed", "classes"), "class_embed",
                             self.dtype)(hidden)
        return {"pred_logits": logits.astype(jnp.float32),
                "pred_boxes": BoxHead(self.dtype, name="bbox_embed")(hidden),
                "sample_reg_loss": sampled.sample_reg_loss,
                "poll_index": sampled.poll_index,
                "poll_valid": sampled.poll_valid,
                "feature_shape": (h, w)}


_DETR = dict(use_sampler=False)
_R50 = dict(backbone_layers=(3, 4, 6, 3))
_R101 = dict(backbone_layers=(3, 4, 23, 3))
_DC5 = dict(dilation=True)
# M = 30 at stride 32 and 100 with DC5 (official main.py, --unsample_abstract_number 0).
VARIANTS = {
    "detr_r50": {**_R50, **_DETR},
    "detr_r50_dc5": {**_R50, **_DC5, **_DETR},
    "detr_r101": {**_R101, **_DETR},
    "detr_r101_dc5": {**_R101, **_DC5, **_DETR},
    "pnp_detr_r50": {**_R50, "num_pool_tokens": 30},
    "pnp_detr_r50_dc5": {**_R50, **_DC5, "num_pool_tokens": 100},
    "pnp_detr_r101": {**_R101, "num_pool_tokens": 30},
    "pnp_detr_r101_dc5": {**_R101, **_DC5, "num_pool_tokens": 100},
    # tests and demos: a one-block-per-stage R50 with thin bottlenecks (layer4 has two blocks
    # so the second is dilated), DC5 so 128 px images give an 8 x 8 grid; <= 128 px inputs
    "tiny": dict(backbone_layers=(1, 1, 1, 2), backbone_base_width=16, dilation=True, hidden_dim=32,
                 num_heads=4, ffn_dim=64, num_encoder_layers=2, num_decoder_layers=2, num_queries=10,
                 num_pool_tokens=4),
}
VARIANTS["tiny_detr"] = {**VARIANTS["tiny"], **_DETR}


def create_model(name: str, num_classes: int = 91, dtype=jnp.float32, **overrides) -> PnPDETR:
    if name not in VARIANTS:
        raise KeyError(f"unknown PnP-DETR variant {name!r}; known: {sorted(VARIANTS)}")
    return PnPDETR(**{**VARIANTS[name], "num_classes": num_classes, "dtype": dtype, **overrides})
