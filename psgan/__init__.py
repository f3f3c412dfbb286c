"""PSGAN++: Robust, Detail-Preserving Makeup Transfer and Removal (Liu et al., TPAMI 2021),
with PSGAN (Jiang et al., CVPR 2020) as its released core (wtjiang98/PSGAN)."""
from common.models import register_variants
from psgan.model import VARIANTS, Discriminator, Generator, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "Discriminator", "Generator", "create_model"]
