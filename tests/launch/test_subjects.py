"""launch/subjects.py: subject lists, command lines, bounded local parallelism with a GPU each, resume
(finished subjects skipped, failed ones rerun), the SLURM array script executed by bash with a real
`python -m fmgs_jax.main` (which fails fast on an empty dataset folder and is recorded), the table."""

import json
import os
import subprocess
import threading
import time

import pytest

from launch import subjects

PS_CONFIG = os.path.join(subjects.REPO, "configs", "people_snapshot.py")
ZJU_CONFIG = os.path.join(subjects.REPO, "configs", "zju.py")


def _metrics(psnr, steps=7):
  return {"psnr": psnr, "ssim": 0.5, "lpips": None, "normal_error_deg": 20.0, "chamfer_mm": None,
          "part_miou": 0.25, "num_frames": 3, "train_steps": steps, "train_seconds": 1.5,
          "splits": {"novel_pose": {"psnr": psnr}}}


def _write_metrics(run_dir, psnr):
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "metrics.json"), "w") as f:
    json.dump(_metrics(psnr), f)


def _rows(table):
  lines = [l for l in table.splitlines() if l.startswith("|")]
  header = [c.strip() for c in lines[0].strip("|").split("|")]
  return header, {c[0]: dict(zip(header, c)) for c in
                  ([x.strip() for x in l.strip("|").split("|")] for l in lines[2:])}


def _arg(cmd, flag):
  return next(a.split("=", 1)[1] for a in cmd if a.startswith(flag + "="))


def _dirs(tmp_path, *names):
  out = []
  for n in names:
    (tmp_path / "data" / n).mkdir(parents=True, exist_ok=True)
    out.append(str(tmp_path / "data" / n))
  return out


def test_subject_lists_from_flag_and_file(tmp_path):
  listing = tmp_path / "subjects.txt"
  listing.write_text("# PeopleSnapshot\nmale-3-casual /data/ps/m3   # the default subject\n\n"
                     "female-4-casual:/data/ps/f4 train.steps=100 seed=3\nzju377 ~/zju/377\n")
  s = subjects.parse_subjects("a:/x/a, b:rel/b", str(listing))
  assert [x.name for x in s] == ["a", "b", "male-3-casual", "female-4-casual", "zju377"]
  assert s[0].root == "/x/a" and s[1].root == os.path.abspath("rel/b")
  assert s[4].root == os.path.expanduser("~/zju/377")
  assert dict(s[3].overrides) == {"train.steps": "100", "seed": "3"} and s[2].overrides == ()
  for spec, match in [("a:/x,a:/y", "unique"), ("a", "NAME:PATH"), ("../a:/x", "plain folder name"),
                      ("", "no subjects")]:
    with pytest.raises(subjects.LaunchError, match=match):
      subjects.parse_subjects(spec)
  with pytest.raises(subjects.LaunchError, match="missing.txt: file not found"):
    subjects.parse_subjects("", str(tmp_path / "missing.txt"))
  listing.write_text("good /x\nbad /y notakeyvalue\n")
  with pytest.raises(subjects.LaunchError, match=r"subjects.txt:2: --override 'notakeyvalue': expected key=value"):
    subjects.parse_subjects("", str(listing))


def test_command_lines_pass_the_subject_to_configs_that_take_one(tmp_path):
  ps, zju = subjects.load_config_module(PS_CONFIG), subjects.load_config_module(ZJU_CONFIG)
  s = subjects.Subject("female-3-casual", "/data/f3", (("train.steps", "9"),))
  assert subjects.config_for(PS_CONFIG, ps, s) == PS_CONFIG + ":female-3-casual"
  assert subjects.config_for(PS_CONFIG + ":male-4-casual", ps, s) == PS_CONFIG + ":male-4-casual"
  assert subjects.config_for(ZJU_CONFIG, zju, s) == ZJU_CONFIG
  cmd = subjects.command(ZJU_CONFIG, "/runs/f3", s, {"train.steps": "5", "seed": "1"})
  assert cmd[1:6] == ["-m", "fmgs_jax.main", f"--config={ZJU_CONFIG}", "--workdir=/runs/f3", "--mode=train"]
  # data.root first, then the global overrides, the subject's own last (it wins)
  assert cmd[6:] == ["--config.data.root=/data/f3", "--config.train.steps=9", "--config.seed=1"]


def test_bad_arguments_fail_before_running(tmp_path, capsys):
  a, = _dirs(tmp_path, "a")
  base = [f"--config={ZJU_CONFIG}", f"--workdir={tmp_path / 'runs'}"]
  never = lambda *args: pytest.fail("nothing may run")
  assert subjects.main(base + [f"--subjects=a:{a}", "--override", "train.stepz=3"], runner=never) == 2
  assert "subjects: error: --override: train.stepz: no such field; did you mean train.steps?" in capsys.readouterr().err
  assert subjects.main(base + [f"--subjects=a:{a},b:{tmp_path / 'nope'}"], runner=never) == 2
  assert f"subject b: dataset folder {tmp_path / 'nope'} not found" in capsys.readouterr().err
  assert subjects.main(base + [f"--subjects=a:{a}", "--submit"], runner=never) == 2
  assert not os.path.exists(tmp_path / "runs")


def test_local_runs_bounded_one_gpu_each_then_resume(tmp_path, capsys):
  names = ["s1", "s2", "s3", "s4"]
  roots = _dirs(tmp_path, *names)
  workdir = str(tmp_path / "runs")
  lock, running, peak, seen = threading.Lock(), [], [0], []

  def fake(cmd, log, cwd, env):
    name = os.path.basename(_arg(cmd, "--workdir"))
    with lock:
      assert env["CUDA_VISIBLE_DEVICES"] not in [g for _, g in running]  # one GPU per concurrent run
      running.append((name, env["CUDA_VISIBLE_DEVICES"]))
      peak[0] = max(peak[0], len(running))
      seen.append(name)
    time.sleep(0.3)
    with lock:
      running.remove((name, env["CUDA_VISIBLE_DEVICES"]))
    assert _arg(cmd, "--config.data.root") == roots[names.index(name)] and cwd == subjects.REPO
    if name == "s3":
      return 3
    _write_metrics(_arg(cmd, "--workdir"), {"s1": 20.0, "s2": 22.0, "s4": 30.0}[name])
    return 0

  argv = [f"--config={ZJU_CONFIG}", f"--workdir={workdir}", "--gpus=0,1",
          "--subjects=" + ",".join(f"{n}:{r}" for n, r in zip(names, roots))]
  assert subjects.main(argv, runner=fake) == 1  # s3 failed
  assert sorted(seen) == names and peak[0] == 2  # --max_parallel defaults to the 2 GPUs
  status = json.load(open(os.path.join(workdir, "s3", subjects.STATUS_FILE)))
  assert status["status"] == "failed" and status["exit_code"] == 3
  header, rows = _rows(open(os.path.join(workdir, subjects.TABLE_FILE)).read())
  assert header[:4] == ["subject", "status", "psnr ↑", "ssim ↑"] and header[-2:] == ["train_steps", "train_seconds"]
  assert "part_miou ↑" in header and "num_frames" not in " ".join(header)
  assert rows["s1"]["status"] == "done" and rows["s1"]["psnr ↑"] == "20"
  assert rows["s3"]["status"] == "failed (exit 3)" and rows["s3"]["psnr ↑"] == "–"
  assert rows["s1"]["lpips ↓"] == "–" and rows["s4"]["train_steps"] == "7"
  assert rows["mean (3 of 4)"]["psnr ↑"] == "24"  # (20 + 22 + 30) / 3
  # Resume: finished subjects are skipped, the failed one runs again (and now succeeds).
  seen.clear()

  def fixed(cmd, log, cwd, env):
    seen.append(cmd)
    _write_metrics(_arg(cmd, "--workdir"), 26.0)
    return 0

  assert subjects.main(argv, runner=fixed) == 0
  assert [os.path.basename(_arg(c, "--workdir")) for c in seen] == ["s3"]
  assert capsys.readouterr().out.count("metrics.json exists, skipped") == 3
  _, rows = _rows(open(os.path.join(workdir, subjects.TABLE_FILE)).read())
  assert rows["s3"]["status"] == "done" and rows["mean (4 of 4)"]["psnr ↑"] == "24.5"


def test_slurm_array_script_runs_the_real_command_and_resumes(tmp_path, capsys):
  done_root, empty_root = _dirs(tmp_path, "male-3-casual", "female-3-casual")
  workdir = str(tmp_path / "runs")
  _write_metrics(os.path.join(workdir, "male-3-casual"), 25.0)  # finished before: not in the array
  argv = [f"--config={PS_CONFIG}", f"--workdir={workdir}", "--slurm", "--max_parallel=3",
          "--sbatch_option=--gres=gpu:1", "--sbatch_option=--time=04:00:00",
          f"--subjects=male-3-casual:{done_root},female-3-casual:{empty_root}", "--override", "train.steps=5"]
  assert subjects.main(argv, runner=lambda *a: pytest.fail("--slurm runs nothing locally")) == 0
  script = os.path.join(workdir, subjects.SBATCH_FILE)
  text = open(script).read()
  assert "#SBATCH --array=0-0%3" in text and "#SBATCH --gres=gpu:1" in text and "#SBATCH --time=04:00:00" in text
  assert "female-3-casual" in text and f"{done_root}" not in text
  assert f"--config={PS_CONFIG}:female-3-casual" in text and "--config.train.steps=5" in text
  _, rows = _rows(capsys.readouterr().out)
  assert rows["male-3-casual"]["status"] == "done" and rows["female-3-casual"]["status"] == "pending"
  # What a SLURM node would do for task 0: the real fmgs_jax.main refuses the empty folder, fast.
  env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
  subprocess.run(["bash", script], env={**env, "SLURM_ARRAY_TASK_ID": "0"}, check=False, timeout=300)
  run = os.path.join(workdir, "female-3-casual")
  status = json.load(open(os.path.join(run, subjects.STATUS_FILE)))
  assert status["name"] == "female-3-casual" and status["status"] == "failed" and status["exit_code"] == 2
  log = open(os.path.join(run, subjects.LOG_FILE)).read()
  last = log.rstrip().split("\n")[-1]  # a user error: one line, no traceback
  assert last.startswith("fmgs_jax.main: error: ") and empty_root in last and "Traceback" not in log
  resolved = json.load(open(os.path.join(run, "config.json")))  # main parsed every flag and wrote its config
  assert resolved["data"]["subject"] == "female-3-casual" and resolved["data"]["root"] == empty_root
  assert resolved["data"]["frames"]["train"] == [0, 446, 4] and resolved["train"]["steps"] == 5
  assert subprocess.run(["bash", script], env={**env, "SLURM_ARRAY_TASK_ID": "1"}, check=False).returncode == 2
  # The array finished (faked here): --summary tabulates; --slurm again has nothing to submit.
  _write_metrics(run, 27.0)
  assert subjects.main(argv[:2] + [argv[-3], "--summary"], runner=lambda *a: pytest.fail("no runs")) == 0
  _, rows = _rows(capsys.readouterr().out)
  assert rows["female-3-casual"]["status"] == "done" and rows["mean (2 of 2)"]["psnr ↑"] == "26"
  os.remove(script)
  assert subjects.main(argv) == 0
  assert "nothing to submit" in capsys.readouterr().out and not os.path.exists(script)
