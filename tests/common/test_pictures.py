"""The picture helpers draw where they are told and the grid holds every panel."""
import numpy as np

from common import pictures


def test_boxes_keypoints_cells_and_grid(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    boxed = pictures.draw_boxes(img, np.array([[10, 12, 30, 35]]), ["cat 0.9"], [(255, 0, 0)])
    assert tuple(boxed[35, 20]) == (255, 0, 0) and tuple(boxed[20, 20]) == (0, 0, 0)   # outline, not fill
    kp = pictures.draw_keypoints(img, np.array([[5.0, 5.0], [50.0, 30.0], [np.nan, 1.0]]), edges=[(0, 1), (1, 2)])
    assert kp[5, 5].any() and kp[30, 50].any() and kp[17, 27].any()                    # both points and the edge
    cells = np.zeros((2, 3), bool)
    cells[1, 2] = True
    shaded = pictures.shade_cells(np.full((40, 60, 3), 100, np.uint8), cells)
    assert shaded[30, 50, 0] > 100 and shaded[5, 5, 0] == 60                            # tinted vs dimmed
    grid = pictures.image_grid([boxed, kp, shaded], ["a", "b", "c"], columns=2)
    assert grid.shape[0] > 80 and grid.shape[1] > 120
    path = pictures.save_png(str(tmp_path / "g.png"), grid)
    from PIL import Image
    assert Image.open(path).size == (grid.shape[1], grid.shape[0])
