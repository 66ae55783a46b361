"""mmseg_rass: segmentation on low-quality images as an mmsegmentation plug-in."""
from setuptools import find_packages, setup

setup(
    name='mmseg_rass',
    version='0.1.0',
    description='Restoration-adapted semantic segmentation (RASS, SCR, SPT, SPD) for mmsegmentation',
    long_description=open('README.md', encoding='utf-8').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_rass', 'mmseg_rass.*']),
    python_requires='>=3.9',
    # mmcv is not listed: it is either `mmcv-lite` (default) or a full `mmcv` build, two
    # distributions with one import name; tools/setup_env.sh installs the chosen one.
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine==0.10.7',
        'mmsegmentation==1.2.2',
        'mmdet==3.3.0',  # Mask2Former head (configs/rass/rass_mask2former_*); works with mmcv-lite
        'setuptools<82',
        'diffusers>=0.30',
        'transformers>=4.40',
        'peft>=0.13',
        'safetensors',
        'segment-anything==1.0',
        'matplotlib',
        'ftfy',
        'regex',
        'lpips==0.1.4',  # SCR: LPIPS loss/metric architecture (weights from a local file)
        'tqdm',  # tools/extract_sam_priors.py progress bar (already a transformers dependency)
    ],
    extras_require={
        'tests': ['pytest'],
        # ImageNet-C frost textures (read from the package) and the fidelity/speed reference
        'benchmark': ['imagecorruptions==1.1.2'],
        # what pyiqa 0.1.16 needs for SegSR's Real-ISR metrics (MANIQA: timm, einops; CLIPIQA:
        # openai-clip); pyiqa itself is installed with --no-deps by tools/setup_env.sh
        'iqa': ['timm==1.0.31', 'einops==0.8.2', 'openai-clip==1.0.1'],
    },
)
