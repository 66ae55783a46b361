"""Policy: distributed training and testing on CPU processes (``tools/dist_train.sh`` without a
GPU), with ``SyncBN`` keeping its meaning.

mmengine 0.10.7 calls ``torch.cuda.set_device`` and asks for the ``nccl`` backend (mmseg's
``default_runtime``), and its runner passes ``device_ids=[LOCAL_RANK]`` to DDP; all three fail on
CPU. With no accelerator the process group uses ``gloo`` (``nccl`` needs CUDA; any other
configured backend is kept), no device is selected, and ``MMDistributedDataParallel`` drops
``device_ids`` for a CPU module. GPUs are untouched. torch has no CPU kernels for
``SyncBatchNorm``, which most mmseg configs use: on CPU processes it runs
:class:`CPUSyncBatchNormFunction` (statistics all-reduced over the process group, the result of
SyncBN on GPUs: never a silent switch to per-process BN). At the end of a tool run the gloo
process group is destroyed while the interpreter is still alive
(:func:`destroy_gloo_process_group`). Switch: ``MMSEG_RASS_CPU_DISTRIBUTED`` (read at each call).
"""
import torch
import torch.distributed as dist

from .base import replace, switched_on

CPU_DISTRIBUTED_ENV = 'MMSEG_RASS_CPU_DISTRIBUTED'


def _cpu_only():
    """Whether mmengine would run on the CPU (no CUDA, NPU, MLU, MUSA or MPS device)."""
    from mmengine.device import get_device
    return get_device() == 'cpu'


def patch_dist_init():
    """``gloo`` and no ``torch.cuda.set_device`` when there is no accelerator."""
    from mmengine.dist import utils as dist_utils

    @replace(dist_utils, '_init_dist_pytorch')
    def init_dist_pytorch(original, backend='nccl', init_backend='torch', **kwargs):
        if init_backend != 'torch' or not switched_on(CPU_DISTRIBUTED_ENV) or not _cpu_only():
            return original(backend, init_backend=init_backend, **kwargs)
        from mmengine.logging import print_log
        if backend == 'nccl':
            backend = 'gloo'
            print_log('no GPU: the process group uses the gloo backend (nccl needs CUDA)',
                      logger='current')
        dist.init_process_group(backend=backend, **kwargs)


def patch_ddp_device_ids():
    """No DDP ``device_ids`` for a CPU module; SyncBN accepted on CPU processes."""
    from mmengine.model.wrappers import MMDistributedDataParallel

    @replace(MMDistributedDataParallel, '__init__')
    def __init__(original, self, module, detect_anomalous_params=False, **kwargs):
        params = list(module.parameters()) + list(module.buffers())
        if (switched_on(CPU_DISTRIBUTED_ENV) and kwargs.get('device_ids') is not None and params
                and all(p.device.type == 'cpu' for p in params)):
            kwargs['device_ids'] = None  # DDP refuses device ids for a CPU module
        original(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    @replace(MMDistributedDataParallel, '_passing_sync_batchnorm_handle')
    def passing_sync_batchnorm_handle(original, self, module):
        if self.device_type != 'cpu' or not switched_on(CPU_DISTRIBUTED_ENV):
            original(self, module)  # torch refuses SyncBN on CPU: it runs on CPU here


class CPUSyncBatchNormFunction(torch.autograd.Function):
    """Synchronised batch norm on CPU tensors (torch's SyncBN kernels exist for GPUs only).

    The computation of ``torch.nn.SyncBatchNorm`` in training: the batch mean and (biased)
    variance are taken over the samples of every process in ``group`` (sums all-reduced), the
    running statistics are updated with the unbiased variance, and the input gradient uses the
    all-reduced sums of ``grad`` and ``grad * x_hat``; the weight and bias gradients stay local
    (DDP averages them), as in torch. Statistics are computed in float32.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, channels] + [1] * (x.dim() - 2)
        acc = x.float()
        sums = torch.cat([acc.sum(dims), acc.new_tensor([acc.numel() // channels])])
        dist.all_reduce(sums, group=group)
        count = sums[-1].item()
        if count <= 1:
            raise ValueError('Expected more than 1 value per channel when training, got '
                             f'{int(count)} over all processes')
        mean = sums[:-1] / count
        centred = acc - mean.view(shape)
        sq_sum = (centred * centred).sum(dims)
        dist.all_reduce(sq_sum, group=group)
        invstd = torch.rsqrt(sq_sum / count + eps)
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            unbiased = (sq_sum / (count - 1)).to(running_var.dtype)
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        x_hat = centred * invstd.view(shape)
        out = x_hat
        if weight is not None:
            out = out * weight.float().view(shape) + bias.float().view(shape)
        ctx.save_for_backward(x_hat, weight, invstd)
        ctx.count, ctx.group = count, group
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, invstd = ctx.saved_tensors
        channels = x_hat.shape[1]
        dims = [0, *range(2, x_hat.dim())]
        shape = [1, channels] + [1] * (x_hat.dim() - 2)
        grad = grad_out.float()
        sums = torch.cat([grad.sum(dims), (grad * x_hat).sum(dims)])
        grad_weight = grad_bias = None
        if weight is not None:  # local, as in torch: DDP averages parameter gradients
            grad_bias = sums[:channels].to(weight.dtype)
            grad_weight = sums[channels:].to(weight.dtype)
        sums = sums.clone()
        dist.all_reduce(sums, group=ctx.group)
        sum_dy, sum_dy_xhat = sums[:channels], sums[channels:]
        scale = invstd if weight is None else invstd * weight.float()
        grad_in = (grad - (sum_dy / ctx.count).view(shape)
                   - x_hat * (sum_dy_xhat / ctx.count).view(shape)) * scale.view(shape)
        return grad_in.to(grad_out.dtype), grad_weight, grad_bias, None, None, None, None, None


def patch_sync_batchnorm():
    """``SyncBatchNorm`` on CPU processes runs :class:`CPUSyncBatchNormFunction`."""

    @replace(torch.nn.SyncBatchNorm, 'forward')
    def forward(original, self, input):
        if not (input.device.type == 'cpu' and self.training and dist.is_available()
                and dist.is_initialized() and switched_on(CPU_DISTRIBUTED_ENV)):
            return original(self, input)
        group = self.process_group or dist.group.WORLD
        if dist.get_world_size(group) < 2:
            return original(self, input)
        self._check_input_dim(input)
        self._check_non_zero_input_channels(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / self.num_batches_tracked.item()
        running_mean = self.running_mean if self.track_running_stats else None
        running_var = self.running_var if self.track_running_stats else None
        return CPUSyncBatchNormFunction.apply(input, self.weight, self.bias, running_mean,
                                              running_var, self.eps, momentum, group)


def patch_cpu_distributed():
    """Install the three patches (idempotent)."""
    patch_dist_init()
    patch_ddp_device_ids()
    patch_sync_batchnorm()


def destroy_gloo_process_group():
    """Destroy an initialised ``gloo`` process group (after a garbage collection).

    mmengine never destroys its process group. A gloo group still alive when the interpreter
    shuts down can abort the process after the run's work is done ("terminate called without
    an active exception", SIGABRT: gloo's threads torn down during finalisation; measured here
    in 2 of 30 two-process runs under load, 0 of 30 once the group was released first), so a
    finished ``tools/dist_train.sh`` on CPUs could still exit with an error.
    """
    if (switched_on(CPU_DISTRIBUTED_ENV) and dist.is_available() and dist.is_initialized()
            and dist.get_backend() == 'gloo'):
        import gc
        gc.collect()  # drop what still references the group (a finished runner's DDP wrapper)
        dist.destroy_process_group()
