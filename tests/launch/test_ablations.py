"""launch/ablations.py: one real tiny run through `python -m fmgs_jax.main` next to injected fakes; the
table against the metrics.json files; resume skips finished runs; failures are recorded, not fatal."""

import json
import os

from configs import default
from launch import ablations

# A tiny capture and avatar; train.steps=0 writes the initial avatar's checkpoint and evaluates it (the
# launcher, not training, is under test).
TINY = [
    "train.steps=0",
    "data.synthetic.height=32", "data.synthetic.width=32", "data.synthetic.focal=55",
    "data.synthetic.num_train_frames=2", "data.synthetic.num_novel_pose_frames=1",
    "data.synthetic.num_novel_view_cameras=1", "data.synthetic.num_novel_view_frames=1",
    "data.synthetic.supersample=1", "body.num_faces=600", "model.grid.num_levels=4",
    "model.grid.log2_table_size=10", "model.grid.max_resolution=64", "model.skinning_grid.num_levels=2",
    "model.skinning_grid.log2_table_size=8", "model.geometry_hidden=(16,)", "model.tilt_hidden=(16,)",
    "model.skinning_hidden=(16,)",
    "eval.orbit_frames=2", "eval.chamfer_samples=1000",
]
CONFIG = os.path.join(ablations.REPO, "configs", "synthetic.py")


def _arg(cmd, flag):
  return next(a.split("=", 1)[1] for a in cmd if a.startswith(flag + "="))


def _fake_metrics(run_dir, psnr):
  split = lambda p: {"psnr": p, "ssim": 0.5, "lpips": None, "normal_error_deg": 30.0, "chamfer_mm": None,
                     "num_frames": 1}
  m = {"psnr": psnr, "ssim": 0.5, "lpips": None, "normal_error_deg": 30.0, "chamfer_mm": None,
       "train_steps": 7, "train_seconds": 1.5, "splits": {"novel_view": split(psnr), "novel_pose": split(psnr + 1)}}
  with open(os.path.join(run_dir, "metrics.json"), "w") as f:
    json.dump(m, f)


def _rows(table):
  rows = {}
  lines = [l for l in table.splitlines() if l.startswith("|")]
  header = [c.strip() for c in lines[0].strip("|").split("|")]
  for l in lines[2:]:
    cells = [c.strip() for c in l.strip("|").split("|")]
    rows[cells[0]] = dict(zip(header, cells))
  return header, rows


def test_grid_is_the_papers_and_every_key_is_a_config_field():
  g = ablations.GRID
  config = default.get_config()
  for name, overrides in g.items():
    ablations.check_keys(config, overrides, name)
  off = {"depth", "normal_depth", "normal_prior", "normal_tv", "semantic", "semantic_reg"}
  zeroed = lambda name: {k.split(".")[1] for k, v in g[name].items() if k.startswith("loss.") and v == "0"}
  # Cumulative: none -> +depth -> +L_sn -> +L_n (with its TV) -> +semantics (= full).
  assert zeroed("priors_none") == off
  assert zeroed("plus_depth") == off - {"depth"}
  assert zeroed("plus_sn") == off - {"depth", "normal_depth"}
  assert zeroed("plus_n") == {"semantic", "semantic_reg"}
  assert ablations.ALIASES["plus_semantics"] == "full" and g["full"] == {}
  assert g["3dgs"] == {"model.primitive": "3dgs"} and g["free_gaussians"] == {"model.mesh_guided": "False"}
  assert zeroed("no_normal_prior") == {"normal_prior", "normal_depth", "normal_tv"}
  assert g["no_isolation"] == {"isolation.enabled": "False"}


def test_real_run_and_fake_run_table_then_resume_skips(tmp_path, capsys):
  workdir = str(tmp_path / "ablations")
  calls = []

  def mixed(cmd, log, cwd):
    calls.append(list(cmd))
    run_dir = _arg(cmd, "--workdir")
    assert "--config.train.steps=0" in cmd
    if os.path.basename(run_dir) == "full":
      return ablations.run_subprocess(cmd, log, cwd)  # the real thing
    assert "--config.loss.depth.weight=0" in cmd  # no_depth_prior's own override
    with open(log, "w") as f:
      f.write("fake run\n")
    _fake_metrics(run_dir, 21.25)
    return 0

  argv = [f"--config={CONFIG}", f"--workdir={workdir}", "--only", "full,no_depth_prior", "--override", *TINY]
  assert ablations.main(argv, runner=mixed) == 0
  assert [os.path.basename(_arg(c, "--workdir")) for c in calls] == ["full", "no_depth_prior"]
  full = json.load(open(os.path.join(workdir, "full", "metrics.json")))
  resolved = json.load(open(os.path.join(workdir, "full", "config.json")))
  assert resolved["train"]["steps"] == 0 and resolved["data"]["synthetic"]["height"] == 32
  assert resolved["loss"]["depth"]["weight"] > 0  # the full run keeps the depth prior
  assert os.path.isfile(os.path.join(workdir, "full", "launch.log"))

  table = open(os.path.join(workdir, "ablations.md")).read()
  assert table in capsys.readouterr().out
  header, rows = _rows(table)
  assert list(rows) == ["full", "no_depth_prior", "plus_semantics"]
  assert rows["full"]["status"] == "done" and rows["plus_semantics"]["status"] == "done (= full)"
  for split in ("novel_view", "novel_pose"):
    for key in ("psnr", "ssim", "lpips", "normal_error_deg", "chamfer_mm"):
      value = full["splits"][split][key]
      col = next(h for h in header if h.startswith(f"{split} {key} "))
      assert rows["full"][col] == f"{value:.4g}"
      assert rows["plus_semantics"][col] == rows["full"][col]
  assert rows["no_depth_prior"]["novel_view psnr ↑"] == "21.25"
  assert rows["no_depth_prior"]["novel_pose psnr ↑"] == "22.25"
  assert rows["no_depth_prior"]["novel_view chamfer_mm ↓"] == "–"  # null in the fake, a number in the real
  assert rows["no_depth_prior"]["train steps"] == "7" and rows["full"]["train steps"] == "0"
  assert rows["no_depth_prior"]["novel_view lpips ↓"] == "–"  # null in the fake; the real run has LPIPS

  def never(cmd, log, cwd):
    raise AssertionError(f"finished run started again: {cmd}")

  assert ablations.main(argv, runner=never) == 0
  out = capsys.readouterr().out
  assert out.count("metrics.json exists, skipped") == 2
  assert open(os.path.join(workdir, "ablations.md")).read() == table


def test_failed_run_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
  workdir = str(tmp_path / "grid")
  grid = {"bad_value": {"train.steps": "not_a_number"}, "flaky": {"isolation.enabled": "False"},
          "fine": {"loss.depth.weight": "0"}}
  ran = []

  def runner(cmd, log, cwd):
    name = os.path.basename(_arg(cmd, "--workdir"))
    ran.append(name)
    if name == "bad_value":  # a real process: main rejects the value (a user error, exit 2) before any compute
      return ablations.run_subprocess(cmd, log, cwd)
    if name == "flaky":
      with open(log, "w") as f:
        f.write("step 1\nTraceback (most recent call last):\nValueError: boom in flaky\n")
      return 3
    _fake_metrics(_arg(cmd, "--workdir"), 20.0)
    return 0

  argv = [f"--config={CONFIG}", f"--workdir={workdir}"]
  assert ablations.main(argv, grid=grid, runner=runner) == 1
  assert ran == ["bad_value", "flaky", "fine"]
  out = capsys.readouterr().out
  assert "boom in flaky" in out and "FAILED (exit 3)" in out
  # A user error is reported as its one line.
  assert "bad_value: FAILED (exit 2) after 0:00:0" in out and ": fmgs_jax.main: error: flag --config.train.steps" in out
  log = open(os.path.join(workdir, "bad_value", "launch.log")).read()
  assert log.rstrip().endswith("fmgs_jax.main: error: flag --config.train.steps=not_a_number: invalid literal for "
                              "int() with base 10: 'not_a_number'")
  _, rows = _rows(open(os.path.join(workdir, "ablations.md")).read())
  assert rows["bad_value"]["status"] == "failed (exit 2)"
  assert rows["flaky"]["status"] == "failed (exit 3)" and rows["flaky"]["novel_view psnr ↑"] == "–"
  assert rows["fine"]["status"] == "done" and rows["fine"]["novel_view psnr ↑"] == "20"
  # Again: the failed runs are retried, the finished one is skipped.
  ran.clear()
  ablations.main(argv, grid=grid, runner=runner)
  assert ran == ["bad_value", "flaky"]


def test_bad_arguments_stop_before_any_run(tmp_path, capsys):
  def never(cmd, log, cwd):
    raise AssertionError("ran")

  base = [f"--config={CONFIG}", f"--workdir={tmp_path}"]
  assert ablations.main(base + ["--override", "loss.dept.weight=0"], runner=never) == 2
  err = capsys.readouterr().err
  assert err == "ablations: error: --override: loss.dept.weight: no such field; did you mean loss.depth.weight?\n"
  assert ablations.main(base, grid={"x": {"model.primitiv": "3dgs"}}, runner=never) == 2
  assert "grid run x: model.primitiv: no such field; did you mean model.primitive?" in capsys.readouterr().err
  assert ablations.main(base + ["--override", "train.steps"], runner=never) == 2
  assert "expected key=value" in capsys.readouterr().err
  assert ablations.main(base + ["--only", "full,nope"], runner=never) == 2
  assert "unknown run(s) ['nope']" in capsys.readouterr().err
  assert ablations.main([f"--config={tmp_path}/none.py", f"--workdir={tmp_path}"], runner=never) == 2
  assert "file not found" in capsys.readouterr().err
