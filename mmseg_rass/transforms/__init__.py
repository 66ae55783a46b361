from .degradation import Degrade
from .imagenet_c import Corrupt
from .loading import LoadHQImage, LoadImage
from .pack_restoration import PackRestorationInputs
from .pack_sam_priors import PackSegInputsWithSAMPriors
from .sam_priors import LoadSAMPriors

__all__ = ['Corrupt', 'Degrade', 'LoadHQImage', 'LoadImage', 'LoadSAMPriors', 'PackRestorationInputs', 'PackSegInputsWithSAMPriors']
