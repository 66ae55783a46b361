"""``SCRDatasetMetaHook``: give the SCR restorer the dataset's class names for its prompts."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


@HOOKS.register_module()
class SCRDatasetMetaHook(Hook):
    """Before training / validation / testing, pass ``dataset.metainfo['classes']`` to the model.

    The model must have ``set_class_names`` (``SCRRestorer``); names it already has (set in
    the config) are kept.
    """

    priority = 'NORMAL'

    @staticmethod
    def _set(runner, loop):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_class_names'):
            raise TypeError(f'SCRDatasetMetaHook needs a model with set_class_names '
                            f'(SCRRestorer), got {type(model).__name__}')
        if model.class_names is None:
            classes = loop.dataloader.dataset.metainfo.get('classes')
            if not classes:
                raise ValueError('SCRDatasetMetaHook: the dataset metainfo has no `classes`')
            model.set_class_names(classes)

    def before_train(self, runner):
        self._set(runner, runner.train_loop)

    def before_val(self, runner):
        self._set(runner, runner.val_loop)

    def before_test(self, runner):
        self._set(runner, runner.test_loop)
