"""SAMDistillHook: owns and trains the SAM-prior teacher of SPD/SGR distillation."""
import copy
import warnings
from collections import OrderedDict

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import HOOKS, MODELS

CHECKPOINT_KEY = 'sam_distill_teacher'
# Frozen teacher parts that are rebuilt from their own weights files, not checkpointed.
FROZEN_PREFIXES = ('sgr_loss.', )


@HOOKS.register_module()
class SAMDistillHook(Hook):
    """Build the teacher when training starts, attach it to the student, step its optimizer.

    The teacher (``SAMDistillTeacher`` or ``SAMCascadeTeacher``) lives outside the runner's
    model: it is not wrapped by DDP (its gradients are averaged across ranks here) and not in
    the student's ``state_dict``, so ``tools/test.py`` runs the student alone (no SAM, no
    priors, no VGG, no teacher). Its optimizer follows the run: same optim-wrapper config
    (optimizer, gradient clipping, constructor) unless overridden, a step exactly when the
    runner's optimizer steps (so gradient accumulation is shared: the teacher's gradients come
    from the same scaled backward pass), and the run's ``param_scheduler`` rebuilt for it and
    stepped like mmengine's ``ParamSchedulerHook`` does. Teacher weights, optimizer and
    scheduler states go into every checkpoint under ``'sam_distill_teacher'`` (plain tensors,
    dicts and numbers, loadable with ``weights_only=True``) and come back on ``--resume``.

    Args:
        teacher (dict): config of the teacher.
        optim_wrapper (dict, optional): entries replacing those of the run's ``optim_wrapper``
            config for the teacher (e.g. ``dict(optimizer=dict(type='AdamW', lr=1e-3))``; an
            entry set to None is removed). None: the run's config as is.
        param_scheduler (list[dict], optional): the teacher's schedule; None: the run's.
            ``[]`` keeps the teacher's learning rate constant.
        train_teacher (bool): train the teacher jointly (False keeps it frozen, e.g. with a
            pretrained ``teacher_checkpoint``).
        teacher_checkpoint (str, optional): teacher weights to start from, loaded strictly: a
            checkpoint of a run with this hook (its ``'sam_distill_teacher'`` entry) or a file
            of the teacher's state dict.
        save_teacher (bool): store the teacher in checkpoints (default True). Without it,
            ``--resume`` cannot continue the teacher.
        resume_without_teacher (bool): allow resuming from a checkpoint that holds no teacher
            state, restarting the teacher from its initial weights (a warning is logged).
            Default False: such a resume raises.
    """

    priority = 'NORMAL'

    def __init__(self, teacher, optim_wrapper=None, param_scheduler=None, train_teacher=True,
                 teacher_checkpoint=None, save_teacher=True, resume_without_teacher=False):
        self.teacher_cfg = teacher
        self.optim_wrapper_cfg = optim_wrapper
        self.param_scheduler_cfg = param_scheduler
        self.train_teacher = train_teacher
        self.teacher_checkpoint = teacher_checkpoint
        self.save_teacher = save_teacher
        self.resume_without_teacher = resume_without_teacher
        self.teacher = None
        self.teacher_optim = None
        self.teacher_schedulers = []
        self._clip_grad = None
        self._loaded_state = None

    @staticmethod
    def _student(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'attach_teacher'):
            raise TypeError(f'SAMDistillHook needs model type SAMDistillEncoderDecoder, got '
                            f'{type(model).__name__}')
        return model

    def _optim_cfg(self, runner):
        """The run's optim-wrapper config with this hook's overrides."""
        cfg = copy.deepcopy(dict(runner.cfg.get('optim_wrapper') or {}))
        for key, value in copy.deepcopy(dict(self.optim_wrapper_cfg or {})).items():
            if value is None:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        if 'optimizer' not in cfg:
            raise ValueError('SAMDistillHook: no optimizer for the teacher; set the run\'s '
                             'optim_wrapper or SAMDistillHook(optim_wrapper=dict(optimizer=...))')
        cfg.setdefault('type', 'OptimWrapper')
        self._clip_grad = cfg.pop('clip_grad', None)
        return cfg

    def _build_optimization(self, runner):
        self.teacher_optim = build_optim_wrapper(self.teacher, self._optim_cfg(runner))
        if type(self.teacher_optim) is not OptimWrapper:
            raise TypeError(f'SAMDistillHook: teacher optim wrapper type '
                            f'{type(self.teacher_optim).__name__} is not supported (OptimWrapper)')
        schedulers = self.param_scheduler_cfg
        if schedulers is None:
            schedulers = runner.cfg.get('param_scheduler') or []
        if isinstance(schedulers, dict):
            schedulers = [schedulers]
        self.teacher_schedulers = runner._build_param_scheduler(  # mmengine's own defaults
            copy.deepcopy(list(schedulers)), self.teacher_optim) if schedulers else []

    def before_train(self, runner):
        """Build the teacher (and its optimization), restore it on resume, attach it."""
        student = self._student(runner)
        if self.train_teacher and isinstance(runner.optim_wrapper, AmpOptimWrapper):
            raise ValueError('SAMDistillHook with train_teacher=True does not support AMP '
                             '(the shared loss scale would reach the teacher optimizer): '
                             'train without --amp or use a pretrained frozen teacher')
        if self.train_teacher and not isinstance(runner.optim_wrapper, OptimWrapper):
            raise TypeError('SAMDistillHook follows the run\'s single optim wrapper; got '
                            f'{type(runner.optim_wrapper).__name__}')
        device = next(student.parameters()).device
        self.teacher = MODELS.build(self.teacher_cfg)
        self.teacher.init_weights()
        if self.teacher_checkpoint:
            self._load_teacher_checkpoint()
        self.teacher.to(device)
        if self.train_teacher:
            self._build_optimization(runner)
        else:
            self.teacher.requires_grad_(False)
        state, self._loaded_state = self._loaded_state, None
        if runner.iter > 0:  # resumed
            if state is not None:
                self._restore(state)
            elif self.resume_without_teacher:
                warnings.warn('SAMDistillHook: resumed without teacher state '
                              '(resume_without_teacher=True): the teacher restarts from its '
                              'initial weights')
            else:
                raise RuntimeError(
                    f'SAMDistillHook: the checkpoint resumed at iteration {runner.iter} holds no '
                    f'teacher state ("{CHECKPOINT_KEY}"; saved with save_teacher=False or by an '
                    'older version): the teacher would restart from random weights. Resume from '
                    'a checkpoint with the teacher, or set resume_without_teacher=True on '
                    'SAMDistillHook to accept a fresh teacher')
        student.attach_teacher(self.teacher)

    def _load_teacher_weights(self, state_dict, source):
        """Load teacher weights strictly (only the frozen ``FROZEN_PREFIXES`` may be absent)."""
        missing, unexpected = self.teacher.load_state_dict(state_dict, strict=False)
        wrong = [k for k in missing if not k.startswith(FROZEN_PREFIXES)] + list(unexpected)
        if wrong:
            raise RuntimeError(f'SAMDistillHook: {source} does not match the configured teacher '
                               f'({len(wrong)} missing/unexpected keys, first: {wrong[:10]})')

    def _load_teacher_checkpoint(self):
        """Teacher weights from ``teacher_checkpoint``: a training checkpoint (its
        ``'sam_distill_teacher'`` entry) or a file of the teacher's own state dict."""
        checkpoint = CheckpointLoader.load_checkpoint(self.teacher_checkpoint, map_location='cpu')
        if CHECKPOINT_KEY in checkpoint:
            state = checkpoint[CHECKPOINT_KEY]['state_dict']
        else:
            state = checkpoint.get('state_dict', checkpoint)
        self._load_teacher_weights(state, f'teacher_checkpoint {self.teacher_checkpoint}')

    def _restore(self, state):
        self._load_teacher_weights(state['state_dict'], "the resumed checkpoint's teacher")
        if self.teacher_optim is not None:
            if 'optimizer' not in state or \
                    len(state.get('param_schedulers', [])) != len(self.teacher_schedulers):
                raise RuntimeError('SAMDistillHook: the checkpoint\'s teacher has no optimizer '
                                   'or a different number of LR schedulers than configured')
            self.teacher_optim.load_state_dict(state['optimizer'])
            for scheduler, s_state in zip(self.teacher_schedulers, state['param_schedulers']):
                scheduler.load_state_dict(s_state)

    def before_train_epoch(self, runner):
        """Put the teacher in the student's mode (the runner only switches the student)."""
        self.teacher.train(self.train_teacher)

    def _clip(self, runner):
        params = [p for p in self.teacher.parameters() if p.grad is not None]
        clip = dict(self._clip_grad)
        kind = clip.pop('type', 'norm')
        if kind == 'norm':
            norm = torch.nn.utils.clip_grad_norm_(params, **clip)
            runner.message_hub.update_scalar('train/teacher_grad_norm', float(norm))
        elif kind == 'value':
            torch.nn.utils.clip_grad_value_(params, **clip)
        else:
            raise ValueError(f"clip_grad type must be 'norm' or 'value', got {kind!r}")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Step the teacher when the run's optimizer stepped; then its iteration schedulers."""
        if self.teacher_optim is None:
            return
        if runner.optim_wrapper.should_update():
            if dist.get_world_size() > 1:
                for p in self.teacher.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad, op='mean')
            if self._clip_grad:
                self._clip(runner)
            self.teacher_optim.step()
            self.teacher_optim.zero_grad()
        for scheduler in self.teacher_schedulers:
            if not scheduler.by_epoch:
                scheduler.step()

    def after_train_epoch(self, runner):
        """Step the teacher's epoch-based schedulers."""
        for scheduler in self.teacher_schedulers:
            if scheduler.by_epoch:
                scheduler.step()

    def after_train(self, runner):
        """Detach the teacher so later val/test runs use the student alone."""
        self._student(runner).attach_teacher(None)

    def before_save_checkpoint(self, runner, checkpoint):
        """Store teacher weights (frozen SGR VGG excluded), optimizer and schedulers."""
        if not self.save_teacher or self.teacher is None:
            return
        state = dict(state_dict=OrderedDict(
            (k, v) for k, v in self.teacher.state_dict().items()
            if not k.startswith(FROZEN_PREFIXES)))
        if self.teacher_optim is not None:
            state['optimizer'] = self.teacher_optim.state_dict()
            state['param_schedulers'] = [s.state_dict() for s in self.teacher_schedulers]
        checkpoint[CHECKPOINT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint):
        """Keep the teacher state until the teacher is built in ``before_train`` (resume only)."""
        self._loaded_state = checkpoint.get(CHECKPOINT_KEY)
