"""common.predict on a DualFormer `:test` checkpoint: a synthetic_motion video file decoded
with OpenCV, sampled and cut into the eval pipeline's test views, scored as the eval step
scores it; a video too short for a clip and a corrupt file reported and skipped."""
import io
import json

import flax.linen as nn
import jax
import numpy as np
import pytest
from PIL import Image

from tests.common.configs import load_config
from tests.conftest import require


def _random_checkpoint(config, path):
    """Weights of the config's model with random values, saved as a converted checkpoint
    (the model's own random init takes long to compile on CPU)."""
    from common.checkpoint import save_variables
    from common.tasks import get_task
    task = get_task(config.task)(config)
    shapes = nn.meta.unbox(jax.eval_shape(task.init_variables, jax.random.PRNGKey(0)))
    rng = np.random.default_rng(0)

    def fill(kpath, a):
        name = str(getattr(kpath[-1], "key", kpath[-1]))
        if name in ("scale", "var"):
            return np.ones(a.shape, a.dtype)
        if name in ("bias", "mean"):
            return np.zeros(a.shape, a.dtype)
        return (rng.standard_normal(a.shape) * 0.2).astype(a.dtype)

    return save_variables(path, jax.tree_util.tree_map_with_path(fill, shapes))


def test_a_synthetic_motion_video_is_decoded_and_predicted(tmp_path, capsys):
    require("cv2")
    from common import predict, sharding
    from dualformer import synthetic_motion
    from dualformer.video_builders import read_video

    config = load_config("configs/dualformer/dualformer_tiny_k400.py", "test")
    ckpt = _random_checkpoint(config, str(tmp_path / "ckpt"))
    videos = tmp_path / "videos"
    videos.mkdir()
    frames = synthetic_motion.render(0, np.random.default_rng(3))
    synthetic_motion.write_video(str(videos / "right.mp4"), frames)
    synthetic_motion.write_video(str(videos / "short.mp4"), frames[:3])     # < clip_len 4
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)

    predictor = predict.Predictor(config, ckpt)
    results, code = predict.predict_files(predictor, [str(videos)], str(tmp_path / "out"), top_k=3)
    assert code == 1
    err = capsys.readouterr().err
    assert "short.mp4: ValueError: the video has 3 frames, fewer than one clip of 4" in err
    assert "corrupt.mp4: ValueError: no frames decoded" in err and "2 of 3 inputs failed" in err

    record = json.loads((tmp_path / "out" / "right.json").read_text())
    assert record["num_frames"] == len(frames) and record["views"] == 2          # 2 clips x 1 crop
    assert np.asarray(record["clip_frames"]).shape == (2, 4)
    probs = [t["prob"] for t in record["top_k"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    with Image.open(record["picture"]) as im:
        im.load()
        assert im.size[0] > 4 * 96                                   # a strip of the sampled frames
    assert not (tmp_path / "out" / "short.png").exists()

    # The eval pipeline on the same decoded frames (stored losslessly) and the run's eval
    # step: the top-1 of predict counts as correct, in a batch of the same shape.
    decoded = read_video(str(videos / "right.mp4"))

    def png(f):
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        return buf.getvalue()

    top1 = record["top_k"][0]["class"]
    element = predictor.task.eval_element({"frames": [png(f) for f in decoded], "num_frames": len(decoded),
                                           "label": top1})
    np.testing.assert_array_equal(predictor.task.predict_element(str(videos / "right.mp4")).input,
                                  element["image"])
    n = predictor.batch_size(3)
    views = np.zeros((n,) + element["image"].shape, np.float32)
    views[0] = element["image"]
    labels, mask = np.zeros(n, np.int32), np.zeros(n, np.float32)
    labels[0], mask[0] = top1, 1.0
    run = predictor.run
    sums = run.jit_eval_step(run.eval_passes()[0])(
        predictor.state, sharding.global_batch({"image": views, "label": labels, "mask": mask}, run.mesh))
    assert int(sums["count"]) == 1 and int(sums["correct"]) == 1
    by_name = {p.path.rsplit("/", 1)[-1]: p for p in results}
    np.testing.assert_allclose(by_name["right.mp4"].probs[top1], record["top_k"][0]["prob"])
    assert by_name["right.mp4"].probs.sum() == pytest.approx(1.0, abs=1e-5)
