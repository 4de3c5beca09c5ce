"""`--mode=eval`: render the held-out views and poses, score them, write metrics.json, renders, exports.

Protocol per dataset (fmgs_jax/eval/metrics.py): ZJU-MoCap crops to the ground-truth mask's box,
PeopleSnapshot and the synthetic capture use the full image; ground truth is composited on the
training background through its mask, like the renders. Held-out frames use no learned pose
refinement (it exists only for training frames): they are posed by the dataset's own poses, so
`template_iou` (the posed template's silhouette against the mask, `fit/silhouette.py`) measures how
well the body model and its subject fit place the body where the data says. Geometry (Chamfer, F-score; `geometry_metrics`)
compares the avatar's surface with the ground-truth mesh, where the dataset has one.

Writes WORKDIR/metrics.json and under WORKDIR/renders/: <split>/NNNN.png grids (ground truth |
render | normals | depth | semantics), <split>.mp4, orbit.mp4 (360 degrees around the first held-out
pose), avatar_posed.ply (the avatar's surface: template moved by the learned offsets, with colours and part
labels), surfels.ply (Gaussian-splatting layout).
"""

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from fmgs_jax.data import DatasetError, load_dataset, stack_frames
from fmgs_jax.eval import export, metrics, report, visualize
from fmgs_jax.fit import silhouette
from fmgs_jax.render import Camera, look_at
from fmgs_jax.train import loop
from fmgs_jax.train import step as step_lib

EVAL_SPLITS = ("novel_view", "novel_pose", "test")


def eval_batch(frame):
  """A one-frame Batch without pose refinement (frame_index -1)."""
  b = step_lib.batch_from_frames(stack_frames([frame]))
  return b.replace(frame_index=jnp.full_like(b.frame_index, -1))


def _sapiens_table(part_names) -> np.ndarray | None:
  """Template/dataset part ids -> Sapiens classes (None when the names are unknown)."""
  from fmgs_jax.priors import labels  # pylint: disable=g-import-not-at-top (numpy only)
  try:
    return labels.mapping_table(list(part_names))
  except KeyError as e:
    logging.warning("no Sapiens mapping for ground-truth part names (%s): part mIoU is skipped", e)
    return None


def frame_metrics(out, frame, config: Any, protocol: str, table, lpips_params) -> dict[str, float | None]:
  """Every metric one rendered frame supports against its ground truth."""
  bg = np.asarray(config.train.background, np.float32)
  mask = np.asarray(frame.mask, np.float32)
  gt = frame.image * mask[..., None] + bg * (1 - mask[..., None])
  pred = np.clip(np.asarray(out.color[..., :3]), 0, 1)
  m: dict[str, float | None] = dict(metrics.image_metrics(pred, gt, mask, protocol, config.eval.bbox_pad))
  if lpips_params is not None:
    from fmgs_jax.eval import perceptual  # pylint: disable=g-import-not-at-top
    m["lpips"] = perceptual.frame_lpips(lpips_params, pred, gt, mask, protocol, config.eval.bbox_pad)
  fg = mask > 0.5
  if frame.gt_normal is not None:
    m["normal_error_deg"] = metrics.normal_angular_error(np.asarray(out.normal), frame.gt_normal, fg)
  if frame.gt_depth is not None:
    valid = fg & (frame.gt_depth > 0) & (np.asarray(out.alpha) > 0.5)
    if valid.any():
      d = metrics.depth_errors(np.asarray(out.depth), frame.gt_depth, valid, align=config.eval.depth_align)
      m.update(d)  # depth_abs_rel, depth_rmse (report.py's names)
  if frame.gt_parts is not None and table is not None:
    gt_parts = np.where(frame.gt_parts >= 0, table[np.maximum(frame.gt_parts, 0)], -1)
    pred_parts = np.argmax(np.asarray(out.color[..., 3:]), -1)
    pred_parts = np.where(np.asarray(out.alpha) > 0.5, pred_parts, 0)
    gt_parts = np.where(fg, gt_parts, 0)
    m["part_miou"] = float(metrics.part_miou(pred_parts, gt_parts, config.model.num_classes, ignore_index=-1)["part_miou"])
  return m


def geometry_metrics(q, av, mesh, config: Any) -> dict[str, float]:
  """Chamfer / F-score of the avatar against a ground-truth mesh.

  `chamfer_mm` compares surfaces: the avatar's surface (`export.surfel_surface`: the posed template
  moved by the learned offsets; for free Gaussians, which have no surface, their centres) and the
  ground truth, each sampled with `eval.chamfer_samples` points, so the score does not depend on the
  surfel count. `chamfer_centres_mm` compares the surfel centres themselves with the ground-truth samples
  (it carries a sampling floor of about half the surfel spacing: ~6 mm at 10k surfels).
  """
  gt_v, gt_f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
  n, thr = config.eval.chamfer_samples, config.eval.fscore_threshold
  gt_pts = metrics.sample_surface(gt_v, gt_f, n, seed=1)
  centres = metrics.chamfer_fscore(np.asarray(q["means"]), gt_pts, thr)
  if av.mesh_guided:
    surface = export.surfel_surface(q["vertices"], av.template.faces, q["means"])
    cf = metrics.chamfer_fscore(metrics.sample_surface(surface, av.template.faces, n, seed=0), gt_pts, thr)
  else:
    cf = centres
  return {"chamfer_mm": cf["chamfer_mm"], "fscore": cf["fscore"], "chamfer_centres_mm": centres["chamfer_mm"]}


def orbit_frames(render_one, frame, num: int, width: int, height: int, config: Any):
  """Renders of `frame`'s posed avatar from `num` cameras on a circle around it (same intrinsics)."""
  w2c = np.asarray(frame.world_to_camera)
  eye0 = -w2c[:3, :3].T @ w2c[:3, 3]
  target = np.asarray(frame.transl) if np.any(frame.transl) else np.zeros(3)
  up = -w2c[1, :3]  # the training camera's up
  radius_vec = eye0 - target
  out = []
  for k in range(num):
    ang = 2 * np.pi * k / num
    # Rodrigues rotation of the eye offset about `up`.
    u = up / np.linalg.norm(up)
    r = (radius_vec * np.cos(ang) + np.cross(u, radius_vec) * np.sin(ang) + u * np.dot(u, radius_vec) * (1 - np.cos(ang)))
    cam = look_at(target + r, target, up, float(frame.K[0, 0]), float(frame.K[1, 1]), width, height)
    cam_frame = frame.replace(world_to_camera=np.asarray(cam.world_to_camera),
                              K=np.asarray(frame.K))
    o = render_one(cam_frame)
    out.append(visualize.to_uint8(np.clip(np.asarray(o.color[..., :3]), 0, 1)))
  return out


def evaluate(config: Any, workdir: str) -> dict:
  """Scores the newest checkpoint in WORKDIR on the dataset's held-out splits; returns the report."""
  av, params, info = loop.restore_params(config, workdir)
  root = loop.data_root(config, workdir)
  renders = os.path.join(workdir, "renders")
  protocol = metrics.protocol_for_dataset(config.data.name, config.eval.image_protocol)
  from fmgs_jax.eval import perceptual  # pylint: disable=g-import-not-at-top
  lpips_params = perceptual.lpips_params(config.eval.lpips_net, config.eval.lpips_weights)  # None: lpips null
  renderers = {}

  def render_one(frame):
    h, w = frame.mask.shape
    if (h, w) not in renderers:
      renderers[(h, w)] = loop.make_render_fn(av, config, w, h)
    batch = eval_batch(frame)
    out = renderers[(h, w)](params, batch)
    return jax.tree.map(lambda x: np.asarray(x)[0], jax.device_get(out))

  # params travel as an argument: closed over, they become constants that XLA folds (slow to compile, and
  # for a freshly initialised avatar the folded skinning came out NaN on CPU, jax 0.10.2).
  @jax.jit
  def surfels_of_params(p, batch):
    from fmgs_jax import avatar as avatar_lib  # pylint: disable=g-import-not-at-top
    q = avatar_lib.quantities(av, p, batch)
    return {k: q[k][0] for k in ("means", "rotations", "scales", "opacities", "colors", "semantics", "vertices")}

  surfels_of = lambda batch: surfels_of_params(params, batch)
  faces = jnp.asarray(av.template.faces)

  @jax.jit
  def template_alpha(vertices, camera):
    return silhouette.render_alpha(vertices, faces, camera, tile_capacity=config.fit.tile_capacity)

  def template_iou(vertices, frame) -> float:
    """IoU of the posed template's silhouette (no learned offsets) with the frame's mask."""
    h, w = frame.mask.shape
    cam = Camera(K=jnp.asarray(frame.K, jnp.float32), world_to_camera=jnp.asarray(frame.world_to_camera, jnp.float32),
                 width=w, height=h, near=config.render.near, far=config.render.far)
    return float(silhouette.iou(template_alpha(jnp.asarray(vertices), cam), jnp.asarray(frame.mask)))

  per_split, first_eval_frame = {}, None
  for split in EVAL_SPLITS:
    try:
      ds = load_dataset(config.data, split, default_root=root)
    except DatasetError as e:
      logging.info("split %s not evaluated: %s", split, e)
      continue
    if len(ds) == 0:
      continue
    table = _sapiens_table(ds.meta.part_names) if ds.meta.part_names else None
    rows, video = [], []
    for i in tqdm.trange(len(ds), desc=f"eval {split}", unit="frame"):
      frame = ds[i]
      first_eval_frame = first_eval_frame or frame
      out = render_one(frame)
      m = frame_metrics(out, frame, config, protocol, table, lpips_params)
      q = jax.device_get(surfels_of(eval_batch(frame)))
      m["template_iou"] = template_iou(q["vertices"], frame)
      if i % max(config.eval.chamfer_every, 1) == 0:
        try:
          mesh = ds.gt_mesh(i)
        except (AttributeError, NotImplementedError, FileNotFoundError, DatasetError):
          mesh = None
        if mesh is not None:
          m.update(geometry_metrics(q, av, mesh, config))
      rows.append(m)
      grid = visualize.comparison_grid(
          frame.image * frame.mask[..., None], np.clip(out.color[..., :3], 0, 1), normals=out.normal,
          depth=out.depth, semantics=out.color[..., 3:], alpha=out.alpha,
          depth_percentiles=tuple(config.eval.depth_percentiles))
      visualize.write_png(os.path.join(renders, split, f"{i:04d}.png"), grid)
      video.append(grid)
    per_split[split] = rows
    visualize.write_video(os.path.join(renders, f"{split}.mp4"), video, fps=min(config.eval.video_fps, 10.0),
                          quality=config.eval.video_quality, progress=False)
  if not per_split:
    raise DatasetError(f"{root}: no held-out split ({', '.join(EVAL_SPLITS)}) to evaluate")

  rep = report.metrics_report(per_split, info["train_steps"], info["train_seconds"])
  report.write_metrics_json(os.path.join(workdir, "metrics.json"), rep)

  # Geometry exports and the orbit video, of the first held-out frame's pose.
  q = jax.device_get(surfels_of(eval_batch(first_eval_frame)))
  t = av.template
  colors_v = np.zeros((len(t.vertices), 3), np.float32)
  count = np.zeros(len(t.vertices), np.float32)
  for k in range(3):  # per-vertex colour = mean of the surfel colours of its faces
    np.add.at(colors_v, t.faces[:, k], q["colors"])
    np.add.at(count, t.faces[:, k], 1.0)
  colors_v /= np.maximum(count, 1.0)[:, None]
  surface = export.surfel_surface(q["vertices"], t.faces, q["means"]) if av.mesh_guided else q["vertices"]
  export.export_mesh(os.path.join(renders, "avatar_posed.ply"), surface, t.faces, colors_v, t.parts)
  thickness = config.eval.surfel_thickness or None
  export.export_surfels_ply(os.path.join(renders, "surfels.ply"), q["means"], q["rotations"][:, :, 2], q["scales"],
                            q["rotations"], q["opacities"], q["colors"], thickness=thickness,
                            num_rest_sh=config.eval.surfel_rest_sh)
  h, w = first_eval_frame.mask.shape
  orbit = orbit_frames(render_one, first_eval_frame, config.eval.orbit_frames, w, h, config)
  visualize.write_video(os.path.join(renders, "orbit.mp4"), orbit, fps=config.eval.video_fps,
                        quality=config.eval.video_quality, progress=False)
  logging.info("metrics: %s", {k: v for k, v in rep.items() if k != "splits"})
  print({k: v for k, v in rep.items() if k != "splits"})
  return rep
