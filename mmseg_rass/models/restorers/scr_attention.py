"""Cross-attention probabilities of the SD UNet, exposed for L_SCL (explicit softmax, not SDPA)."""
import torch
from diffusers.models.attention_processor import AttnProcessor2_0


class AttentionStore:
    """Collects cross-attention probabilities at chosen resolutions during one UNet pass.

    Args:
        strides (tuple[int]): Strides relative to the latent (``1`` = latent resolution) whose
            attention maps are kept; SD at 512² has latent 64², so strides (1, 2, 4, 8) keep the
            64², 32², 16² and 8² maps.

    Attributes:
        maps (dict[int, list[Tensor]]): stride -> probabilities (B, heads, h*w, L) per layer.
        recording (bool): Whether processors take the explicit-softmax path (else fused SDPA).
        collect (bool): Whether recorded maps are kept. The owner clears it once the loss is
            built, so the recomputation of a gradient-checkpointed pass runs the same path
            without keeping its maps.
        latent_hw (tuple[int, int]): Latent size of the current pass, set by the owner.
    """

    def __init__(self, strides=(1, 2, 4, 8)):
        self.strides = tuple(int(s) for s in strides)
        self.maps = {}
        self.recording = False
        self.collect = False
        self.latent_hw = None

    def reset(self, latent_hw=None, recording=False):
        """Drop recorded maps and set up the next pass."""
        self.maps = {}
        self.latent_hw = latent_hw
        self.recording = self.collect = recording

    def release(self):
        """Drop recorded maps and stop collecting (the path taken stays the same)."""
        self.maps = {}
        self.collect = False

    def stride_of(self, num_queries):
        """The kept stride whose map has ``num_queries`` positions, or None."""
        h, w = self.latent_hw
        for stride in self.strides:
            if -(-h // stride) * -(-w // stride) == num_queries:
                return stride
        return None

    def spatial_size(self, stride):
        h, w = self.latent_hw
        return -(-h // stride), -(-w // stride)

    def add(self, stride, probs):
        if self.collect:
            self.maps.setdefault(stride, []).append(probs)


class SCRAttnProcessor:
    """Cross-attention (``attn2``) processor that records softmax probabilities.

    While ``store.recording`` is set it computes ``softmax(QK^T / sqrt(d))`` explicitly and stores
    the probabilities (B, heads, h*w, L) of layers at the store's resolutions; otherwise it
    delegates to diffusers' fused :class:`AttnProcessor2_0` (same result, less memory).

    Args:
        store (AttentionStore): Shared by every ``attn2`` layer of the UNet.
    """

    def __init__(self, store):
        self.store = store
        self.fused = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        if not self.store.recording or encoder_hidden_states is None:
            return self.fused(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, num_tokens = encoder_hidden_states.shape[:2]
        attention_mask = attn.prepare_attention_mask(attention_mask, num_tokens, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)

        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        probs = attn.get_attention_scores(query, key, attention_mask)  # (B*heads, N, L)
        stride = self.store.stride_of(probs.shape[1])
        if stride is not None:
            self.store.add(stride, probs.view(batch, attn.heads, *probs.shape[1:]))
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))

        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def set_scr_attn_processors(unet, store):
    """Give every cross-attention (``attn2``) layer of ``unet`` an :class:`SCRAttnProcessor`.

    Self-attention layers keep their processors.

    Args:
        unet (UNet2DConditionModel): The UNet (optionally carrying peft adapters).
        store (AttentionStore): Where the probabilities go.
    """
    processors = {
        name: (SCRAttnProcessor(store) if name.endswith('attn2.processor') else proc)
        for name, proc in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)
