"""MvP fine-tuned on Campus, 3 views (sail-sg/mvp configs/campus/mvp_campus.yaml): from the
3-view Panoptic model (model_best_3view_horizontal_view, `--variant campus`), VoxelPose
pseudo-GT, AdamW 1e-4 (wd 1e-4), MultiStepLR [10] over 15 epochs, no confidence loss, PCP.

Data: `mvp_campus` (mvp/data.py `MvpCampus`), manual_dir = the CampusSeq1 folder
(calibration_campus.json, actorsGT.mat, Camera0..2/, pesudo_gt/voxelpose_pesudo_gt_campus.pickle).
`:test` runs the tiny model (3 views, 14 output joints, Campus's space) on the stand-in written
in the Campus layout (`mvp_actors_synthetic/campus`); `:demo` is the Panoptic demo."""
from common.config import check_preset, load_sibling


def get_config(arg=None):
    arg = check_preset(arg)
    base = load_sibling(__file__, "panoptic.py")
    c = base.recipe("campus", arg)
    with c.unlocked():
        if arg == "test":
            base.actor_preset(c, "campus", views=3, space_center=(3000.0, 4500.0, 1000.0),
                              space_size=(12000.0, 12000.0, 2000.0), actors=3)
        if arg:
            return c
        c.data.name = "mvp_campus"
        c.data.image_size = (1000, 800)
        c.data.num_train_examples = 1_779          # [0,350) + [471,650) + [751,1900) + repeats, pseudo-GT frames
        c.num_epochs = 15.0
        c.optim.lr, c.optim.weight_decay = 1e-4, 1e-4
        c.schedule.step_epochs = (10.0,)
        c.loss.ce = 0.0
        c.eval.kind, c.eval.conf_thr, c.eval.actors = "pcp", 0.0, 3
        c.init_from = "model=converted/mvp_3view_as_campus"
        c.eval_every_steps = c.checkpoint_every_steps = c.data.num_train_examples // c.batch_size
    return c
