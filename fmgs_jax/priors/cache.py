"""On-disk cache of per-frame priors: one .npz per frame plus a JSON manifest. NumPy only (no torch).

Layout of a cache folder:
```
manifest.json           what produced the cache and which frames are done
frames/<key>.npz        normal (H, W, 3) float32, depth (H, W) float32, parts (H, W) int16, valid (H, W) bool
```
Per-frame arrays (any subset of the first three, depending on the models configured):
* `normal`: unit vectors in the camera frame with OpenCV axes (x right, y down, z forward), facing the
  camera (z < 0 on visible surfaces); zero where `valid` is False.
* `depth`: relative depth exactly as the model gives it (its kind is in the manifest:
  `relative_depth`, `affine_depth`, `inverse_depth` or `pointmap_z`); zero where not valid.
* `parts`: Sapiens 28-class ids (`manifest["class_names"]`), -1 where the source class has no Sapiens
  counterpart (`manifest["ignore_label"]`); 0 (Background) outside the person.
* `valid`: where the priors speak for the person (mask inside the model's crop, minus what it missed).

The manifest records the producing configuration (`identity`: backend, model identifiers and file
fingerprints, input resolution, preprocessing, normal convention, depth kind, corruption levels) and,
per frame, the file name, its SHA-256 and the frame size. A frame counts as done only if its file exists
and its hash matches, so an interrupted run resumes where it stopped and a truncated file is redone; a
different `identity` invalidates every frame. Files and the manifest are written atomically
(temporary file + rename).
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from fmgs_jax import errors
from fmgs_jax.priors import labels as labels_lib

MANIFEST = "manifest.json"
FRAMES_DIR = "frames"
FORMAT_VERSION = 1
DEPTH_KINDS = {
    # kind: sign that makes "larger = farther" (what the ordinal depth loss expects)
    "relative_depth": 1.0,  # Sapiens depth: relative, larger = farther
    "affine_depth": 1.0,  # depth up to unknown positive scale and shift (synthetic prior)
    "pointmap_z": 1.0,  # z of a camera-space point map (Sapiens2 point-map head), up to focal scale
    "inverse_depth": -1.0,  # disparity-like (DPT, Depth Anything): larger = nearer
}
ARRAY_KEYS = ("normal", "depth", "parts", "valid")


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    while True:
      b = f.read(chunk)
      if not b:
        break
      h.update(b)
  return h.hexdigest()


def identity_hash(identity: Mapping[str, Any]) -> str:
  """Stable hash of a JSON-able identity dict (sorted keys)."""
  return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def frame_filename(key: str) -> str:
  """File name of a frame key: path separators become '__', other odd characters '_'."""
  if not key:
    raise ValueError("empty frame key")
  safe = re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("/", "__").replace(os.sep, "__"))
  return safe + ".npz"


def _atomic_write_bytes(path: str, data: bytes) -> None:
  d = os.path.dirname(path)
  fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp_", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


class PriorCache:
  """Writer side of a cache folder for one producing configuration (`identity`).

  Opening with an identity different from the one on disk deletes the old frames (the cache is
  regenerated, never mixed).
  """

  def __init__(self, cache_dir: str, identity: Mapping[str, Any]):
    self.cache_dir = cache_dir
    self.identity = json.loads(json.dumps(identity, sort_keys=True, default=str))
    self.identity_hash = identity_hash(self.identity)
    self.invalidated = False  # True if an existing cache of another identity was cleared
    os.makedirs(os.path.join(cache_dir, FRAMES_DIR), exist_ok=True)
    path = os.path.join(cache_dir, MANIFEST)
    old = None
    if os.path.exists(path):
      try:
        with open(path) as f:
          old = json.load(f)
      except (OSError, json.JSONDecodeError):
        old = None  # unreadable manifest: nothing in the folder can be trusted
    if old is not None and old.get("identity_hash") == self.identity_hash \
        and old.get("format_version") == FORMAT_VERSION:
      self.frames = dict(old.get("frames", {}))
    else:
      self.invalidated = old is not None or bool(os.listdir(os.path.join(cache_dir, FRAMES_DIR)))
      shutil.rmtree(os.path.join(cache_dir, FRAMES_DIR))
      os.makedirs(os.path.join(cache_dir, FRAMES_DIR))
      self.frames = {}
      self.flush()

  def manifest(self) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "identity": self.identity,
        "identity_hash": self.identity_hash,
        "class_names": list(labels_lib.SAPIENS_CLASSES),
        "ignore_label": labels_lib.IGNORE,
        "normal_frame": "camera, OpenCV axes (x right, y down, z forward), unit, facing the camera",
        "frames": self.frames,
    }

  def flush(self) -> None:
    """Writes the manifest atomically."""
    data = json.dumps(self.manifest(), indent=1, sort_keys=True).encode()
    _atomic_write_bytes(os.path.join(self.cache_dir, MANIFEST), data)

  def path(self, key: str) -> str:
    return os.path.join(self.cache_dir, FRAMES_DIR, frame_filename(key))

  def is_done(self, key: str) -> bool:
    """True if the frame's file exists and matches the hash recorded for it."""
    entry = self.frames.get(key)
    if entry is None:
      return False
    p = os.path.join(self.cache_dir, FRAMES_DIR, entry["file"])
    return os.path.exists(p) and file_sha256(p) == entry["sha256"]

  def write(self, key: str, arrays: Mapping[str, np.ndarray], stats: Mapping[str, float] | None = None,
            flush: bool = True) -> None:
    """Stores one frame's arrays (keys among `ARRAY_KEYS`) and records its hash."""
    unknown = set(arrays) - set(ARRAY_KEYS)
    if unknown:
      raise ValueError(f"frame {key!r}: unknown prior arrays {sorted(unknown)}")
    p = self.path(key)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(p), prefix=".tmp_", suffix=".npz")
    os.close(fd)
    try:
      with open(tmp, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
      digest = file_sha256(tmp)
      os.replace(tmp, p)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
    shape = next(iter(arrays.values())).shape[:2]
    self.frames[key] = {"file": os.path.basename(p), "sha256": digest, "height": int(shape[0]),
                        "width": int(shape[1]), "outputs": sorted(arrays),
                        **({"stats": {k: float(v) for k, v in stats.items()}} if stats else {})}
    if flush:
      self.flush()


class PriorReader:
  """Read side: the manifest loaded once, frames on demand."""

  def __init__(self, cache_dir: str):
    path = os.path.join(cache_dir, MANIFEST)
    if not os.path.exists(path):
      raise errors.MissingInputError(f"{path}: no prior cache here; run `python -m fmgs_jax.main --mode=priors` "
                                     "with the same config first")
    with open(path) as f:
      self.manifest = json.load(f)
    self.cache_dir = cache_dir
    outputs = self.manifest["identity"].get("outputs", {})
    self.depth_kind = outputs.get("depth", {}).get("kind") if isinstance(outputs, dict) else None
    if self.depth_kind is not None and self.depth_kind not in DEPTH_KINDS:
      raise errors.InputError(f"{path}: field identity.outputs.depth.kind={self.depth_kind!r} is not one of "
                              f"{sorted(DEPTH_KINDS)}")

  def keys(self) -> list[str]:
    return sorted(self.manifest["frames"])

  def load(self, frame_key: str, verify: bool = False) -> dict[str, np.ndarray]:
    """One frame's priors.

    Args:
      frame_key: the key the extraction used (see `fmgs_jax.priors.extract.frame_key`).
      verify: also check the file's SHA-256 against the manifest.
    Returns:
      dict with the stored subset of `normal` (H, W, 3) float32, `depth` (H, W) float32 ordered so that
      larger = farther (inverse-depth priors are negated; the affine ambiguity remains), `parts` (H, W)
      int32 Sapiens ids or -1, and `valid` (H, W) bool.
    """
    entry = self.manifest["frames"].get(frame_key)
    if entry is None:
      raise KeyError(f"{os.path.join(self.cache_dir, MANIFEST)}: frame {frame_key!r} is not in the cache "
                     "(extraction incomplete? re-run --mode=priors)")
    p = os.path.join(self.cache_dir, FRAMES_DIR, entry["file"])
    if verify and file_sha256(p) != entry["sha256"]:
      raise errors.InputError(f"{p}: SHA-256 does not match the manifest (corrupt file); re-run --mode=priors")
    with np.load(p) as z:
      out = {k: z[k] for k in z.files}
    if "depth" in out and self.depth_kind is not None:
      out["depth"] = (DEPTH_KINDS[self.depth_kind] * out["depth"]).astype(np.float32)
    if "parts" in out:
      out["parts"] = out["parts"].astype(np.int32)
    return out


def load_priors(cache_dir: str, frame_key: str) -> dict[str, np.ndarray]:
  """`PriorReader(cache_dir).load(frame_key)`: dict(normal, depth, parts, valid) for one frame."""
  return PriorReader(cache_dir).load(frame_key)


def attach_priors(frame: Any, priors: Mapping[str, np.ndarray]) -> Any:
  """Returns the data module's `Frame` with `prior_normal`, `prior_depth`, `prior_parts` (and
  `prior_valid` if the Frame has that field) set from `load_priors`'s dict.

  Works with flax.struct / chex / plain dataclasses (`.replace` or `dataclasses.replace`).
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  names = {"prior_normal": "normal", "prior_depth": "depth", "prior_parts": "parts", "prior_valid": "valid"}
  fields = {f.name for f in dataclasses.fields(frame)} if dataclasses.is_dataclass(frame) else set(
      getattr(frame, "__dataclass_fields__", {}))
  updates = {f: priors[k] for f, k in names.items() if k in priors and f in fields}
  missing = [f for f in ("prior_normal", "prior_depth", "prior_parts") if f not in fields]
  if missing:
    raise TypeError(f"{type(frame).__name__} has no field(s) {missing}; expected the data module's Frame")
  if hasattr(frame, "replace"):
    return frame.replace(**updates)
  return dataclasses.replace(frame, **updates)
