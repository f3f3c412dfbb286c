"""PSGAN / PSGAN++ losses and the regression metrics, batched jnp.

- `histogram_loss`: ops/histogram_loss.py + ops/histogram_matching.py exactly. Per channel:
  256-bin histograms (torch.histc on [0, 256]: bin floor(v)) of the masked pixels of the
  de-normalised input a and target b, float32 CDFs accumulated in order as the official
  Python loop does, the transfer table (level i -> the smallest j in 1..255 with
  cdf_b[j-1] <= cdf_a[i] <= cdf_b[j], else i; 0 and 255 fixed), the masked pixels of a
  replaced by table[int(a)] as the target (no gradient), L1 over every element
  (3 x H x W, zeros included). Empty masks behave as the official code does (NaN CDFs
  compare False: the table is the identity). The released training loop passes 4-D masks,
  which make the op read the wrong pixels; `indexing="released"` reproduces that, the
  default "intended" is the op on the masked pixels (see `released_target`).
- `detail_loss` (PSGAN++ [draft]): L1 between the output sampled bilinearly at source points
  and the reference at the corresponding reference points (mean over points x channels, or sum).
- metrics: `hist_distance` (L1 between 256-bin CDFs of the output and the reference on one
  region, averaged over channels), `masked_ssim` (SSIM on the pixels outside every makeup
  region), `attention_in_region` (fraction of in-region source pixels whose attention argmax
  lands in the same region of the reference). Regression metrics, not the papers' user study.
"""
import jax
import jax.numpy as jnp

REGION_WEIGHTS = (1.0, 0.1, 1.0)     # lip, skin, eye (LAMBDA_HIS x (1, 0.1, 1))


def _to_255(x):
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0) * 255.0


def _cdf(values, mask):
    """float32 CDF of the 256-bin histogram of `values` where mask > 0, summed in order."""
    bins = jnp.clip(jnp.floor(values), 0, 255).astype(jnp.int32)
    hist = jnp.zeros(256, jnp.float32).at[bins.reshape(-1)].add((mask > 0).reshape(-1).astype(jnp.float32))
    pdf = hist / jnp.sum(hist)

    def step(carry, p):
        c = carry + p
        return c, c
    first = pdf[0]
    _, rest = jax.lax.scan(step, first, pdf[1:])
    return jnp.concatenate([first[None], rest])


def transfer_table(cdf_a, cdf_b):
    """cal_trans(ref=cdf_a, adj=cdf_b): [256] int32 levels."""
    lo, hi = cdf_b[:-1], cdf_b[1:]                                  # adj[j-1], adj[j] for j = 1..255
    ref = cdf_a[1:, None]                                           # i = 1..255
    cond = (lo[None, :] <= ref) & (ref <= hi[None, :])
    j = jnp.argmax(cond, axis=1) + 1
    table = jnp.where(cond.any(axis=1), j, jnp.arange(1, 256))
    table = jnp.concatenate([jnp.zeros(1, table.dtype), table]).at[255].set(255)
    return table.astype(jnp.int32)


def _matched_channel(ca, cb, mask_a, mask_b):
    table = transfer_table(_cdf(ca, mask_a), _cdf(cb, mask_b))
    idx = jnp.clip(ca, 0, 255).astype(jnp.int32)                    # int() truncation (values >= 0)
    return jnp.where(mask_a > 0, table[idx].astype(ca.dtype), ca)


def histogram_target(a255m, b255m, mask_a, mask_b):
    """The matched target of one image: [H, W, 3] (no gradient)."""
    a255m, b255m = jax.lax.stop_gradient(a255m), jax.lax.stop_gradient(b255m)
    out = jax.vmap(_matched_channel, in_axes=(-1, -1, None, None), out_axes=-1)(a255m, b255m, mask_a, mask_b)
    return out


def _cdf_weighted(values, weights):
    bins = jnp.clip(jnp.floor(values), 0, 255).astype(jnp.int32)
    hist = jnp.zeros(256, jnp.float32).at[bins.reshape(-1)].add(weights.reshape(-1).astype(jnp.float32))
    pdf = hist / jnp.sum(hist)
    _, rest = jax.lax.scan(lambda c, p: (c + p, c + p), pdf[0], pdf[1:])
    return jnp.concatenate([pdf[:1], rest])


def released_target(a255m, b255m, mask_a, mask_b):
    """The matched target as the released training loop computes it: its masks are 4-D
    ([1, 1, H, W]), so `mask.unsqueeze(0).nonzero()[:, 2:4]` gives (0, y) for a masked
    pixel (y, x): the histograms read row 0 at column y (once per masked pixel of row y),
    and only those row-0 pixels are replaced. Square images only (as the official expand)."""
    a255m, b255m = jax.lax.stop_gradient(a255m), jax.lax.stop_gradient(b255m)
    cnt_a, cnt_b = jnp.sum(mask_a > 0, axis=1), jnp.sum(mask_b > 0, axis=1)     # masked pixels per row y

    def channel(ca, cb):
        row_a, row_b = ca[0], cb[0]                                            # [W]: pixel (0, y)
        table = transfer_table(_cdf_weighted(row_a, cnt_a), _cdf_weighted(row_b, cnt_b))
        new_row = jnp.where(cnt_a > 0, table[jnp.clip(row_a, 0, 255).astype(jnp.int32)].astype(ca.dtype), row_a)
        return ca.at[0].set(new_row)
    return jnp.stack([channel(a255m[..., c], b255m[..., c]) for c in range(3)], -1)


INDEXING = ("intended", "released")


def histogram_loss(a, b, mask_a, mask_b, indexing: str = "intended"):
    """[B] losses: a, b [B, H, W, 3] in [-1, 1]; masks [B, H, W] (a's region, b's region).
    `indexing="intended"`: the op on the masked pixels (HistogramLoss called with 3-D masks);
    `"released"`: what the released training loop's 4-D masks make it compute (see
    `released_target`; it leaves the loss ~0 on faces, whose row 0 is background)."""
    a_m = _to_255(a) * mask_a[..., None]
    b_m = _to_255(b) * mask_b[..., None]
    if indexing not in INDEXING:
        raise ValueError(f"unknown histogram indexing {indexing!r}: {' | '.join(INDEXING)}")
    fn = histogram_target if indexing == "intended" else released_target
    target = jax.vmap(fn)(a_m, b_m, mask_a, mask_b)
    return jnp.mean(jnp.abs(a_m - jax.lax.stop_gradient(target)), axis=(1, 2, 3))


def region_histogram_loss(out, ref, masks_out, masks_ref, weights=REGION_WEIGHTS, indexing: str = "intended"):
    """Σ_r w_r H(out | m_out^r -> ref, m_ref^r): [B]. masks [B, 3, H, W]. The regions run as
    one batched histogram op (a smaller program than one per region)."""
    b, r = out.shape[0], masks_out.shape[1]
    rep = lambda t: jnp.repeat(t[:, None], r, 1).reshape((b * r,) + t.shape[1:])   # noqa: E731
    flat = lambda m: m.reshape((b * r,) + m.shape[2:])                              # noqa: E731
    per = histogram_loss(rep(out), rep(ref), flat(masks_out), flat(masks_ref), indexing).reshape(b, r)
    return per @ jnp.asarray(weights, per.dtype)


def bilinear_sample(image, points):
    """image [H, W, C], points [K, 2] (y, x) pixel coordinates -> [K, C] (border-clamped)."""
    h, w = image.shape[:2]
    y = jnp.clip(points[:, 0], 0, h - 1)
    x = jnp.clip(points[:, 1], 0, w - 1)
    y0, x0 = jnp.floor(y).astype(jnp.int32), jnp.floor(x).astype(jnp.int32)
    y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
    wy, wx = (y - y0)[:, None], (x - x0)[:, None]
    top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def detail_loss(out, ref, points_out, points_ref, valid, reduction: str = "mean"):
    """PSGAN++ makeup detail loss [B]: Σ_k |out(L_x^k) - ref(L_y^k)|_1 over corresponding
    points (no gradient through the reference). points [B, K, 2] (y, x); valid [B, K]."""
    ref = jax.lax.stop_gradient(ref)
    po = jax.vmap(bilinear_sample)(out, points_out)
    pr = jax.vmap(bilinear_sample)(ref, points_ref)
    err = jnp.sum(jnp.abs(po - pr), -1) * valid
    if reduction == "sum":
        return jnp.sum(err, -1)
    return jnp.sum(err, -1) / jnp.maximum(jnp.sum(valid, -1) * out.shape[-1], 1.0)


# ---------------------------------------------------------------- regression metrics
def _cdf_exact(values, mask):
    bins = jnp.clip(jnp.floor(values), 0, 255).astype(jnp.int32)
    hist = jnp.zeros(256, jnp.float32).at[bins.reshape(-1)].add((mask > 0).reshape(-1).astype(jnp.float32))
    return jnp.cumsum(hist) / jnp.maximum(jnp.sum(hist), 1.0)


def hist_distance(a, b, mask_a, mask_b):
    """[B]: mean over RGB of Σ_levels |CDF_a - CDF_b| / 256 on the masked pixels (0 = same
    colour distribution, 1 = opposite ends)."""
    def one(x, y, mx, my):
        xa, yb = _to_255(x), _to_255(y)
        return jnp.mean(jnp.stack([jnp.mean(jnp.abs(_cdf_exact(xa[..., c], mx) - _cdf_exact(yb[..., c], my)))
                                   for c in range(3)]))
    return jax.vmap(one)(a, b, mask_a, mask_b)


def masked_ssim(a, b, mask, window: int = 7):
    """[B] SSIM (uniform window, data range 2 for [-1, 1] images, grey level) averaged over
    the pixels where mask > 0."""
    ga, gb = jnp.mean(a, -1), jnp.mean(b, -1)
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2

    def box(x):
        k = jnp.ones((window, window, 1, 1), x.dtype) / window ** 2
        return jax.lax.conv_general_dilated(x[..., None], k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))[..., 0]
    mu_a, mu_b = box(ga), box(gb)
    va = box(ga * ga) - mu_a ** 2
    vb = box(gb * gb) - mu_b ** 2
    cov = box(ga * gb) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    m = (mask > 0).astype(s.dtype)
    return jnp.sum(s * m, (1, 2)) / jnp.maximum(jnp.sum(m, (1, 2)), 1.0)


def attention_in_region(attn, mask_x, mask_y):
    """[B]: over source pixels inside a region r, the fraction whose attention row A^r argmax
    falls inside region r of the reference. attn [B, 3, N, N]; masks at feature size [B, 3, h, w]."""
    b = attn.shape[0]
    mx = mask_x.reshape(b, 3, -1) > 0
    my = mask_y.reshape(b, 3, -1) > 0
    arg = jnp.argmax(attn, -1)                                     # [B, 3, N]
    hit = jnp.take_along_axis(my, arg, axis=-1) & mx
    return jnp.sum(hit, (1, 2)) / jnp.maximum(jnp.sum(mx, (1, 2)), 1)
