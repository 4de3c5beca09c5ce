"""Frames of a user's video (or a folder of images): decoded, subsampled, resized.

A video is decoded with imageio-ffmpeg (its bundled ffmpeg, a core dependency); a folder is read as
its images in name order (*.png, *.jpg, *.jpeg). Every problem a user can fix is an error naming the
file before any model runs: missing, undecodable, no frames, a single frame, frames of different sizes.
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np
import tqdm

from fmgs_jax import errors

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class Frames:
  """images (N, H, W, 3) uint8 RGB; source_index (N,) int: each frame's index in the input (before
  subsampling); fps: the input's frame rate (0 when unknown, e.g. a folder); source: the input path;
  source_hw: (height, width) of the input before resizing."""
  images: np.ndarray
  source_index: np.ndarray
  fps: float
  source: str
  source_hw: tuple[int, int]


def output_size(height: int, width: int, size: int) -> tuple[int, int]:
  """(height, width) with the longer side `size` pixels, aspect kept (rounded); `size` 0 keeps the input's."""
  if size <= 0:
    return height, width
  s = size / max(height, width)
  return max(1, int(round(height * s))), max(1, int(round(width * s)))


def _resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  if image.shape[:2] == hw:
    return image
  shrink = hw[0] < image.shape[0]
  return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _ffmpeg_reason(e: BaseException) -> str:
  """The last line of an imageio-ffmpeg error (ffmpeg's own verdict; the lines before are its banner)."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  return lines[-1][:300] if lines else type(e).__name__


def _video_frames(path: str):
  """(fps, iterator of (H, W, 3) uint8 frames) of a video file; InputError when ffmpeg cannot read it."""
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  try:
    gen = imageio_ffmpeg.read_frames(path)
    meta = next(gen)
  except (OSError, RuntimeError, StopIteration) as e:
    raise errors.InputError(f"{path}: not a video ffmpeg can decode ({_ffmpeg_reason(e)}); "
                            "check the file or give a folder of images") from None
  w, h = meta["size"]

  def frames():
    try:
      for buf in gen:
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    except (OSError, RuntimeError) as e:
      raise errors.InputError(f"{path}: decoding failed ({_ffmpeg_reason(e)})") from None
    finally:
      gen.close()

  return float(meta.get("fps") or 0.0), frames()


def _folder_frames(path: str):
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top
  names = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))

  def frames():
    for n in names:
      try:
        img = np.asarray(iio.imread(os.path.join(path, n)))
      except Exception as e:  # imageio raises many types
        raise errors.InputError(f"{os.path.join(path, n)}: unreadable image ({errors.one_line(e)[:200]})") from None
      if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
      yield os.path.join(path, n), img[..., :3].astype(np.uint8)

  return names, frames()


def read_frames(path: str, every: int = 1, max_frames: int = 0, size: int = 0, progress: bool = True) -> Frames:
  """Every `every`-th frame of the video (or image folder) at `path`, at most `max_frames` (0 = all),
  resized so the longer side is `size` pixels (0 = as decoded).

  Raises:
    MissingInputError: no such file or folder.
    InputError: undecodable, fewer than two frames kept, frames of different sizes (a folder), bad
      `every` / `max_frames`.
  """
  if every < 1:
    raise errors.ConfigError(f"config prepare.every = {every}: must be >= 1")
  if max_frames < 0:
    raise errors.ConfigError(f"config prepare.max_frames = {max_frames}: must be >= 0 (0 = all)")
  if not path:
    raise errors.ConfigError("config data.video is empty: give the video, --config.data.video=clip.mp4")
  if not os.path.exists(path):
    raise errors.MissingInputError(f"{path}: no such video file or image folder (config data.video)")
  fps, hw_in, images, index = 0.0, None, [], []
  if os.path.isdir(path):
    names, it = _folder_frames(path)
    if not names:
      raise errors.InputError(f"{path}: the folder holds no {'/'.join(IMAGE_EXTENSIONS)} images (config data.video)")
  else:
    fps, it = _video_frames(path)
    it = ((path, f) for f in it)
  bar = tqdm.tqdm(desc=f"decoding {os.path.basename(path)}", unit="frame", disable=not progress, dynamic_ncols=True)
  try:
    for k, (where, img) in enumerate(it):
      bar.update(1)
      if hw_in is None:
        hw_in = img.shape[:2]
        hw_out = output_size(hw_in[0], hw_in[1], int(size))
      elif img.shape[:2] != hw_in:
        raise errors.InputError(f"{where}: frame of {img.shape[1]}x{img.shape[0]} pixels after frames of "
                                f"{hw_in[1]}x{hw_in[0]}; every frame must have one size")
      if k % every:
        continue
      images.append(_resize(np.ascontiguousarray(img), hw_out))
      index.append(k)
      if max_frames and len(images) >= max_frames:
        break
  finally:
    bar.close()
  if not images:
    raise errors.InputError(f"{path}: no frames decoded (config data.video); check the file")
  if len(images) < 2:
    raise errors.InputError(f"{path}: only {len(images)} frame kept (of {k + 1} decoded, prepare.every = {every}); "
                            "a video avatar needs the person in several frames: give a longer clip or a "
                            "smaller --config.prepare.every")
  return Frames(images=np.stack(images), source_index=np.asarray(index, np.int64), fps=fps, source=path,
                source_hw=tuple(int(v) for v in hw_in))
