"""Run the OFFICIAL CMT (wzk1015/video-bgm-generation src/model.py on fast-transformers'
causal-linear kernel) at tiny width and write tests/cmt/golden_tiny.npz.

  git -C <mirror of wzk1015/video-bgm-generation> archive HEAD src | tar x -C /tmp/cmt_off
  PATH=<without nvcc> pip install --no-build-isolation --target /tmp/cmt_ft/site pytorch-fast-transformers==0.4.0
  OFFICIAL=/tmp/cmt_off/src FT=/tmp/cmt_ft/site python tests/cmt/make_golden.py

The official CMT hard-codes d_model / layers / heads as module globals and FFN 2048 in its
builder call: the globals are set and the builder's feed_forward_dimensions is overridden
(the only changes). Weights: tests/cmt/golden.py regenerates them from the official state
dict's names and shapes; the `pe` buffer is the official one. Saved: the official names and
shapes, pe[:256], fast-transformers' CausalLinearAttention on random q, k, v, and for a
random batch (B = 2, S = 64) and the bwv66.6 chorale tokens: hidden states at the music
rows, type logits, the six stage-2 logits (teacher-forced type) and train_forward's 7 losses.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.environ.get("OFFICIAL", "/tmp/cmt_off/src"))
sys.path.insert(0, os.environ.get("FT", "/tmp/cmt_ft/site"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import torch  # noqa: E402
from fast_transformers import builders  # noqa: E402
from fast_transformers.attention import CausalLinearAttention  # noqa: E402
from fast_transformers.masking import LengthMask, TriangularCausalMask  # noqa: E402

import model as official  # noqa: E402  (the official src/model.py)
from tests.cmt import golden  # noqa: E402

HEADS = ("barbeat", "pitch", "duration", "instr", "onset_density", "beat_density")   # forward_output order
LOSSES = ("barbeat", "type", "pitch", "duration", "instr", "onset_density", "beat_density")  # train_forward


def tiny_official():
    official.D_MODEL, official.N_LAYER_ENCODER, official.N_HEAD = (golden.TINY[k] for k in
                                                                   ("d_model", "num_layers", "num_heads"))
    original = builders.TransformerEncoderBuilder.from_kwargs.__func__

    def from_kwargs(cls, **kw):
        kw["feed_forward_dimensions"] = golden.TINY["ffn_dim"]
        return original(cls, **kw)

    official.TransformerEncoderBuilder.from_kwargs = classmethod(from_kwargs)
    from cmt.encoding import INIT_VOCAB, VOCAB
    net = official.CMT(list(VOCAB), list(INIT_VOCAB))
    sd = net.state_dict()
    w = golden.weights({k: tuple(v.shape) for k, v in sd.items() if k != "encoder_pos_emb.pe"})
    net.load_state_dict({**{k: torch.from_numpy(v) for k, v in w.items()},
                         "encoder_pos_emb.pe": sd["encoder_pos_emb.pe"]}, strict=True)
    return net.eval(), sd


def run(net, prefix, x, y, mask):
    t = lambda a: torch.from_numpy(np.asarray(a)).long()  # noqa: E731
    with torch.no_grad():
        h, y_type = net.forward_hidden(t(x), is_training=True, init_token=t(prefix))
        heads = net.forward_output(h, t(y))
        losses = net.train_forward(x=t(x), target=t(y), loss_mask=torch.from_numpy(mask).float(),
                                   init_token=t(prefix))
    out = {"hidden": h[:, 7:].numpy(), "type": y_type.numpy()}
    out.update({name: v.numpy() for name, v in zip(HEADS, heads)})
    out["losses"] = np.array([float(v) for v in losses], np.float32)       # LOSSES order
    return out


def main():
    from cmt import encoding, standin
    torch.manual_seed(0)
    net, sd = tiny_official()
    rng = np.random.default_rng(0)
    fixture = {"names": np.array(list(sd)), "pe": sd["encoder_pos_emb.pe"][0, :golden.PE_ROWS].numpy()}
    width = max(len(v.shape) for v in sd.values())
    fixture["shapes"] = np.array([list(v.shape) + [0] * (width - len(v.shape)) for v in sd.values()])

    # a random batch: two prefixes (the official constant one and a random one)
    prefix = np.stack([encoding.DEFAULT_PREFIX, np.stack([rng.integers(0, v, 7) for v in encoding.INIT_VOCAB], -1)])
    x = golden.random_tokens(rng, 2, 65, encoding.VOCAB)
    mask = (np.arange(64)[None] < np.array([[64], [50]])).astype(np.float32)
    for k, v in run(net, prefix, x[:, :-1], x[:, 1:], mask).items():
        fixture[f"random/{k}"] = v
    fixture.update({"random/prefix": prefix, "random/x": x, "random/mask": mask})

    # the chorale as train.py feeds it: x = rows[:-1] with p_beat + 1, y = rows[1:]
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        raw, meta = encoding.encode_midi(standin.write(standin.chorale_song(), os.path.join(tmp, "bwv66.mid")))
    rows = raw[:, encoding.RAW_TO_MODEL].astype(np.int64)
    xc, yc = rows[None, :-1].copy(), rows[None, 1:]
    xc[0, :meta["de_len"] - 1, 7] += 1
    maskc = np.ones((1, xc.shape[1]), np.float32)
    for k, v in run(net, encoding.DEFAULT_PREFIX[None], xc, yc, maskc).items():
        fixture[f"chorale/{k}"] = v
    fixture["chorale/raw"] = raw

    # fast-transformers' causal linear attention alone (N, L, H, D)
    q, k, v = (rng.standard_normal((2, 100, 3, 8)).astype(np.float32) for _ in range(3))
    attn = CausalLinearAttention(8)
    with torch.no_grad():
        o = attn(*(torch.from_numpy(a) for a in (q, k, v)), TriangularCausalMask(100),
                 LengthMask(torch.tensor([100, 100])), LengthMask(torch.tensor([100, 100])))
    fixture.update({"attn/q": q, "attn/k": k, "attn/v": v, "attn/out": o.numpy()})

    np.savez_compressed(golden.FIXTURE, **fixture)
    print(f"wrote {golden.FIXTURE} ({os.path.getsize(golden.FIXTURE) / 1e3:.0f} kB); losses "
          f"{dict(zip(LOSSES, fixture['chorale/losses'].round(4)))}")


if __name__ == "__main__":
    main()
