"""Where training metrics go: DIR/metrics.jsonl (one JSON object per logged step) and
TensorBoard event files in DIR/tensorboard. Only process 0 writes."""
import json
import logging
import os

import jax
import numpy as np


class MetricsWriter:
    def __init__(self, workdir: str, resume_step: int = 0):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._truncate_after(resume_step)
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=resume_step or None)

    def _truncate_after(self, step: int) -> None:
        """A resumed run re-logs the steps after its checkpoint: drop their old lines. A run
        that starts over (no readable checkpoint) keeps the old file under another name."""
        if not os.path.exists(self.path):
            return
        if step == 0:
            stem, n = self.path[:-len(".jsonl")] + ".before_restart", 0
            kept = f"{stem}.jsonl"
            while os.path.exists(kept):
                n += 1
                kept = f"{stem}.{n}.jsonl"
            os.replace(self.path, kept)
            logging.getLogger(__name__).warning("starting over in %s: its old metrics are kept in %s",
                                                os.path.dirname(self.path), kept)
            return
        with open(self.path) as f:
            keep = [line for line in f if line.strip() and _step_of(line) <= step]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(keep)
        os.replace(self.path + ".tmp", self.path)     # a kill here leaves the old file whole

    def write(self, step: int, metrics: dict) -> None:
        """Scalars go to JSONL and TensorBoard; arrays of shape [H, W, C] / [N, H, W, C]
        (C in 1, 3, 4) to TensorBoard as images, other arrays as histograms."""
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **scalars}) + "\n")
        for k, v in scalars.items():
            self._tb.add_scalar(k, v, step)
        for k, v in metrics.items():
            if k in scalars:
                continue
            v = np.asarray(v)
            if is_image(v):
                self._tb.add_images(k, _to_uint8(v if v.ndim == 4 else v[None]), step, dataformats="NHWC")
            else:
                self._tb.add_histogram(k, v.astype(np.float64).ravel(), step)
        self._tb.flush()

    def close(self):
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError):
        return 1 << 62


def read_metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def is_image(v: np.ndarray) -> bool:
    return v.ndim in (3, 4) and v.shape[-1] in (1, 3, 4) and v.shape[-2] > 4


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8 as they are) -> uint8."""
    if images.dtype == np.uint8:
        return images
    return (np.clip(images.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
