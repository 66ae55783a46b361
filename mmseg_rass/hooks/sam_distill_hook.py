"""SAMDistillHook: owns and trains the SAM-prior teacher of SPD/SGR distillation."""
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
from mmengine.runner import load_checkpoint
from mmseg.registry import HOOKS, MODELS

CHECKPOINT_KEY = 'sam_distill_teacher'


@HOOKS.register_module()
class SAMDistillHook(Hook):
    """Build the teacher when training starts, attach it to the student, step its optimizer.

    The teacher (``SAMDistillTeacher``) lives outside the runner's model: it is not in the
    runner's optimizer (it has its own, stepped after every iteration from the gradients of
    the shared backward pass, averaged across ranks in distributed training), not wrapped by
    DDP and not saved in checkpoints unless ``save_teacher=True``. Nothing is built at
    test/val time, so ``tools/test.py`` runs the student alone (no SAM, no priors, no VGG).

    Args:
        teacher (dict): config of the teacher (``type='SAMDistillTeacher'``).
        optim_wrapper (dict): mmengine optim-wrapper config of the teacher's optimizer.
        train_teacher (bool): train the teacher jointly (False keeps it frozen, e.g. with a
            pretrained ``teacher_checkpoint``).
        teacher_checkpoint (str, optional): teacher weights to start from.
        save_teacher (bool): also store teacher and teacher-optimizer states in checkpoints
            (under ``'sam_distill_teacher'``) so ``--resume`` restores them.
    """

    priority = 'NORMAL'

    def __init__(self, teacher, optim_wrapper=dict(optimizer=dict(type='AdamW', lr=6e-5,
                                                                   weight_decay=0.01)),
                 train_teacher=True, teacher_checkpoint=None, save_teacher=False):
        self.teacher_cfg = teacher
        self.optim_wrapper_cfg = optim_wrapper
        self.train_teacher = train_teacher
        self.teacher_checkpoint = teacher_checkpoint
        self.save_teacher = save_teacher
        self.teacher = None
        self.teacher_optim = None
        self._resume_state = None

    @staticmethod
    def _student(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'attach_teacher'):
            raise TypeError(f'SAMDistillHook needs model type SAMDistillEncoderDecoder, got '
                            f'{type(model).__name__}')
        return model

    def before_train(self, runner):
        """Build the teacher (and its optimizer), restore it on resume, attach it."""
        student = self._student(runner)
        if self.train_teacher and isinstance(runner.optim_wrapper, AmpOptimWrapper):
            raise ValueError('SAMDistillHook with train_teacher=True does not support AMP '
                             '(the shared loss scale would reach the teacher optimizer): '
                             'train without --amp or use a pretrained frozen teacher')
        device = next(student.parameters()).device
        self.teacher = MODELS.build(self.teacher_cfg)
        self.teacher.init_weights()
        if self.teacher_checkpoint:
            load_checkpoint(self.teacher, self.teacher_checkpoint, map_location='cpu')
        self.teacher.to(device)
        if self.train_teacher:
            self.teacher_optim = build_optim_wrapper(self.teacher, self.optim_wrapper_cfg)
        else:
            self.teacher.requires_grad_(False)
        if self._resume_state is not None:
            self.teacher.load_state_dict(self._resume_state['state_dict'])
            if self.teacher_optim is not None and 'optimizer' in self._resume_state:
                self.teacher_optim.load_state_dict(self._resume_state['optimizer'])
            self._resume_state = None
        student.attach_teacher(self.teacher)

    def before_train_epoch(self, runner):
        """Put the teacher in the student's mode (the runner only switches the student)."""
        self.teacher.train(self.train_teacher)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Average the teacher's gradients across ranks and step its optimizer."""
        if self.teacher_optim is None:
            return
        if dist.get_world_size() > 1:
            for p in self.teacher.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op='mean')
        self.teacher_optim.step()
        self.teacher_optim.zero_grad()

    def after_train(self, runner):
        """Detach the teacher so later val/test runs use the student alone."""
        self._student(runner).attach_teacher(None)

    def before_save_checkpoint(self, runner, checkpoint):
        """Store the teacher only when ``save_teacher``."""
        if self.save_teacher and self.teacher is not None:
            state = dict(state_dict=self.teacher.state_dict())
            if self.teacher_optim is not None:
                state['optimizer'] = self.teacher_optim.state_dict()
            checkpoint[CHECKPOINT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint):
        """Keep a resumed teacher state until the teacher is built in ``before_train``."""
        if self.save_teacher and CHECKPOINT_KEY in checkpoint:
            self._resume_state = checkpoint[CHECKPOINT_KEY]
