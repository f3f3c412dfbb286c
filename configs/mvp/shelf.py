"""MvP fine-tuned on Shelf, 5 views (sail-sg/mvp configs/shelf/mvp_shelf.yaml): from the Panoptic
model (model_best_5view, `python -m mvp.convert ... --variant shelf`), VoxelPose pseudo-GT,
AdamW 2e-4 (wd 1e-4) with cosine annealing to 1e-5 over 30 epochs, no confidence loss, all
10 predictions kept and scored by PCP.

Data: `mvp_shelf` (mvp/data.py `MvpShelf`), manual_dir = the Shelf folder (calibration_shelf.json,
actorsGT.mat, Camera0..4/, pesudo_gt/voxelpose_pesudo_gt_shelf.pickle). `:test` runs the tiny
model (5 views, 14 output joints, Shelf's space) on the stand-in written in the Shelf layout
(`mvp_actors_synthetic/shelf`); `:demo` is the Panoptic demo."""
from common.config import check_preset, load_sibling


def get_config(arg=None):
    arg = check_preset(arg)
    base = load_sibling(__file__, "panoptic.py")
    c = base.recipe("shelf", arg)
    with c.unlocked():
        if arg == "test":
            base.actor_preset(c, "shelf", views=5, space_center=(450.0, -320.0, 800.0),
                              space_size=(8000.0, 8000.0, 2000.0), actors=4)
        if arg:
            return c
        c.data.name = "mvp_shelf"
        c.data.image_size = (800, 608)
        c.data.num_train_examples = 2_899          # frames [0, 300) + [601, 3200)
        c.num_epochs = 30.0
        c.optim.lr, c.optim.weight_decay = 2e-4, 1e-4   # AdamW (decoupled) on every trained tensor
        c.schedule.name, c.schedule.min_lr, c.schedule.warmup_epochs = "cosine_by_epoch", 1e-5, 0.0
        c.loss.ce = 0.0                             # loss_weight_loss_ce 0
        c.eval.kind, c.eval.conf_thr, c.eval.actors = "pcp", 0.0, 4   # actorsGT.mat has 4 actors
        c.init_from = "model=converted/mvp_5view_as_shelf"
        c.eval_every_steps = c.checkpoint_every_steps = c.data.num_train_examples // c.batch_size
    return c
