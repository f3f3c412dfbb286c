"""Thin-plate-spline style grid generators with selectable radial kernels, the bilinear
sampler of `torch.nn.functional.grid_sample(align_corners=True)`, and the second-order
grid constraint on the control points.

Conventions (sergeywong/cp-vton networks.py TpsGridGen, exact):
- normalised coordinates in [-1, 1]; output pixel (v, u) of an H x W grid sits at
  x = linspace(-1, 1, W)[u], y = linspace(-1, 1, H)[v] (align_corners=True);
- `layout="cpvton"`: control point n = i * G + j has X = axis[i], Y = axis[j] (X slowest),
  axis = linspace(-1, 1, G); `layout="acgpn"` puts Y slowest (ACGPN STNNet, whose grid
  spans `extent=0.9`);
- theta [B, 2N]: x offsets then y offsets; the source points are Q = P + theta and the
  map sends the regular point P_i (output space) to Q_i (cloth space): the grid says
  where each output pixel samples the cloth (a backward map);
- L = [[K, P~], [P~^T, 0]], P~ = [1, X, Y]; L^-1 is computed once in float64 and cast to
  float32; W = Li[:N, :N] Q, A = Li[N:, :N] Q; x' = A0 + A1 x + A2 y + sum_i W_i U(|x - P_i|).

Kernels U (`kernel=`): `tps_cpvton` d^2 log d^2 (d^2 = 0 -> 0; the reference sets d^2 = 1
before the log), `tps_acgpn` 1/2 d^2 log d^2 (NaN -> 0), `wendland_c2` (1 - r)_+^4 (4r + 1)
and `wendland_c4` (1 - r)_+^6 (35 r^2 + 18 r + 3) / 3 with r = d / a (support radius a,
`radius=`). The Wendland kernels are AVTON's (reconstructed: which variant and which a
are not stated in anything readable here; a = 1 is the default, see the spec's pitfall 10).
`reg` adds reg * I to K (0 = the references).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

KERNELS = ("tps_cpvton", "tps_acgpn", "wendland_c2", "wendland_c4")


def kernel_fn(kernel: str, radius: float = 1.0, xp=np):
    """U(d^2) for squared distances d2 (numpy or jax.numpy by `xp`)."""
    if kernel == "tps_cpvton":
        return lambda d2: (lambda s: s * xp.log(s))(xp.where(d2 == 0, 1.0, d2))
    if kernel == "tps_acgpn":
        return lambda d2: 0.5 * xp.where(d2 == 0, 0.0, d2 * xp.log(xp.where(d2 == 0, 1.0, d2)))
    if kernel in ("wendland_c2", "wendland_c4"):
        if radius <= 0:
            raise ValueError(f"wendland support radius must be > 0, got {radius}")

        def psi(d2):
            r = xp.sqrt(d2) / radius
            t = xp.maximum(1.0 - r, 0.0)
            if kernel == "wendland_c2":
                return t ** 4 * (4.0 * r + 1.0)
            return t ** 6 * (35.0 * r * r + 18.0 * r + 3.0) / 3.0
        return psi
    raise ValueError(f"unknown TPS kernel {kernel!r}: one of {KERNELS}")


def control_points(grid_size: int = 5, layout: str = "cpvton", extent: float = 1.0) -> np.ndarray:
    """[N, 2] (x, y) regular control points in the reference's order."""
    axis = np.linspace(-extent, extent, grid_size)
    slow, fast = np.meshgrid(axis, axis, indexing="ij")
    slow, fast = slow.reshape(-1), fast.reshape(-1)
    if layout == "cpvton":          # X slowest: P_Y, P_X = np.meshgrid(axis, axis)
        return np.stack([slow, fast], 1)
    if layout == "acgpn":           # Y slowest: itertools.product(y, x)
        return np.stack([fast, slow], 1)
    raise ValueError(f"unknown control-point layout {layout!r}: cpvton | acgpn")


def system_matrix(points: np.ndarray, kernel: str, radius: float = 1.0, reg: float = 0.0) -> np.ndarray:
    """L = [[K + reg I, P~], [P~^T, 0]] in float64."""
    p = np.asarray(points, np.float64)
    n = len(p)
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    k = kernel_fn(kernel, radius)(d2) + reg * np.eye(n)
    pt = np.concatenate([np.ones((n, 1)), p], 1)
    return np.block([[k, pt], [pt.T, np.zeros((3, 3))]])


def base_grid(height: int, width: int) -> np.ndarray:
    """[H, W, 2] (x, y) of every output pixel, align_corners=True."""
    gx, gy = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    return np.stack([gx, gy], -1)


class TpsGrid:
    """theta [B, 2N] -> sampling grid [B, H, W, 2] (x, y), for a fixed kernel and size.
    Constants (L^-1 and the kernel of every pixel against every control point) are
    computed once in float64 and held as float32."""

    def __init__(self, height: int, width: int, grid_size: int = 5, kernel: str = "wendland_c2",
                 radius: float = 1.0, reg: float = 0.0, layout: str = "cpvton", extent: float = 1.0):
        self.height, self.width, self.grid_size = height, width, grid_size
        self.kernel, self.radius, self.reg, self.layout = kernel, radius, reg, layout
        self.points = control_points(grid_size, layout, extent)
        self.n = len(self.points)
        li = np.linalg.inv(system_matrix(self.points, kernel, radius, reg))
        self.li_w = li[:self.n, :self.n].astype(np.float32)      # W = li_w @ Q
        self.li_a = li[self.n:, :self.n].astype(np.float32)      # A = li_a @ Q
        pix = base_grid(height, width).reshape(-1, 2)
        d2 = ((pix[:, None, :] - self.points[None, :, :]) ** 2).sum(-1)
        self.u = kernel_fn(kernel, radius)(d2).astype(np.float32)          # [HW, N]
        self.affine = np.concatenate([np.ones((len(pix), 1)), pix], 1).astype(np.float32)  # [HW, 3]

    def source_points(self, theta: jax.Array) -> jax.Array:
        """[B, N, 2] cloth-side control points Q = P + theta."""
        theta = jnp.asarray(theta, jnp.float32)
        return jnp.stack([theta[:, :self.n], theta[:, self.n:]], -1) + jnp.asarray(self.points, jnp.float32)

    def coefficients(self, q: jax.Array):
        """(W [B, N, 2], A [B, 3, 2]) of the map through the source points q [B, N, 2]."""
        hp = jax.lax.Precision.HIGHEST
        return (jnp.einsum("mn,bnc->bmc", self.li_w, q, precision=hp),
                jnp.einsum("mn,bnc->bmc", self.li_a, q, precision=hp))

    def map_points(self, q: jax.Array, xy: jax.Array) -> jax.Array:
        """The map through source points q [B, N, 2] evaluated at any points xy [..., 2]
        (shared by the batch): [B, ..., 2]."""
        w, a = self.coefficients(q)
        d2 = ((xy[..., None, :] - jnp.asarray(self.points, jnp.float32)) ** 2).sum(-1)
        u = kernel_fn(self.kernel, self.radius, jnp)(d2)
        aff = jnp.concatenate([jnp.ones(xy.shape[:-1] + (1,)), xy], -1)
        hp = jax.lax.Precision.HIGHEST
        return (jnp.einsum("...n,bnc->b...c", u, w, precision=hp)
                + jnp.einsum("...k,bkc->b...c", aff, a, precision=hp))

    def __call__(self, theta: jax.Array) -> jax.Array:
        w, a = self.coefficients(self.source_points(theta))
        hp = jax.lax.Precision.HIGHEST
        grid = (jnp.einsum("pn,bnc->bpc", self.u, w, precision=hp)
                + jnp.einsum("pk,bkc->bpc", self.affine, a, precision=hp))
        return grid.reshape(-1, self.height, self.width, 2)


@functools.lru_cache(maxsize=16)
def tps_grid(height, width, grid_size=5, kernel="wendland_c2", radius=1.0, reg=0.0, layout="cpvton",
             extent=1.0) -> TpsGrid:
    return TpsGrid(height, width, grid_size, kernel, radius, reg, layout, extent)


# ====================================================================== sampling
def grid_sample(image: jax.Array, grid: jax.Array, padding: str = "zeros") -> jax.Array:
    """torch.nn.functional.grid_sample(image, grid, mode='bilinear', padding_mode=padding,
    align_corners=True) in NHWC: image [B, H, W, C], grid [B, Ho, Wo, 2] (x, y) in [-1, 1]
    -> [B, Ho, Wo, C]. `border` clamps the source coordinates to the image (gradients
    through clamped coordinates are zero, as in PyTorch); `zeros` gives out-of-image
    neighbours weight 0."""
    b, h, w, c = image.shape
    x = (grid[..., 0] + 1.0) * 0.5 * (w - 1)
    y = (grid[..., 1] + 1.0) * 0.5 * (h - 1)
    if padding == "border":
        x, y = jnp.clip(x, 0.0, w - 1), jnp.clip(y, 0.0, h - 1)
    elif padding != "zeros":
        raise ValueError(f"unknown padding {padding!r}: zeros | border")
    x0, y0 = jnp.floor(x), jnp.floor(y)
    wx1, wy1 = x - x0, y - y0
    flat = image.reshape(b, h * w, c)
    out = 0.0
    for dy, wy in ((0, 1.0 - wy1), (1, wy1)):
        for dx, wx in ((0, 1.0 - wx1), (1, wx1)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            idx = (jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)).astype(jnp.int32)
            vals = jnp.take_along_axis(flat, idx.reshape(b, -1, 1), axis=1).reshape(idx.shape + (c,))
            out = out + vals * (wx * wy * inside)[..., None]
    return out


# ====================================================================== grid constraint
def to_acgpn_order(q: jax.Array, grid_size: int = 5) -> jax.Array:
    """[B, N, 2] points of the cpvton layout (X slowest) in ACGPN's (Y slowest) order."""
    g = grid_size
    return q.reshape(q.shape[0], g, g, 2).transpose(0, 2, 1, 3).reshape(q.shape[0], g * g, 2)


def grid_constraint_acgpn(coor: jax.Array, num: int = 5, spacing_floor: float = 0.08,
                          collinear_floor: float = 0.02, weight: float = 0.1):
    """ACGPN's second-order constraint (BoundedGridLocNet.forward + pix2pixHD_model's 0.1 +
    train.py's batch mean), on points [B, N, 2] in ACGPN's order (point j * num + i is
    row j, column i). Returns (total, {rx, ry, cx, cy, rg, cg}) with the 0.1 applied."""
    g = coor.reshape(coor.shape[0], num, num, 2)              # [B, row j, col i, xy]
    d_row = (g[:, :, 1:] - g[:, :, :-1]) ** 2                 # along i within a row
    row = jnp.abs(d_row[:, :, 1:] - d_row[:, :, :-1]).reshape(coor.shape[0], -1, 2)
    d_col = (g[:, 1:] - g[:, :-1]) ** 2                       # along j within a column
    # get_col appends column by column: order (i, j); the mean does not care
    col = jnp.abs(d_col[:, 1:] - d_col[:, :-1]).reshape(coor.shape[0], -1, 2)

    def collinear(p0, p1, p2):
        return jnp.abs((p1[..., 1] - p0[..., 1]) * (p1[..., 0] - p2[..., 0])
                       - (p1[..., 1] - p2[..., 1]) * (p1[..., 0] - p0[..., 0]))

    n_trip = num * (num - 2)
    grad_row = collinear(g[:, :, :-2], g[:, :, 1:-1], g[:, :, 2:]).reshape(coor.shape[0], -1).sum(1) / n_trip
    grad_col = collinear(g[:, :-2], g[:, 1:-1], g[:, 2:]).reshape(coor.shape[0], -1).sum(1) / n_trip
    terms = {
        "rx": jnp.maximum(spacing_floor, row[..., 0]).mean(),
        "ry": jnp.maximum(spacing_floor, row[..., 1]).mean(),
        "cx": jnp.maximum(spacing_floor, col[..., 0]).mean(),
        "cy": jnp.maximum(spacing_floor, col[..., 1]).mean(),
        "rg": jnp.maximum(grad_row, collinear_floor).mean(),
        "cg": jnp.maximum(grad_col, collinear_floor).mean(),
    }
    terms = {k: weight * v for k, v in terms.items()}
    return sum(terms.values()), terms


def grid_constraint_paper(coor: jax.Array, num: int = 5, lambda_r: float = 0.1, lambda_s: float = 0.1,
                          eps: float = 1e-6):
    """The ACGPN paper's form, sum over interior points p with left/right neighbours p0/p1
    and up/down p2/p3: lambda_r (| |pp0| - |pp1| | + | |pp2| - |pp3| |) + lambda_s
    (|S(p, p0) - S(p, p1)| + |S(p, p2) - S(p, p3)|), S the slope (dy/dx along rows, dx/dy
    along columns, so neither divides by ~0 on a regular grid), averaged over the batch."""
    g = coor.reshape(coor.shape[0], num, num, 2)
    p = g[:, 1:-1, 1:-1]
    left, right = g[:, 1:-1, :-2], g[:, 1:-1, 2:]
    up, down = g[:, :-2, 1:-1], g[:, 2:, 1:-1]
    dist = lambda a: jnp.sqrt(((a - p) ** 2).sum(-1) + eps)  # noqa: E731
    slope_r = lambda a: (a[..., 1] - p[..., 1]) / (a[..., 0] - p[..., 0] + eps)  # noqa: E731
    slope_c = lambda a: (a[..., 0] - p[..., 0]) / (a[..., 1] - p[..., 1] + eps)  # noqa: E731
    r = jnp.abs(dist(left) - dist(right)) + jnp.abs(dist(up) - dist(down))
    s = jnp.abs(slope_r(left) - slope_r(right)) + jnp.abs(slope_c(up) - slope_c(down))
    total = (lambda_r * r + lambda_s * s).sum((1, 2)).mean()
    return total, {"spacing": (lambda_r * r).sum((1, 2)).mean(), "slope": (lambda_s * s).sum((1, 2)).mean()}
