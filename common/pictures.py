"""Pictures of what a model does: boxes and keypoints drawn on images, cell overlays, a bar
chart of scores, and a grid writer that puts several panels with titles into one PNG
(Pillow only).

Images are uint8 [H, W, 3] arrays; boxes are xyxy in pixels of that image.
"""
import colorsys
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def palette(n: int) -> list[tuple[int, int, int]]:
    """n well-separated colours (golden-ratio hues)."""
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((0.13 + 0.618 * i) % 1.0, 0.85, 0.95))
            for i in range(max(n, 1))]


def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                       # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def draw_boxes(image: np.ndarray, boxes: np.ndarray, texts: Sequence[str] = (),
               colors: Sequence[tuple[int, int, int]] = (), width: int = 2) -> np.ndarray:
    """`image` with each box outlined and its text (e.g. "cat 0.93") on a filled tab."""
    img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    font = _font()
    colors = list(colors) or palette(len(boxes))
    for i, box in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        color = tuple(colors[i % len(colors)])
        x0, y0, x1, y1 = [float(v) for v in box]
        draw.rectangle([x0, y0, x1, y1], outline=color, width=width)
        if i < len(texts) and texts[i]:
            tx0, ty0, tx1, ty1 = draw.textbbox((x0, y0), texts[i], font=font)
            top = max(0.0, y0 - (ty1 - ty0) - 2)
            draw.rectangle([x0, top, x0 + (tx1 - tx0) + 4, top + (ty1 - ty0) + 2], fill=color)
            draw.text((x0 + 2, top), texts[i], fill=(0, 0, 0), font=font)
    return np.asarray(img)


def draw_keypoints(image: np.ndarray, points: np.ndarray, edges: Sequence[tuple[int, int]] = (),
                   color: tuple[int, int, int] = (255, 64, 64), radius: int = 3) -> np.ndarray:
    """`image` with points [K, 2] (x, y; NaN = not drawn) and the edges between them."""
    img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    for a, b in edges:
        if np.isfinite(pts[[a, b]]).all():
            draw.line([tuple(pts[a]), tuple(pts[b])], fill=color, width=2)
    for x, y in pts:
        if np.isfinite([x, y]).all():
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return np.asarray(img)


def shade_cells(image: np.ndarray, cells: np.ndarray, color=(255, 200, 0), alpha: float = 0.55) -> np.ndarray:
    """`image` with the cells of a coarse [h, w] boolean grid (e.g. a stride-32 feature map)
    tinted: each grid cell covers image[H * i / h : H * (i + 1) / h, ...]."""
    image = np.asarray(image, np.float32)
    h, w = cells.shape
    rows = (np.arange(image.shape[0]) * h // image.shape[0]).clip(0, h - 1)
    cols = (np.arange(image.shape[1]) * w // image.shape[1]).clip(0, w - 1)
    on = np.asarray(cells, bool)[rows[:, None], cols[None, :]][..., None]
    tinted = image * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return np.where(on, tinted, image * 0.6).astype(np.uint8)


def bar_chart(labels: Sequence[str], values: Sequence[float], colors: Sequence[tuple[int, int, int]] = (),
              width: int = 320, row_height: int = 18, max_value: float = 1.0,
              value_format: str = "{:.3f}") -> np.ndarray:
    """Horizontal bars, one row per label (e.g. classes and their probabilities), each bar
    `value / max_value` of the bar column long with its value printed after it; labels
    longer than half the panel are cut with an ellipsis."""
    font = _font(12)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = lambda t: measure.textbbox((0, 0), t, font=font)[2]  # noqa: E731
    max_label = width // 2

    def fit(text: str) -> str:
        if text_w(text) <= max_label:
            return text
        while text and text_w(text + "…") > max_label:
            text = text[:-1]
        return text + "…"

    labels = [fit(str(t)) for t in labels]
    label_w = max([text_w(t) for t in labels] + [0]) + 6
    value_w = text_w(value_format.format(max_value)) + 6
    bar_w = max(width - label_w - value_w - 4, 10)
    colors = list(colors) or [(70, 130, 200)]
    img = Image.new("RGB", (width, max(len(labels), 1) * row_height + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (text, v) in enumerate(zip(labels, values)):
        y = 2 + i * row_height
        frac = min(max(float(v) / max_value, 0.0), 1.0) if max_value > 0 else 0.0
        draw.text((2, y + 2), text, fill=(0, 0, 0), font=font)
        draw.rectangle([label_w, y + 3, label_w + bar_w, y + row_height - 3], outline=(210, 210, 210))
        if frac > 0:
            draw.rectangle([label_w, y + 3, label_w + max(int(round(frac * bar_w)), 1), y + row_height - 3],
                           fill=tuple(colors[i % len(colors)]))
        draw.text((label_w + bar_w + 4, y + 2), value_format.format(float(v)), fill=(0, 0, 0), font=font)
    return np.asarray(img)


def image_grid(panels: Sequence[np.ndarray], titles: Sequence[str] = (), columns: int = 0,
               pad: int = 6, background=(255, 255, 255)) -> np.ndarray:
    """Panels (uint8 images of any sizes) in a grid, each with its title above it."""
    panels = [np.asarray(p, np.uint8) for p in panels]
    if not panels:
        raise ValueError("image_grid needs at least one panel")
    columns = columns or len(panels)
    rows = -(-len(panels) // columns)
    title_h = 16 if titles else 0
    cell_h = max(p.shape[0] for p in panels) + title_h + pad
    cell_w = max(p.shape[1] for p in panels) + pad
    canvas = Image.new("RGB", (columns * cell_w + pad, rows * cell_h + pad), background)
    draw = ImageDraw.Draw(canvas)
    for i, p in enumerate(panels):
        x, y = pad + (i % columns) * cell_w, pad + (i // columns) * cell_h
        if i < len(titles):
            draw.text((x, y), titles[i], fill=(0, 0, 0), font=_font(12))
        canvas.paste(Image.fromarray(p if p.ndim == 3 else np.repeat(p[..., None], 3, -1)), (x, y + title_h))
    return np.asarray(canvas)


def side_by_side(panels: Sequence[np.ndarray], pad: int = 6, background=(255, 255, 255)) -> np.ndarray:
    """Panels of any sizes in one row, tops aligned, each as wide as itself."""
    panels = [np.asarray(p, np.uint8) for p in panels]
    panels = [p if p.ndim == 3 else np.repeat(p[..., None], 3, -1) for p in panels]
    canvas = Image.new("RGB", (sum(p.shape[1] for p in panels) + pad * (len(panels) + 1),
                               max(p.shape[0] for p in panels) + 2 * pad), background)
    x = pad
    for p in panels:
        canvas.paste(Image.fromarray(p), (x, pad))
        x += p.shape[1] + pad
    return np.asarray(canvas)


def fit_for_display(image: np.ndarray, min_side: int = 160, max_side: int = 384) -> np.ndarray:
    """`image` enlarged by a whole factor (nearest: pixels stay sharp) until its short side
    reaches `min_side`, or shrunk (bilinear) until its long side fits in `max_side`."""
    img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    w, h = img.size
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        return np.asarray(img.resize((max(int(w * s), 1), max(int(h * s), 1)), Image.BILINEAR))
    k = max(1, min(min_side // max(min(w, h), 1), max_side // max(w, h)))
    return np.asarray(img.resize((w * k, h * k), Image.NEAREST)) if k > 1 else np.asarray(img)


def save_png(path: str, image: np.ndarray) -> str:
    Image.fromarray(np.asarray(image, np.uint8)).save(path)
    return path
