"""CMT: Video Background Music Generation with Controllable Music Transformer (Di et al., ACM MM 2021)."""
from cmt import model  # noqa: F401 - registers the variants (cmt:cmt, cmt:tiny, cmt:small)
