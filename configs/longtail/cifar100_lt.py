"""CIFAR-100-LT / CIFAR-10-LT with ResNet-32 (kaidic/LDAM-DRW cifar_train.py recipe):
200 epochs, batch 128, SGD 0.9, lr 0.1, wd 2e-4, linear warm-up 5 epochs, x0.01 at 160
and x0.0001 at 180; DRW from epoch 160. The LT subset is `longtail.data.cifar_lt_indices`
(legacy RandomState(0), class order) over tfds `cifar100` / `cifar10` train, built once with
`python -c "from common.data.sources import prepare; prepare('cifar_lt/cifar100_100', builder='longtail.data')"` (needs tfds
`cifar100` prepared first: `tfds build cifar100 --file_format=array_record`).

  python -m common.train --config=configs/longtail/cifar100_lt.py:ldam_drw --workdir=DIR
  python -m common.train --config=configs/longtail/cifar100_lt.py:balanced_softmax,cifar10,50 --workdir=DIR
"""
from common.config import finalize, load_sibling

_in = load_sibling(__file__, "imagenet_lt.py")


def get_config(arg=None):
    method, options, stand_in = _in.parse(arg, ("ib",))
    if stand_in:
        return stand_in
    dataset = options[0] if options else "cifar100"
    ratio = options[1] if len(options) > 1 else "100"
    classes = 100 if dataset == "cifar100" else 10
    base = "ce" if method == "ib" else method          # IB loss: a CIFAR-only row (set below)
    c = _in.imagenet_lt(base, 200, model="resnet32", dataset=f"cifar_lt/{dataset}_{ratio}", num_classes=classes)
    c.data.builder = "longtail.data"
    c.data.image_size, c.data.crop_pct = 32, 1.0
    c.data.rrc_scale, c.data.rrc_ratio = (0.77, 1.0), (1.0, 1.0)     # ~ pad-4 random crop of 32
    c.data.color_jitter = 0.0
    c.data.mean, c.data.std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    c.batch_size, c.optim.weight_decay = 128, 2e-4
    c.schedule.name, c.schedule.warmup_epochs, c.schedule.warmup_init_lr = "step", 5.0, 0.0
    c.schedule.step_epochs, c.schedule.step_factor = (160.0, 180.0), 0.01
    if method == "ldam_drw":
        c.longtail.drw_epoch = 160
    if method == "ride":                # RIDE CIFAR: lr 0.1 at B 128, diversity factor -0.45, DRW at 160
        c.optim.lr, c.longtail.ride_diversity, c.longtail.drw_epoch = 0.1, -0.45, 160
    if method == "ib":                  # IB-Loss CIFAR: CE for 100 of 200 epochs, alpha 1000
        c.longtail.loss, c.longtail.ib_alpha, c.longtail.ib_start_epoch = "ib", 1000.0, 100.0
    if method == "bbn":                 # BBN CIFAR: steps at 120 and 160 (x0.01 each), T_div = 200
        c.schedule.step_epochs = (120.0, 160.0)
    return finalize(c)
