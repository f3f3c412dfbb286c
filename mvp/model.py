"""MvP: the multi-view pose transformer (sail-sg/mvp lib/models/multi_view_pose_transformer.py,
mvp_decoder.py, ops/modules/projattn.py, pose_resnet.py), with the official semantics of
../shared/specs/mvp.md section 3, quirks included:

- features: the three ConvTranspose outputs of PoseResNet *before* their BN/ReLU, reversed
  (level 0 = stride 4); the reference feature is sampled from them raw, the value is RayConv'd;
- projective attention: the 64- / 32-wide offset / weight linears (sized for one level) are
  applied to the 3 level inputs and the outputs *reshaped row-major* (never transposed) to
  [M, L, P, 2] / [M, L*P]; per-level coordinates stretched by W_l / (W_l - 1); the reference
  feature grid clamped to +-1.1, deformable locations not; out-of-image views give exactly 0;
- refinement in the normalised room cube, reference points detached before every projection
  and between layers (the output path of layer 0 keeps its gradient into r0).

Layout: images [B, V, H, W, 3] and every camera array [B, V, ...] (the official code is
correct only for B = 1: at B = 1 this equals it; for B > 1 each example is computed as if
alone, a documented deviation, see section 9.7). Parameter names follow the official
state_dict (mvp/convert.py is a rename table).
"""
import math
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.resnet import BasicBlock, Bottleneck, ResNetStem, bn, resnet_stage
from mvp import cameras

# sail-sg/mvp configs: panoptic/best_model_config.yaml, shelf/mvp_shelf.yaml, campus/mvp_campus.yaml.
PANOPTIC = dict(depth=50, deconv=256, d_model=256, heads=8, points=4, ffn=1024, layers=6, persons=10,
                joints=15, views=5, image_size=(960, 512), space_center=(0.0, -500.0, 800.0),
                space_size=(8000.0, 8000.0, 2000.0))
TO_14_JOINTS = (14, 13, 12, 6, 7, 8, 11, 10, 9, 3, 4, 5, 0, 1)   # convert_joint_format_indices
VARIANTS = {
    "panoptic": PANOPTIC,
    "shelf": dict(PANOPTIC, image_size=(800, 608), space_center=(450.0, -320.0, 800.0), output_joints=TO_14_JOINTS),
    "campus": dict(PANOPTIC, views=3, image_size=(1000, 800), space_center=(3000.0, 4500.0, 1000.0),
                   space_size=(12000.0, 12000.0, 2000.0), output_joints=TO_14_JOINTS),
    # the CPU model of the spec's section 6.4 (stand-in, tests, demo)
    "tiny": dict(depth=18, deconv=32, d_model=32, heads=4, points=4, ffn=64, layers=2, persons=4, joints=15,
                 views=3, image_size=(192, 96), space_center=(0.0, 0.0, 800.0), space_size=(8000.0, 8000.0, 2000.0)),
}
RESNETS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
           101: ("bottleneck", (3, 4, 23, 3))}
POSEMBED = ("rayconv", "coordconv", "none")   # use_rayconv | use_2d_coordconv | ablation_not_use_rayconv
QUERY_EMBEDS = ("person_joint", "image_person_joint", "per_joint")


# ---------------------------------------------------------------------- initialisers (PyTorch's)
def torch_uniform(fan_in: int):
    """nn.Linear's default U(+-1/sqrt(fan_in)), for weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def xavier(fan_in: int, fan_out: int):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def dense(features: int, fan_in: int, name: str, dtype, kernel_init=None, bias_init=None):
    return nn.Dense(features, dtype=dtype, name=name, kernel_init=kernel_init or torch_uniform(fan_in),
                    bias_init=bias_init or torch_uniform(fan_in))


def inverse_sigmoid(x, eps: float = 1e-5):
    x = jnp.clip(x, 0.0, 1.0)
    return jnp.log(jnp.maximum(x, eps) / jnp.maximum(1.0 - x, eps))


# ---------------------------------------------------------------------- bilinear sampling
def bilinear(image, x, y):
    """image [N, H, W, C] sampled at pixel coordinates x, y [N, K] -> [N, K, C]: bilinear with
    zero padding outside, pixel centres at integers (grid_sample(zeros, align_corners=False)
    with x = u W - 0.5; the CUDA kernel's `h_im = loc H - 0.5`)."""
    n, h, w, c = image.shape
    flat = image.reshape(n, h * w, c)
    x0, y0 = jnp.floor(x), jnp.floor(y)
    xi = jnp.stack([x0, x0 + 1, x0, x0 + 1], -1)                         # N K 4 corners
    yi = jnp.stack([y0, y0, y0 + 1, y0 + 1], -1)
    weight = (1 - jnp.abs(x[..., None] - xi)) * (1 - jnp.abs(y[..., None] - yi))
    valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
    idx = (jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)).astype(jnp.int32)
    gathered = jax.vmap(lambda im, i: im[i])(flat, idx.reshape(n, -1)).reshape(idx.shape + (c,))   # one gather
    return jnp.einsum("nkjc,nkj->nkc", gathered, jnp.where(valid, weight, 0.0).astype(image.dtype))


def sample_normalised(image, loc):
    """image [N, H, W, C] at normalised locations loc [N, K, 2] in [0, 1] (x, y) -> [N, K, C]."""
    h, w = image.shape[1:3]
    return bilinear(image, loc[..., 0] * w - 0.5, loc[..., 1] * h - 0.5)


# ---------------------------------------------------------------------- backbone
class PoseResNet(nn.Module):
    """SimpleBaseline: ResNet (torchvision layout, common/layers/resnet.py) + 3 x [ConvTranspose
    (k4, s2, p1, no bias) -> BN -> ReLU]; returns the ConvTranspose outputs before their BN,
    reversed: [stride 4, stride 8, stride 16]. `final_layer` (1x1 -> joints heatmaps) exists for
    the checkpoint and the parameter count but is unused, as in the official forward."""
    depth: int = 50
    deconv: Sequence[int] = (256, 256, 256)
    joints: int = 15
    dtype: jnp.dtype = jnp.float32
    blocks: Sequence[int] | None = None          # blocks per stage instead of the depth's (CPU test model)

    @nn.compact
    def __call__(self, x, train: bool = False):
        block, layers = RESNETS[self.depth]
        layers = tuple(self.blocks) if self.blocks is not None else layers
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
        x = ResNetStem(self.dtype, name="stem")(x.astype(self.dtype), train)
        for i, (blocks, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            x = resnet_stage(x, planes, blocks, 1 if i == 0 else 2, 1, 64, f"layer{i + 1}", train, self.dtype,
                             block=block)
        feats = []
        for i, width in enumerate(self.deconv):
            x = nn.ConvTranspose(width, (4, 4), (2, 2), padding=((2, 2), (2, 2)), use_bias=False, dtype=self.dtype,
                                 kernel_init=nn.initializers.normal(0.001), name=f"deconv_layers_{3 * i}")(x)
            feats.append(x)
            x = nn.relu(bn(train, f"deconv_layers_{3 * i + 1}", self.dtype)(x))
        nn.Conv(self.joints, (1, 1), dtype=self.dtype, kernel_init=nn.initializers.normal(0.001),
                name="final_layer")(x)                                   # unused (official forward)
        return feats[::-1]


# ---------------------------------------------------------------------- projective attention
class ProjAttn(nn.Module):
    d_model: int = 256
    heads: int = 8
    points: int = 4
    posembed: str = "rayconv"
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        d, m, p = self.d_model, self.heads, self.points
        theta = np.arange(m) * (2.0 * math.pi / m)
        grid = np.stack([np.cos(theta), np.sin(theta)], -1)
        grid = grid / np.abs(grid).max(-1, keepdims=True)
        grid = (grid[:, None, :] * np.arange(1, p + 1)[None, :, None]).reshape(-1)   # [M, (1 level), P, 2]
        self.sampling_offsets = dense(m * p * 2, d, "sampling_offsets", self.dtype, nn.initializers.zeros,
                                      lambda *_: jnp.asarray(grid, jnp.float32))
        self.attention_weights = dense(m * p, d, "attention_weights", self.dtype, nn.initializers.zeros,
                                       nn.initializers.zeros)
        extra = {"rayconv": 3, "coordconv": 2, "none": 0}[self.posembed]
        self.rayconv = dense(d, d + extra, "rayconv", self.dtype, xavier(d + extra, d), nn.initializers.zeros)
        self.output_proj = dense(d, d, "output_proj", self.dtype, xavier(d, d), nn.initializers.zeros)

    def values(self, feats, embeds):
        """RayConv: value_l = Linear([F_l ; ray_l]) per pixel, split into heads:
        [B, V, H_l, W_l, M, d/M] per level."""
        out = []
        for f, e in zip(feats, embeds):
            x = f if e is None else jnp.concatenate([f, e.astype(f.dtype)], -1)
            v = self.rayconv(x)
            out.append(v.reshape(v.shape[:-1] + (self.heads, self.d_model // self.heads)))
        return out

    def __call__(self, query, ref, feats, values):
        """query [B, Q, d]; ref [B, V, Q, L, 2] (normalised, stretched per level); feats /
        values: per level [B, V, H_l, W_l, d] / [B, V, H_l, W_l, M, d/M] -> [B, V, Q, d]."""
        b, v, q, nl, _ = ref.shape
        m, p, dh = self.heads, self.points, self.d_model // self.heads
        grid = (jnp.clip(ref * 2.0 - 1.0, -1.1, 1.1) + 1.0) / 2.0
        ref_feat = jnp.stack([
            sample_normalised(f.reshape((b * v,) + f.shape[2:]), grid[:, :, :, l].reshape(b * v, q, 2)).reshape(b, v, q, -1)
            for l, f in enumerate(feats)], 3)                             # B V Q L d
        s = ref_feat + query[:, None, :, None, :]
        # the official raw reshape of (L, 64) -> (M, L, P, 2) and (L, 32) -> (M, L*P) (spec 3.5)
        offsets = self.sampling_offsets(s).reshape(b, v, q, m, nl, p, 2)
        weights = jax.nn.softmax(self.attention_weights(s).reshape(b, v, q, m, nl * p), -1).reshape(b, v, q, m, nl, p)
        shapes = jnp.asarray([[f.shape[3], f.shape[2]] for f in feats], ref.dtype)     # (W_l, H_l)
        loc = ref[:, :, :, None, :, None, :] + offsets / shapes[None, None, None, None, :, None, :]
        out = 0.0
        for l, val in enumerate(values):
            hl, wl = val.shape[2:4]
            img = val.transpose(0, 1, 4, 2, 3, 5).reshape(b * v * m, hl, wl, dh)
            pts = loc[:, :, :, :, l].transpose(0, 1, 3, 2, 4, 5).reshape(b * v * m, q * p, 2)
            sampled = sample_normalised(img, pts).reshape(b, v, m, q, p, dh)
            out = out + jnp.einsum("bvmqpc,bvqmp->bvqmc", sampled, weights[:, :, :, :, l])
        return self.output_proj(out.reshape(b, v, q, m * dh))


class DecoderLayer(nn.Module):
    """MvPDecoderLayer (post-norm): self-attention over all joint queries, projective attention
    per view fused by concatenation + Linear, FFN."""
    d_model: int = 256
    heads: int = 8
    points: int = 4
    ffn: int = 1024
    views: int = 5
    dropout: float = 0.1
    posembed: str = "rayconv"
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        d = self.d_model
        self.proj_attn = ProjAttn(d, self.heads, self.points, self.posembed, self.dtype)
        in_bound = xavier(d, 3 * d)
        self.self_attn = nn.MultiHeadDotProductAttention(
            num_heads=self.heads, qkv_features=d, out_features=d, dropout_rate=self.dropout, dtype=self.dtype,
            kernel_init=in_bound, bias_init=nn.initializers.zeros, out_kernel_init=torch_uniform(d),
            out_bias_init=nn.initializers.zeros)
        self.norm1 = nn.LayerNorm(1e-5, dtype=self.dtype)
        self.norm2 = nn.LayerNorm(1e-5, dtype=self.dtype)
        self.norm3 = nn.LayerNorm(1e-5, dtype=self.dtype)
        self.linear1 = dense(self.ffn, d, "linear1", self.dtype)
        self.linear2 = dense(d, self.ffn, "linear2", self.dtype)
        self.fuse_view_projction = dense(d, d * self.views, "fuse_view_projction", self.dtype)
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, tgt, query_pos, ref, bounding, feats, embeds, train: bool):
        """tgt, query_pos [B, Q, d]; ref [B, V, Q, L, 2]; bounding [B, V, Q] -> [B, Q, d]."""
        det = not train
        q = tgt + query_pos
        tgt = self.norm2(tgt + self.drop(self.self_attn(q, q, tgt, deterministic=det), deterministic=det))
        values = self.proj_attn.values(feats, embeds)
        out = self.proj_attn(tgt + query_pos, ref, feats, values) * bounding[..., None].astype(tgt.dtype)
        b, v, nq, d = out.shape
        out = self.fuse_view_projction(out.transpose(0, 2, 1, 3).reshape(b, nq, v * d))
        tgt = self.norm1(tgt + self.drop(out, deterministic=det))
        ffn = self.linear2(self.drop(nn.relu(self.linear1(tgt)), deterministic=det))
        return self.norm3(tgt + self.drop(ffn, deterministic=det))


class PoseMLP(nn.Module):
    """`MLP(d, d, 3, 3)`: the per-layer 3-D offset head (last layer zero-initialised)."""
    d_model: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        d = self.d_model
        x = nn.relu(dense(d, d, "layers_0", self.dtype)(x))
        x = nn.relu(dense(d, d, "layers_1", self.dtype)(x))
        return dense(3, d, "layers_2", self.dtype, nn.initializers.zeros, nn.initializers.zeros)(x)


# ---------------------------------------------------------------------- the model
class MvP(nn.Module):
    """`MultiviewPosetransformer` with its PoseResNet. Call: images [B, V, H, W, 3] (RGB,
    ImageNet-normalised, H x W = image_size[::-1]) and `meta` {R, T, f, c, k, p [B, V, ...],
    affine [B, V, 3, 3] original -> input pixels, image_wh [B, V, 2] original size (= 2 x
    the official meta `center`)} -> {"pred_logits" [layers, B, N, 2] (column 1 is the person
    score's logit), "pred_poses" [layers, B, N, J_out, 3] in the normalised room cube}."""
    depth: int = 50
    deconv: int = 256
    d_model: int = 256
    heads: int = 8
    points: int = 4
    ffn: int = 1024
    layers: int = 6
    persons: int = 10
    joints: int = 15
    views: int = 5
    image_size: Sequence[int] = (960, 512)               # (W, H), NETWORK.IMAGE_SIZE
    space_center: Sequence[float] = (0.0, -500.0, 800.0)
    space_size: Sequence[float] = (8000.0, 8000.0, 2000.0)
    output_joints: Sequence[int] | None = None           # convert_joint_format_indices (Shelf / Campus)
    posembed: str = "rayconv"
    query_embed: str = "person_joint"
    query_adaptation: bool = True
    dropout: float = 0.1
    freeze_backbone: bool = True                          # official: frozen, BN in eval mode
    backbone_blocks: Sequence[int] | None = None          # None: the depth's (2,2,2,2) / (3,4,6,3) ...
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        if self.posembed not in POSEMBED:
            raise ValueError(f"posembed {self.posembed!r} is not one of {POSEMBED}")
        if self.query_embed not in QUERY_EMBEDS:
            raise ValueError(f"query_embed {self.query_embed!r} is not one of {QUERY_EMBEDS}")
        d = self.d_model
        self.backbone = PoseResNet(self.depth, (self.deconv,) * 3, self.joints, self.dtype,
                                   None if self.backbone_blocks is None else tuple(self.backbone_blocks))
        self.decoder_layers = [DecoderLayer(d, self.heads, self.points, self.ffn, self.views, self.dropout,
                                            self.posembed, self.dtype, name=f"decoder_layers_{i}")
                               for i in range(self.layers)]
        self.pose_embed = [PoseMLP(d, self.dtype, name=f"pose_embed_{i}") for i in range(self.layers)]
        bias = -math.log((1 - 0.01) / 0.01)
        self.class_embed = [dense(2, d, f"class_embed_{i}", self.dtype, bias_init=nn.initializers.constant(bias))
                            for i in range(self.layers)]
        self.reference_points = dense(3, d, "reference_points", self.dtype, xavier(d, 3), nn.initializers.zeros)
        self.reference_feats = dense(d, 3 * d * self.views, "reference_feats", self.dtype)
        normal = nn.initializers.normal(1.0)
        q = self.persons * self.joints
        if self.query_embed == "per_joint":
            self.query_embed_weight = self.param("query_embed", normal, (q, 2 * d))
        else:
            self.joint_embedding = self.param("joint_embedding", normal, (self.joints, 2 * d))
            self.instance_embedding = self.param("instance_embedding", normal, (self.persons, 2 * d))
            if self.query_embed == "image_person_joint":
                self.image_embedding = self.param("image_embedding", normal, (1, 2 * d))
        # parameters of the official module that its forward never uses (kept for the counts and
        # the checkpoint; frozen in the optimizer, as PyTorch skips a None grad)
        self.view_embed = self.param("view_embed", normal, (self.views, d))
        self.level_embed = self.param("level_embed", nn.initializers.zeros, (3, d))

    # -------------------------------------------------------------- pieces
    def norm2absolute(self, x):
        c, s = jnp.asarray(self.space_center, jnp.float32), jnp.asarray(self.space_size, jnp.float32)
        return x * s + c - s / 2.0

    def absolute2norm(self, x):
        c, s = jnp.asarray(self.space_center, jnp.float32), jnp.asarray(self.space_size, jnp.float32)
        return (x - c + s / 2.0) / s

    def features(self, images, train: bool = False):
        """[B, V, H, W, 3] -> 3 levels of [B, V, H_l, W_l, deconv] (stride 4, 8, 16)."""
        b, v = images.shape[:2]
        bb_train = train and not self.freeze_backbone
        feats = self.backbone(images.reshape((b * v,) + images.shape[2:]), bb_train)
        feats = [f.reshape((b, v) + f.shape[1:]) for f in feats]
        return [jax.lax.stop_gradient(f) for f in feats] if self.freeze_backbone else feats

    def embeddings(self, feats, meta):
        """RayConv's per-pixel extra channels per level ([B, V, H_l, W_l, 3 | 2] or None)."""
        out = []
        for f in feats:
            h, w = f.shape[2:4]
            if self.posembed == "rayconv":
                cam = {k: meta[k].astype(jnp.float32) for k in cameras.CAMERA_KEYS}
                out.append(jax.lax.stop_gradient(cameras.rays(cam, meta["affine"].astype(jnp.float32), h, w,
                                                              self.image_size[0])))
            elif self.posembed == "coordconv":
                j, i = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
                out.append(jnp.broadcast_to(jnp.stack([i / w, j / h], -1), f.shape[:2] + (h, w, 2)))
            else:
                out.append(None)
        return out

    def queries(self):
        if self.query_embed == "per_joint":
            e = self.query_embed_weight
        else:
            e = (self.joint_embedding[None, :, :] + self.instance_embedding[:, None, :]).reshape(-1, 2 * self.d_model)
            if self.query_embed == "image_person_joint":
                e = e + self.image_embedding
        return e[:, :self.d_model], e[:, self.d_model:]          # query_pos, tgt

    def project_references(self, ref, meta, level_shapes):
        """Normalised 3-D references [B, Q, 3] -> (per-level normalised 2-D [B, V, Q, L, 2],
        bounding [B, V, Q]) through distortion, the affine crop and the W_l/(W_l-1) stretch."""
        cam = {k: meta[k].astype(jnp.float32) for k in cameras.CAMERA_KEYS}
        absolute = self.norm2absolute(jax.lax.stop_gradient(ref))
        uv = cameras.project(jnp.broadcast_to(absolute[:, None], (ref.shape[0], self.views) + ref.shape[1:]), cam)
        wh = meta["image_wh"].astype(jnp.float32)[:, :, None, :]
        bounding = (uv[..., 0] >= 0) & (uv[..., 1] >= 0) & (uv[..., 0] < wh[..., 0]) & (uv[..., 1] < wh[..., 1])
        # the official clamp to [-1, max(W0, H0)] only moves points already out of the image
        uv = jnp.clip(uv, -1.0, jnp.max(wh, axis=(-2, -1), keepdims=True))
        uv = cameras.apply_affine(uv, meta["affine"].astype(jnp.float32)) / jnp.asarray(self.image_size, jnp.float32)
        stretch = jnp.asarray([[w / (w - 1), h / (h - 1)] for h, w in level_shapes], jnp.float32)   # L 2
        return uv[:, :, :, None, :] * stretch, bounding

    # -------------------------------------------------------------- forward
    def __call__(self, images, meta, train: bool = False):
        return self.decode(self.features(images, train), meta, train)

    def decode(self, feats, meta, train: bool = False):
        """The head from backbone features (3 levels of [B, V, H_l, W_l, d])."""
        b = feats[0].shape[0]
        embeds = self.embeddings(feats, meta)
        query_pos, tgt = self.queries()
        query_pos = jnp.broadcast_to(query_pos[None], (b,) + query_pos.shape)
        tgt = jnp.broadcast_to(tgt[None], (b,) + tgt.shape)
        if self.query_adaptation:      # pooled [view][level][channel]
            pooled = jnp.stack([f.mean(axis=(2, 3)) for f in feats], 2).reshape(b, -1)
            ref = jax.nn.sigmoid(self.reference_points(query_pos + self.reference_feats(pooled)[:, None]))
        else:
            ref = jax.nn.sigmoid(self.reference_points(query_pos))
        shapes = [f.shape[2:4] for f in feats]
        logits, poses = [], []
        h = tgt
        for i, layer in enumerate(self.decoder_layers):
            ref2d, bounding = self.project_references(ref, meta, shapes)
            h = layer(h, query_pos, ref2d, bounding, feats, embeds, train)
            new_ref = jax.nn.sigmoid(self.pose_embed[i](h) + inverse_sigmoid(ref))
            prob = jax.nn.sigmoid(self.class_embed[i](h)).reshape(b, self.persons, self.joints, 2).mean(2)
            logits.append(inverse_sigmoid(prob))
            coord = new_ref.reshape(b, self.persons, self.joints, 3)
            if self.output_joints is not None:
                coord = coord[:, :, jnp.asarray(self.output_joints)]
            poses.append(coord)
            ref = jax.lax.stop_gradient(new_ref)
        return {"pred_logits": jnp.stack(logits), "pred_poses": jnp.stack(poses)}


def create_model(variant: str, dtype=jnp.float32, **overrides) -> MvP:
    if variant not in VARIANTS:
        raise KeyError(f"unknown MvP variant {variant!r}; known: {sorted(VARIANTS)}")
    kw = dict(VARIANTS[variant])
    kw.update(overrides)
    for key in ("image_size", "space_center", "space_size", "output_joints", "backbone_blocks"):
        if kw.get(key) is not None:
            kw[key] = tuple(kw[key])
    return MvP(dtype=dtype, **kw)


def dummy_meta(batch: int, views: int, image_wh=(1920, 1080), image_size=(960, 512)) -> dict:
    """Cameras on a ring looking at the room centre (for init, shapes and benchmarks)."""
    from mvp import synthetic
    cams = synthetic.ring_cameras(np.random.default_rng(0), views, image_wh, distortion=False)
    one = cameras.stack_meta(cams, image_wh, image_size)
    return {k: np.broadcast_to(v, (batch,) + v.shape).copy() for k, v in one.items()}
