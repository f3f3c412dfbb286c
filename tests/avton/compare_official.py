"""Full-size comparison with the official modules, run once outside the suite:
CP-VTON TOM UnetGenerator(25, 4, 6, ngf=64) and ACGPN MultiscaleDiscriminator(27, 64)
at 256 x 192 (the GMM is compared at full size inside the suite).

  python tests/avton/compare_official.py /tmp/ref/cpvton /tmp/ref/acgpn
"""
import os
import sys
import types

import jax
import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from avton import convert  # noqa: E402
from avton import model as M  # noqa: E402
from tests.avton import golden as G  # noqa: E402


def _weights(module):
    sd = G.random_state_dict(list(module.state_dict()), [tuple(v.shape) for v in module.state_dict().values()])
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    return sd


def main(cpvton_root, acgpn_root):
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    sys.modules.setdefault("ipdb", types.ModuleType("ipdb"))
    sys.path.insert(0, cpvton_root)
    import networks
    tom = networks.UnetGenerator(25, 4, 6, ngf=64, norm_layer=nn.InstanceNorm2d)
    sd = _weights(tom)
    x = G.inputs("full_tom", (1, 25, 256, 192))
    with torch.no_grad():
        ref = tom(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    ours = M.create_model("tom").apply(convert.convert("unet", sd, convert.template("tom", 25)),
                                       x.transpose(0, 2, 3, 1))
    print(f"TOM 25->4 ngf 64 @256x192: max abs diff {np.abs(np.asarray(ours) - ref).max():.2e} "
          f"(output range {np.abs(ref).max():.2f})")
    del sys.modules["networks"]
    sys.path.remove(cpvton_root)
    sys.path.insert(0, os.path.join(acgpn_root, "ACGPN_train"))
    sys.path.insert(0, os.path.join(acgpn_root, "ACGPN_train", "models"))
    import networks as anet
    d = anet.MultiscaleDiscriminator(27, 64, 3, anet.get_norm_layer("instance"), False, 2, True)
    sd = _weights(d)
    x = G.inputs("full_d", (1, 27, 256, 192))
    with torch.no_grad():
        ref = d(torch.from_numpy(x))
    ours = jax.jit(M.create_model("disc").apply)(convert.convert("disc", sd, convert.template("disc", 27)),
                                                 x.transpose(0, 2, 3, 1))
    worst = max(float(np.abs(np.asarray(o) - r.numpy().transpose(0, 2, 3, 1)).max())
                for os_, rs in zip(ours, ref) for o, r in zip(os_, rs))
    print(f"multiscale D (27 in, ndf 64) @256x192, every feature map: max abs diff {worst:.2e}")


if __name__ == "__main__":
    main(*(sys.argv[1:3] or ("/tmp/ref/cpvton", "/tmp/ref/acgpn")))
