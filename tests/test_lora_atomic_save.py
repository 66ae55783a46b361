"""save_scr_lora writes a temporary file next to the target and renames it (issue 16)."""
import pytest
import safetensors.torch
import torch

from mmseg_rass import lora
from mmseg_rass.models import diffusion


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    unet = diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)
    config = lora.make_lora_config(rank=4)
    unet.add_adapter(config)
    path = tmp_path / 'scr_lora.safetensors'
    lora.save_scr_lora(str(path), unet, config)
    before = path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['scr_lora.safetensors']

    real_save = safetensors.torch.save_file

    def killed_midway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, 'r+b') as f:  # half of it on disk, then the process dies
            f.truncate(len(before) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, 'save_file', killed_midway)
    with torch.no_grad():
        unet.conv_in.base_layer.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        lora.save_scr_lora(str(path), unet, config)
    assert path.read_bytes() == before  # the previous file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ['scr_lora.safetensors']
    lora.load_scr_lora(str(path))
