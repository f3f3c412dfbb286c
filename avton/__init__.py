"""AVTON (Liu et al., arXiv 2111.12346): arbitrary virtual try-on with a limbs prediction
module, a geometric matching module with a Wendland-kernel TPS and a trade-off fusion
module. Importing the package registers its model variants (avton/model.py)."""
from avton import model  # noqa: F401  (registers the variants)
