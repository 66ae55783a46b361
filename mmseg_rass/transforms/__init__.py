from .degradation import Degrade
from .loading import LoadImage
from .pack_restoration import PackRestorationInputs
from .pack_sam_priors import PackSegInputsWithSAMPriors
from .sam_priors import LoadSAMPriors

__all__ = ['Degrade', 'LoadImage', 'LoadSAMPriors', 'PackRestorationInputs', 'PackSegInputsWithSAMPriors']
