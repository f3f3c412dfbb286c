"""The official PyTorch DualFormer, loaded at run time from a checkout of sail-sg/dualformer.

For side-by-side benchmarks and equivalence checks only; none of the official code is part
of this repository:

    git clone https://github.com/sail-sg/dualformer /path/to/dualformer
    python -m common.bench --config=configs/dualformer/dualformer_tiny_k400.py --batch 2 \
        --config.data.clip_len=16 --config.model.kwargs.fine_pysizes="((8,7,7),(8,7,7),(8,7,7),(8,7,7))" \
        --reference dualformer:dualformer_tiny@/path/to/dualformer

The backbone file imports mmcv's checkpoint loader, mmaction's logger and its registry; those
three lines are replaced in memory (nothing they provide is used here), so only torch and timm
are needed.
"""
import os
import types

from dualformer.model import VARIANTS, WINDOW_KEYS

_STUBS = {"from mmcv.runner import load_checkpoint": "load_checkpoint = None",
          "from mmaction.utils import get_root_logger": "get_root_logger = None",
          "from ..builder import BACKBONES": "class BACKBONES:\n"
                                             "    register_module = staticmethod(lambda: (lambda c: c))"}


def load_official(checkout: str) -> types.ModuleType:
    """The official backbone module (mmaction/models/backbones/dualformer.py), imports stubbed."""
    path = os.path.join(checkout, "mmaction/models/backbones/dualformer.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: pass a checkout of sail-sg/dualformer")
    src = open(path).read()
    for old, new in _STUBS.items():
        if old not in src:
            raise RuntimeError(f"{path} changed: {old!r} not found")
        src = src.replace(old, new)
    mod = types.ModuleType("official_dualformer")
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod


def Recognizer(official, num_classes: int, logits_only: bool = False, **kw):
    """Backbone + mmaction's I3DHead (avg pool -> fc_cls), with the state_dict keys of the
    official recognizer. forward(x [B, C, T, H, W]) -> (features, logits), or the logits."""
    import torch.nn as nn

    class _Head(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc_cls = nn.Linear(c, num_classes)

        def forward(self, x):  # [B, C, D, H, W]
            return self.fc_cls(x.mean(dim=(2, 3, 4)))

    class _Rec(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = official.DualFormer(**kw)
            self.cls_head = _Head(kw["embed_dims"][-1])

        def forward(self, x):
            f = self.backbone(x)
            logits = self.cls_head(f)
            return logits if logits_only else (f, logits)

    return _Rec()


def build_official(name: str, checkout: str, num_classes: int = 400, input_shape=None, model_kwargs=None):
    """The official recognizer of variant `name` for clips of `input_shape` ([B, T, H, W, C],
    default 32 x 224 x 224) with our config's window overrides (`model_kwargs`: local_sizes,
    fine_pysizes, coarse_pysizes), returning logits: what common.bench runs beside ours."""
    if name not in VARIANTS:
        raise KeyError(f"unknown DualFormer variant {name!r}: {sorted(VARIANTS)}")
    v = {**VARIANTS[name], **{k: model_kwargs[k] for k in WINDOW_KEYS if k in (model_kwargs or {})}}
    video_size = tuple(input_shape[1:4]) if input_shape is not None else (32, 224, 224)
    return Recognizer(load_official(checkout), num_classes, logits_only=True, video_size=video_size,
                      qkv_bias=True, embed_dims=list(v["embed_dims"]), num_heads=list(v["num_heads"]),
                      depths=list(v["depths"]), local_sizes=[tuple(x) for x in v["local_sizes"]],
                      fine_pysizes=[tuple(x) for x in v["fine_pysizes"]],
                      coarse_pysizes=[tuple(x) for x in v["coarse_pysizes"]])
