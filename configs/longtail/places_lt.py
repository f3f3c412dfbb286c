"""Places-LT (365 classes, 62,500 train images; OLTR split lists) with the survey's
ImageNet-LT protocol: ResNeXt-50 from scratch, one config per method row (as imagenet_lt.py).

  python -m common.train --config=configs/longtail/places_lt.py:balanced_softmax --workdir=DIR
  python -m common.train --config=configs/longtail/places_lt.py:ce,90 --workdir=DIR

Data: the `places_lt` builder (longtail/places_lt.py) over the OLTR lists and the
Places365-Standard images in manual_dir, prepared once with
  python -c "from common.data.sources import prepare; prepare('places_lt', manual_dir='DIR', builder='longtail.places_lt')"
Splits train / validation (20 per class) / test (100 per class). Groups: many > 100,
medium 20-100, few < 20 training images (131 / 163 / 71 classes). The method papers'
own Places-LT protocol (ImageNet-pretrained ResNet-152, 30 epochs) is not reproduced here.
"""
from common.config import finalize, load_sibling

_in = load_sibling(__file__, "imagenet_lt.py")


def get_config(arg=None):
    method, options, stand_in = _in.parse(arg)
    if stand_in:
        return stand_in
    c = _in.imagenet_lt(method, int(options[0]) if options else 200, dataset="places_lt", num_classes=365)
    c.data.builder = "longtail.places_lt"
    c.eval_every_steps = 2440                   # ~10 epochs of 62,500 images at batch 256
    return finalize(c)
