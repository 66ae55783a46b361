"""Optimizer wrapper constructor that leaves frozen sub-modules out of the parameter groups."""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class RASSOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` (same ``paramwise_cfg``) that skips frozen sub-modules.

    With ``paramwise_cfg`` the default constructor logs one warning per frozen parameter
    (about 1,500 for the frozen SD2.1 UNet + VAE of :class:`RASSBackbone`). Here a sub-module
    whose parameters all have ``requires_grad=False`` is left out of the optimizer; the
    trainable parameters are grouped exactly as by the default constructor.
    """

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        """Add ``module``'s parameter groups to ``params`` unless it is entirely frozen."""
        if not any(p.requires_grad for p in module.parameters()):
            return
        super().add_params(params, module, prefix=prefix, is_dcn_module=is_dcn_module)
