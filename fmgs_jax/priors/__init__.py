"""Foundation-model priors (Sapiens, transformers models, corrupted ground truth) and their on-disk cache.

Importing this package needs only NumPy: torch and transformers are imported inside the model backends
(`sapiens`, `hf`, `inference`), which only `--mode=priors` loads.
"""

from fmgs_jax.priors.cache import attach_priors
from fmgs_jax.priors.cache import load_priors
from fmgs_jax.priors.cache import PriorReader
from fmgs_jax.priors.labels import IGNORE
from fmgs_jax.priors.labels import SAPIENS_CLASSES

__all__ = ["attach_priors", "load_priors", "PriorReader", "IGNORE", "SAPIENS_CLASSES"]
