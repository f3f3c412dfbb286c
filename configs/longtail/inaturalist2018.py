"""iNaturalist 2018 with ResNet-50 (8,142 classes), 200 epochs, the survey's protocol
(tfds `i_naturalist2018`, official val used as test; no ColorJitter; iNat mean/std).

  python -m common.train --config=configs/longtail/inaturalist2018.py:balanced_softmax --workdir=DIR
"""
from common.config import finalize, load_sibling

_in = load_sibling(__file__, "imagenet_lt.py")


def get_config(arg=None):
    method, options, stand_in = _in.parse(arg)
    if stand_in:
        return stand_in
    c = _in.imagenet_lt(method, int(options[0]) if options else 200, model="resnet50", dataset="i_naturalist2018",
                        num_classes=8142)
    c.data.eval_split = "validation"
    c.data.color_jitter = 0.0
    c.data.mean, c.data.std = (0.466, 0.471, 0.380), (0.195, 0.194, 0.192)
    return finalize(c)
