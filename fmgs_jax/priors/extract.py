"""Prior extraction driver: every frame of a dataset through the configured models into the cache.

`python -m fmgs_jax.main --config=... --mode=priors` calls `extract_priors(config, workdir)`, which reads
the dataset's frames (fmgs_jax.data.load_dataset), builds the backend's models from `config.priors`, and
runs `extract` over each configured split. `extract` works on any `FrameSource` (tests feed frames
directly):

```python
source.__len__()   # number of frames
source.key(i)      # stable, unique frame key (the cache file name derives from it)
source.get(i)      # mapping: image (H, W, 3) float32 RGB in [0, 1], mask (H, W); gt_* for `synthetic`
source.part_names  # names of gt_parts ids (synthetic), or None when they already are Sapiens ids
```

Per batch of frames and per model: the person is cropped around the mask at the model's aspect ratio
(crop.person_box, `c.priors.crop_scale`), the crops run as one batch, and the outputs are pasted back
onto the frame; normals are renormalised to unit length, everything is masked, part scores become
Sapiens ids. Frames already in the cache (file present, hash matching) are skipped, so a re-run or an
interrupted run resumes; a change of model or settings invalidates the cache (cache.PriorCache).
"""

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from absl import logging
import numpy as np
import tqdm

from fmgs_jax import errors
from fmgs_jax.priors import cache as cache_lib
from fmgs_jax.priors import crop as crop_lib
from fmgs_jax.priors import labels as labels_lib
from fmgs_jax.priors import synthetic

BACKENDS = ("sapiens", "transformers", "synthetic")
_TASK_FIELDS = {"normal": "normal_model", "depth": "depth_model", "parts": "seg_model"}


class FrameSource(Protocol):
  part_names: tuple[str, ...] | None

  def __len__(self) -> int: ...

  def key(self, i: int) -> str: ...

  def get(self, i: int) -> Mapping[str, Any]: ...


class ListFrames:
  """A FrameSource over in-memory frames (dicts with image, mask, ...)."""

  def __init__(self, frames: Sequence[Mapping[str, Any]], keys: Sequence[str],
               part_names: Sequence[str] | None = None):
    if len(frames) != len(keys) or len(set(keys)) != len(keys):
      raise ValueError("ListFrames: need one unique key per frame")
    self.frames, self.keys = list(frames), list(keys)
    self.part_names = tuple(part_names) if part_names is not None else None

  def __len__(self):
    return len(self.frames)

  def key(self, i):
    return self.keys[i]

  def get(self, i):
    return self.frames[i]


class DatasetFrames:
  """A FrameSource over the data module's Dataset (`load_dataset(data_config, split)`)."""

  _FIELDS = ("image", "mask", "gt_normal", "gt_depth", "gt_parts", "K")

  def __init__(self, dataset: Any, split: str, root: str):
    self.dataset, self.split, self.root = dataset, split, root
    meta = getattr(dataset, "meta", None) or {}
    names = meta.get("part_names") if isinstance(meta, Mapping) else getattr(meta, "part_names", None)
    self.part_names = tuple(names) if names else None  # () = no ground-truth part names

  def __len__(self):
    return len(self.dataset)

  def key(self, i):
    return frame_key(self.dataset, i, self.split, self.root)

  def get(self, i):
    f = self.dataset[i]
    return {k: (np.asarray(getattr(f, k)) if getattr(f, k, None) is not None else None) for k in self._FIELDS}


def frame_key(dataset: Any, i: int, split: str, root: str) -> str:
  """The image's path relative to the data root without extension (the same image in two splits is one
  cache entry), else `<split>/<index>`."""
  try:
    p = dataset.image_path(i)
  except (AttributeError, IndexError, KeyError, TypeError):
    p = None
  if p:
    rel = os.path.relpath(os.path.abspath(p), os.path.abspath(root)) if root else os.path.basename(p)
    if not rel.startswith(".."):
      return os.path.splitext(rel)[0].replace(os.sep, "/")
    return os.path.splitext(os.path.basename(p))[0]
  return f"{split}/{i:06d}"


def build_predictors(pcfg: Any) -> dict[str, Any]:
  """The torch models of the `sapiens` / `transformers` backend, keyed by task; {} for synthetic."""
  if pcfg.backend not in BACKENDS:
    raise errors.ConfigError(f"c.priors.backend={pcfg.backend!r}: expected one of {BACKENDS}")
  if pcfg.backend == "synthetic":
    return {}
  from fmgs_jax.priors import inference  # pylint: disable=g-import-not-at-top
  device = inference.resolve_device(pcfg.device)
  out = {}
  for task, field in _TASK_FIELDS.items():
    path = getattr(pcfg, field)
    if not path:
      continue
    path = os.path.expanduser(path)
    if not os.path.exists(path):
      raise errors.MissingInputError(f"c.priors.{field}={path!r} does not exist; see third_party/README.md")
    if pcfg.backend == "sapiens":
      from fmgs_jax.priors import sapiens  # pylint: disable=g-import-not-at-top
      out[task] = sapiens.make_predictor(path, task, pcfg.sapiens, device)
    else:
      from fmgs_jax.priors import hf  # pylint: disable=g-import-not-at-top
      out[task] = hf.TransformersPredictor(path, task, pcfg.transformers, device)
  if not out:
    raise errors.ConfigError(f"c.priors.backend={pcfg.backend!r} but none of c.priors.normal_model / depth_model / "
                             "seg_model is set")
  return out


def _synthetic_tasks(pcfg: Any) -> tuple[str, ...]:
  return tuple(t for t in ("normal", "depth", "parts") if t in tuple(pcfg.synthetic.outputs))


def cache_identity(pcfg: Any, predictors: Mapping[str, Any], part_names: tuple[str, ...] | None) -> dict:
  """Everything that determines the cached arrays; a change invalidates the cache."""
  if pcfg.backend == "synthetic":
    syn = synthetic.identity(pcfg.synthetic, part_names)
    outputs = {t: dict(syn) for t in _synthetic_tasks(pcfg)}
    if "depth" in outputs:
      outputs["depth"]["kind"] = synthetic.DEPTH_KIND
  else:
    outputs = {t: dict(p.identity) for t, p in predictors.items()}
    if "depth" in outputs:
      outputs["depth"]["kind"] = predictors["depth"].depth_kind
  return {"backend": pcfg.backend, "crop_scale": float(pcfg.crop_scale), "outputs": outputs,
          "normal_axes_out": "opencv"}


def _predict_frames(frames: Sequence[Mapping[str, Any]], predictors: Mapping[str, Any],
                    crop_scale: float, batch_size: int) -> list[tuple[dict, dict]]:
  """Runs the models on a group of frames: crop, batch, predict, paste, post-process."""
  results = []
  pasted = [dict() for _ in frames]
  inside = [None] * len(frames)
  for task, p in predictors.items():
    boxes, crops = [], []
    for f in frames:
      box = crop_lib.person_box(f["mask"], p.input_hw, crop_scale)
      boxes.append(box)
      crops.append(crop_lib.crop(f["image"], box, p.input_hw))
    outs = []
    for s in range(0, len(crops), batch_size):
      outs.append(p.predict(np.stack(crops[s:s + batch_size])))
    outs = np.concatenate(outs)
    for j, f in enumerate(frames):
      maps, ins = crop_lib.paste(outs[j], boxes[j], f["mask"].shape)
      pasted[j][task] = maps
      inside[j] = ins if inside[j] is None else inside[j] & ins
  for j, f in enumerate(frames):
    mask = np.asarray(f["mask"]) > 0.5
    valid = mask & inside[j]
    arrays: dict[str, np.ndarray] = {"valid": valid}
    stats: dict[str, float] = {}
    if "normal" in pasted[j]:
      n = pasted[j]["normal"]
      n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-8)
      arrays["normal"] = np.where(valid[..., None], n, 0.0).astype(np.float32)
      stats["facing"] = float((n[..., 2][valid] < 0).mean()) if valid.any() else 1.0
    if "depth" in pasted[j]:
      arrays["depth"] = np.where(valid, pasted[j]["depth"][..., 0], 0.0).astype(np.float32)
    if "parts" in pasted[j]:
      lab = labels_lib.labels_from_scores(pasted[j]["parts"])
      arrays["parts"] = np.where(valid, lab, 0).astype(np.int16)
    results.append((arrays, stats))
  return results


def _check_frame(f: Mapping[str, Any], key: str) -> None:
  img, mask = f.get("image"), f.get("mask")
  if img is None or np.ndim(img) != 3 or np.shape(img)[2] != 3:
    raise ValueError(f"frame {key!r}: field 'image' must be (H, W, 3), got "
                     f"{None if img is None else np.shape(img)}")
  if mask is None or np.shape(mask) != np.shape(img)[:2]:
    raise ValueError(f"frame {key!r}: field 'mask' must be (H, W) = {np.shape(img)[:2]}, got "
                     f"{None if mask is None else np.shape(mask)}")


def extract(source: FrameSource, cache_dir: str, pcfg: Any, predictors: Mapping[str, Any] | None = None,
            progress: bool = True) -> dict[str, Any]:
  """Fills `cache_dir` with the priors of every frame of `source`.

  Args:
    source: the frames.
    cache_dir: cache folder (created).
    pcfg: c.priors.
    predictors: prebuilt models by task (default: build_predictors(pcfg)).
    progress: show a tqdm bar (frames/s, ETA).
  Returns:
    summary: frames total / extracted / skipped, whether an older cache was invalidated, seconds.
  """
  t0 = time.time()
  if predictors is None:
    predictors = build_predictors(pcfg)
  part_table = None
  if pcfg.backend == "synthetic" and source.part_names is not None:
    part_table = labels_lib.mapping_table(source.part_names)
  cache = cache_lib.PriorCache(cache_dir, cache_identity(pcfg, predictors, source.part_names))
  if cache.invalidated:
    logging.warning("%s: models or settings changed; the old priors were removed and are regenerated",
                    cache_dir)
  keys = [source.key(i) for i in range(len(source))]
  if len(set(keys)) != len(keys):
    raise ValueError(f"frame keys are not unique ({len(keys) - len(set(keys))} duplicates)")
  todo = [i for i, k in enumerate(keys) if not cache.is_done(k)]
  bar = tqdm.tqdm(total=len(keys), initial=len(keys) - len(todo), unit="frame", desc="priors",
                  disable=not progress, dynamic_ncols=True)
  batch = max(int(pcfg.batch_size), 1)
  low_facing = []
  try:
    for s in range(0, len(todo), batch):
      idx = todo[s:s + batch]
      frames = [source.get(i) for i in idx]
      for i, f in zip(idx, frames):
        _check_frame(f, keys[i])
      if pcfg.backend == "synthetic":
        results = [synthetic.synthetic_priors(f, keys[i], pcfg.synthetic, part_table, _synthetic_tasks(pcfg))
                   for i, f in zip(idx, frames)]
      else:
        results = _predict_frames(frames, predictors, float(pcfg.crop_scale), batch)
      for i, (arrays, stats) in zip(idx, results):
        cache.write(keys[i], arrays, stats, flush=False)
        if stats.get("facing", 1.0) < 0.5:
          low_facing.append(keys[i])
      cache.flush()
      bar.update(len(idx))
  finally:
    bar.close()
  if low_facing:
    logging.warning("%d frame(s) have most prior normals facing away from the camera (e.g. %s): the normal "
                    "axis convention (c.priors.sapiens.normal_axes) is probably wrong for this model",
                    len(low_facing), low_facing[:3])
  return {"frames": len(keys), "extracted": len(todo), "skipped": len(keys) - len(todo),
          "invalidated": cache.invalidated, "seconds": time.time() - t0, "cache_dir": cache_dir}


def default_cache_dir(config: Any, workdir: str) -> str:
  """c.priors.cache_dir, else next to the data: <data root>/priors/<backend>."""
  if config.priors.cache_dir:
    return os.path.expanduser(config.priors.cache_dir)
  root = config.data.root or os.path.join(workdir, "data")
  return os.path.join(root, "priors", config.priors.backend)


def extract_priors(config: Any, workdir: str) -> list[dict[str, Any]]:
  """`--mode=priors`: extracts the priors of every frame of `config.priors.splits` into the cache."""
  pcfg = config.priors
  predictors = build_predictors(pcfg)  # fails on a bad model path before touching any data
  try:
    from fmgs_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"--mode=priors needs fmgs_jax.data.load_dataset ({e})") from e
  cache_dir = default_cache_dir(config, workdir)
  root = config.data.root or os.path.join(workdir, "data")
  summaries = []
  for split in pcfg.splits:
    source = DatasetFrames(load_dataset(config.data, split, default_root=root), split, root)
    summary = extract(source, cache_dir, pcfg, predictors)
    logging.info("priors %s: %s", split, summary)
    summaries.append({"split": split, **summary})
  return summaries
