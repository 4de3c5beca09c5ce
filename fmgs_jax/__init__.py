"""fmgs-jax: FMGS-Avatar (mesh-guided 2D Gaussian splatting with foundation-model priors) in JAX."""

__version__ = "0.1.0"
