"""What every torch-backed prior model shares: the predictor contract, devices, input normalisation.

A predictor runs one task on person crops:
```python
p.task        # "normal" | "depth" | "parts"
p.input_hw    # (height, width) the model is fed; crops are cut at this aspect ratio
p.identity    # JSON-able description for the cache manifest (model id, file fingerprints, preprocessing)
p.depth_kind  # for task "depth": what the number means (see cache.DEPTH_KINDS)
p.predict(crops)  # (B, h, w, 3) float32 RGB in [0, 1] -> (B, h, w, C) float32 in crop pixels:
                  #   normal: C = 3, camera frame with OpenCV axes (not yet unit length)
                  #   depth:  C = 1
                  #   parts:  C = 29, probabilities over the 28 Sapiens classes + an 'unmapped' column
```
torch is imported lazily (inside functions), so importing this module does not need it.
"""

import hashlib
import os
from typing import Any

import numpy as np

TASKS = ("normal", "depth", "parts")


def fingerprint_path(path: str, head_tail_bytes: int = 4 << 20) -> dict[str, Any]:
  """Identifies a model file or folder without reading gigabytes: per file its size and the SHA-256 of
  its first and last `head_tail_bytes` (configs and processor files are small, so hashed whole)."""
  files = []
  if os.path.isdir(path):
    for root, _, names in sorted(os.walk(path)):
      for n in sorted(names):
        files.append(os.path.join(root, n))
  else:
    files = [path]
  out = {}
  for f in files:
    size = os.path.getsize(f)
    h = hashlib.sha256()
    with open(f, "rb") as fh:
      h.update(fh.read(head_tail_bytes))
      if size > 2 * head_tail_bytes:
        fh.seek(size - head_tail_bytes)
        h.update(fh.read(head_tail_bytes))
      elif size > head_tail_bytes:
        h.update(fh.read())
    out[os.path.relpath(f, path) if os.path.isdir(path) else os.path.basename(f)] = {
        "size": size, "sha256_head_tail": h.hexdigest()}
  return out


def resolve_device(name: str) -> str:
  """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; anything else is passed through."""
  import torch  # pylint: disable=g-import-not-at-top
  if name == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  return name


def to_input(crops: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], value_scale: float,
             device: str):
  """(B, h, w, 3) RGB in [0, 1] -> (B, 3, h, w) float32 torch tensor ((x * value_scale - mean) / std).

  value_scale is 255 for Sapiens' mean/std on 0-255 values, 1 for processors that rescale to [0, 1].
  """
  import torch  # pylint: disable=g-import-not-at-top
  x = torch.from_numpy(np.ascontiguousarray(crops, np.float32)).permute(0, 3, 1, 2) * value_scale
  m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
  s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
  return ((x - m) / s).to(device)


def to_output(t, out_hw: tuple[int, int]) -> np.ndarray:
  """(B, C, h', w') torch tensor -> (B, h, w, C) float32 NumPy, bilinearly resized to `out_hw`."""
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  t = t.float()
  if t.ndim == 3:
    t = t[:, None]
  if tuple(t.shape[-2:]) != tuple(out_hw):
    t = F.interpolate(t, size=tuple(out_hw), mode="bilinear", align_corners=False)
  return t.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def softmax_np(logits: np.ndarray, axis: int = -1) -> np.ndarray:
  z = logits - logits.max(axis=axis, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=axis, keepdims=True)
