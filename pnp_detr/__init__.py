"""PnP-DETR: Towards Efficient Visual Analysis with Transformers (Wang et al., ICCV 2021),
with plain DETR (Carion et al., ECCV 2020) as the sampler-less variant."""
from common.models import register_variants
from pnp_detr.model import VARIANTS, PnPDETR, create_model

register_variants(__name__, VARIANTS, create_model)

__all__ = ["VARIANTS", "PnPDETR", "create_model"]
