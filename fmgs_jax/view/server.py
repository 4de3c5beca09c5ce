"""`--mode=view`: the trained avatar live in the browser, on viser (`pip install -e ".[view]"`).

    python -m fmgs_jax.main --config=configs/synthetic.py --workdir=runs/demo --mode=view

serves http://HOST:PORT (`c.view.host`, `c.view.port`, printed at start). The browser orbits (left
drag), pans (right drag) and zooms (wheel) its camera; every camera the browser reports is converted
to ours (view/camera.py) and the newest checkpoint is rendered for it by our rasterizer
(view/render_fn.py) and sent back as the scene's background image: `c.view.moving_height` pixels tall
while the camera moves, `c.view.height` once it has been still for `c.view.settle_seconds`.

Controls (viser's panel): the rendered quantity (colour, normals, depth, body-part semantics, alpha);
the pose, either a training frame (slider; with its learned pose refinement) or a frame of the pose
sequence `c.render.poses` (as --mode=render reads and places it; the novel-pose split when unset)
played as an animation at up to `c.view.fps` with play / pause; a factor on every surfel's scale; the
background colour; the template's skeleton drawn over the image (line segments in viser's scene);
the time the last frame took to render.

Each browser tab gets its own render thread, which always renders the newest request (older ones
are dropped), so a slow render never queues up camera moves.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Optional

from absl import logging
import numpy as np

from fmgs_jax import errors
from fmgs_jax.data import DatasetError, load_dataset
from fmgs_jax.eval import animate
from fmgs_jax.view import camera as camera_lib
from fmgs_jax.view import poses as poses_lib
from fmgs_jax.view import render_fn as render_lib

EXTRA = "view"
POSE_SOURCES = ("training frames", "animation")


def import_viser():
  """The viser module, or an ImportError saying which extra installs it."""
  try:
    import viser  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.MissingPackageError(
        f"--mode=view needs viser, from the `{EXTRA}` extra: pip install -e \".[{EXTRA}]\" ({e})") from None
  return viser


def check_view_config(view: Any) -> None:
  """A clear error naming the `c.view` field that is wrong, before anything is loaded."""
  def bad(field, value, want):
    raise errors.ConfigError(f"config view.{field}: {value!r}, expected {want}")
  if not (isinstance(view.port, int) and 0 <= view.port <= 65535):
    bad("port", view.port, "an integer port in [0, 65535] (0 = any free port)")
  for field in ("height", "moving_height", "size_step"):
    if not (isinstance(view[field], int) and view[field] > 0):
      bad(field, view[field], "a positive integer (pixels)")
  if not view.settle_seconds >= 0:
    bad("settle_seconds", view.settle_seconds, "seconds >= 0")
  if not view.fps > 0:
    bad("fps", view.fps, "frames per second > 0")
  if not (isinstance(view.jpeg_quality, int) and 1 <= view.jpeg_quality <= 100):
    bad("jpeg_quality", view.jpeg_quality, "an integer in [1, 100]")
  bg = tuple(view.background)
  if len(bg) != 3 or not all(0.0 <= float(v) <= 1.0 for v in bg):
    bad("background", bg, "three RGB values in [0, 1]")


class _ClientLoop(threading.Thread):
  """One browser tab's render thread: renders the newest request only; after a camera move, a full-size
  frame once the camera has been still for `settle` seconds."""

  def __init__(self, draw: Callable[[bool], None], settle: float):
    super().__init__(daemon=True)
    self._draw, self._settle = draw, float(settle)
    self._cond = threading.Condition()
    self._pending: Optional[str] = None  # "moving" | "still"
    self._last_move = 0.0
    self._stopped = False

  def request(self, moving: bool) -> None:
    with self._cond:
      if moving:
        self._last_move = time.monotonic()
        self._pending = "moving"
      elif self._pending is None:
        self._pending = "still"
      self._cond.notify()

  def stop(self) -> None:
    with self._cond:
      self._stopped = True
      self._cond.notify()

  def run(self) -> None:
    owe_full = False  # the last frame was a moving one
    while True:
      with self._cond:
        while not self._stopped and self._pending is None:
          if owe_full:
            wait = self._last_move + self._settle - time.monotonic()
            if wait <= 0:
              self._pending = "still"
              break
            self._cond.wait(wait)
          else:
            self._cond.wait()
        if self._stopped:
          return
        kind, self._pending = self._pending, None
      try:
        self._draw(kind == "still")
      except Exception:  # a closed tab or a failed render must not end the thread silently
        logging.exception("viewer: render failed")
      owe_full = kind == "moving"


@dataclasses.dataclass
class Viewer:
  """A running viewer: `server` (viser.ViserServer), `url`, and what it renders; `stop()` ends it."""
  server: Any
  url: str
  render: Callable[..., np.ndarray]
  params: Any
  train_poses: list
  sequence: list
  state: dict
  loops: dict
  frames_drawn: list
  threads: list

  def stop(self) -> None:
    """Stops the server and joins every thread the viewer started (a render in flight finishes first:
    a thread left inside XLA at interpreter exit aborts the process)."""
    self.state["stopped"] = True
    self.server.stop()
    loops = list(self.loops.values())
    self.loops.clear()
    for loop in loops:
      loop.stop()
    for t in self.threads:
      if isinstance(t, _ClientLoop):
        t.stop()
      t.join(timeout=120)


def start_viewer(config: Any, workdir: str, verbose: bool = True) -> Viewer:
  """Restores the newest checkpoint in WORKDIR and starts the viewer's server (returns at once).

  Raises:
    ImportError: viser (the `view` extra) is not installed.
    ValueError / PoseFileError: a bad `c.view` field or pose file, before anything is compiled.
    FileNotFoundError: no checkpoint in WORKDIR.
  """
  viser = import_viser()
  check_view_config(config.view)
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
  root = loop.data_root(config, workdir)
  train_ds = load_dataset(config.data, "train", default_root=root)
  try:
    seq = animate.load_sequence(config, workdir)
  except DatasetError as e:  # no pose file and no novel-pose split: training frames only
    logging.info("viewer: no pose sequence to animate (%s)", e)
    seq = None
  av, params, info = loop.restore_params(config, workdir)
  train_poses = poses_lib.training_poses(train_ds, bool(config.train.pose_refine), av.betas)
  sequence = [] if seq is None else poses_lib.sequence_poses(seq, train_poses[0].transl, av.betas)
  render = render_lib.make_view_renderer(av, config)
  skeleton_of = poses_lib.make_skeleton_fn(av.body)
  train_K, train_w2c = train_ds.camera(0)
  start = camera_lib.initial_view(train_K, train_w2c, int(train_ds.meta.height))
  root_joint = skeleton_of(train_poses[0])[0, 0]  # the pelvis: the first segment's parent

  v = config.view
  server = viser.ViserServer(host=v.host, port=int(v.port), verbose=verbose)
  server.scene.set_up_direction(tuple(float(x) for x in start["up"]))
  gui = server.gui
  state = {"stopped": False, "playing": False}
  loops: dict[int, _ClientLoop] = {}
  threads: list[threading.Thread] = []  # every thread started here, for Viewer.stop to join
  frames_drawn: list = []  # (client id, width, height, seconds) per frame sent, newest last

  quantity = gui.add_dropdown("Quantity", render_lib.QUANTITIES, initial_value="colour")
  source = gui.add_dropdown("Pose", POSE_SOURCES if sequence else POSE_SOURCES[:1],
                            initial_value=POSE_SOURCES[0])
  train_frame = gui.add_slider("Training frame", 0, max(len(train_poses) - 1, 1), 1, 0,
                               disabled=len(train_poses) < 2)
  anim_frame = gui.add_slider("Animation frame", 0, max(len(sequence) - 1, 1), 1, 0,
                              disabled=len(sequence) < 2, visible=bool(sequence))
  play = gui.add_button("Play / pause", visible=bool(sequence))
  scale = gui.add_slider("Surfel scale", 0.1, 3.0, 0.05, 1.0)
  background = gui.add_rgb("Background", tuple(int(round(255 * float(c))) for c in v.background))
  show_skeleton = gui.add_checkbox("Skeleton", False)
  frame_time = gui.add_text("Frame time", "", disabled=True)
  gui.add_markdown(f"checkpoint step {info['train_steps']}, {av.num_surfels} surfels; "
                   f"{len(train_poses)} training frames"
                   + (f", {len(sequence)} animation frames ({seq.source})" if sequence else ""))

  def current_pose() -> poses_lib.ViewPose:
    if source.value == POSE_SOURCES[1] and sequence:
      return sequence[min(int(anim_frame.value), len(sequence) - 1)]
    return train_poses[min(int(train_frame.value), len(train_poses) - 1)]

  skeleton_handle = {}

  def update_skeleton() -> None:
    if show_skeleton.value:
      skeleton_handle["h"] = server.scene.add_line_segments(
          "/skeleton", skeleton_of(current_pose()), colors=(255, 40, 40), thickness=4.0,
          thickness_units="screen")
    elif "h" in skeleton_handle:
      skeleton_handle.pop("h").remove()

  def draw(client, full: bool) -> None:
    cam = client.camera
    height = int(v.height if full else v.moving_height)
    width, height = camera_lib.image_size(cam.aspect, height, v.size_step)
    ours = camera_lib.viser_to_camera(cam.wxyz, cam.position, cam.fov, width, height,
                                      near=config.render.near, far=config.render.far)
    bg = tuple(float(c) / 255.0 for c in background.value)
    compiled = (width, height) in render.programs
    t0 = time.perf_counter()
    image = render(params, current_pose(), ours, quantity.value, float(scale.value), bg)
    seconds = time.perf_counter() - t0
    client.scene.set_background_image(image, format="jpeg", jpeg_quality=int(v.jpeg_quality))
    frames_drawn.append((client.client_id, width, height, seconds))
    note = "" if compiled else " (first at this size: includes compiling)"
    frame_time.value = f"{1000.0 * seconds:.0f} ms at {width} x {height}{note}"

  def request_all(moving: bool = False) -> None:
    for loop_ in list(loops.values()):
      loop_.request(moving)

  @server.on_client_connect
  def _(client) -> None:
    if state["stopped"]:
      return
    with client.atomic():
      client.camera.fov = float(start["fov"])
      client.camera.up_direction = tuple(float(x) for x in start["up"])
      client.camera.position = tuple(float(x) for x in start["position"])
      client.camera.look_at = tuple(float(x) for x in root_joint)
    loop_ = _ClientLoop(lambda full: draw(client, full), v.settle_seconds)
    loops[client.client_id] = loop_
    threads.append(loop_)  # joined by Viewer.stop, also after the tab has closed
    loop_.start()
    client.camera.on_update(lambda _: loop_.request(moving=True))

  @server.on_client_disconnect
  def _(client) -> None:
    loop_ = loops.pop(client.client_id, None)
    if loop_ is not None:
      loop_.stop()

  for handle in (quantity, scale, background):
    handle.on_update(lambda _: request_all())
  for handle in (source, train_frame, anim_frame):
    handle.on_update(lambda _: (update_skeleton(), request_all()))
  show_skeleton.on_update(lambda _: update_skeleton())

  @play.on_click
  def _(_) -> None:
    state["playing"] = not state["playing"]
    if state["playing"]:
      source.value = POSE_SOURCES[1]

  def player() -> None:
    while not state["stopped"]:
      if state["playing"] and sequence:
        anim_frame.value = (int(anim_frame.value) + 1) % len(sequence)
      time.sleep(1.0 / float(v.fps))

  player_thread = threading.Thread(target=player, daemon=True)
  threads.append(player_thread)
  player_thread.start()
  host = "localhost" if v.host in ("127.0.0.1", "0.0.0.0", "::", "") else v.host
  url = f"http://{host}:{server.get_port()}"
  return Viewer(server=server, url=url, render=render, params=params, train_poses=train_poses,
                sequence=sequence, state=state, loops=loops, frames_drawn=frames_drawn,
                threads=threads)


def view(config: Any, workdir: str) -> None:
  """`--mode=view`: serves the viewer until Ctrl-C."""
  viewer = start_viewer(config, workdir)
  print(f"view: open {viewer.url} in a browser (Ctrl-C stops)", flush=True)
  try:
    while True:
      time.sleep(1.0)
  except KeyboardInterrupt:
    pass
  finally:
    viewer.stop()
