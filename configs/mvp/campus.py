"""MvP fine-tuned on Campus, 3 views (sail-sg/mvp configs/campus/mvp_campus.yaml): from the
3-view Panoptic model (model_best_3view_horizontal_view, `--variant campus`), VoxelPose
pseudo-GT, AdamW 1e-4 (wd 1e-4), MultiStepLR [10] over 15 epochs, no confidence loss, PCP.
The Campus file layout has no builder yet (mvp/README.md); `:test` / `:demo` are the
Panoptic presets."""
from common.config import check_preset, load_sibling


def get_config(arg=None):
    arg = check_preset(arg)
    base = load_sibling(__file__, "panoptic.py")
    c = base.recipe("campus", arg)
    if arg:
        return c
    with c.unlocked():
        c.data.name = "mvp_campus"
        c.data.image_size = (1000, 800)
        c.data.num_train_examples = 1_779          # [0,350) + [471,650) + [751,1900) + repeats, pseudo-GT frames
        c.num_epochs = 15.0
        c.optim.lr, c.optim.weight_decay = 1e-4, 1e-4
        c.schedule.step_epochs = (10.0,)
        c.loss.ce = 0.0
        c.eval.kind, c.eval.conf_thr = "pcp", 0.0
        c.init_from = "model=converted/mvp_3view_as_campus"
        c.eval_every_steps = c.checkpoint_every_steps = c.data.num_train_examples // c.batch_size
    return c
