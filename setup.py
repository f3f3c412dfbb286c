"""Faithful, fast, shardable JAX/Flax ports of ten vision and multimedia papers."""
from setuptools import find_packages, setup

PACKAGES = ["common", "metaformer", "volo", "permutator", "dualformer", "longtail",
            "pnp_detr", "mvp", "cmt", "avton", "psgan"]

setup(
    name="sail-papers-jax",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, name + ".*")]),
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "tensorflow-datasets>=4.9.7",
        "importlib_resources",       # tfds imports it when building datasets
        "array_record>=0.5",
        "grain>=0.2.10",
        "einops>=0.8",
        "chex>=0.1.88",
        "numpy>=1.26",
        "pillow>=10",
        "scikit-learn>=1.3",         # ships the digits data of the demo and Digits-LT
        "absl-py",
        "tqdm",
        "tensorboardX>=2.6",
        "matplotlib>=3.7",
        "safetensors>=0.4",
        "scipy>=1.10",               # Hungarian matching (linear_sum_assignment) in detection losses
        "pycocotools>=2.0.7",        # COCO box AP of the detection evaluators
        "mido>=1.3", "music21>=9.1", "opencv-python-headless>=4.8",   # MIDI i/o, chorale stand-in, video flow
    ],
    extras_require={
        # preparing real datasets (ImageNet JPEG encoding, Kinetics decoding)
        "data": ["tensorflow-cpu>=2.16", "opencv-python-headless>=4.8", "av>=12"],
        # reading official .pth checkpoints
        "convert": ["torch>=2.0", "safetensors>=0.4"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "torch>=2.0", "torchvision>=0.18", "timm>=1.0.9",
                 "opencv-python-headless>=4.8", "scikit-image>=0.22"],
    },
)
