"""Writers of tiny datasets in each supported layout (a few frames, small images), for the data tests."""

import os
import pickle

import imageio.v3 as iio
import numpy as np


def random_pose(rng, n):
  return (rng.normal(size=(n, 72)) * 0.2).astype(np.float32)


def write_people_snapshot(root, n=6, h=12, w=16, seed=0, refined=None):
  """Writes cameras.npz, images/, masks/, poses.npz (and poses/anim_nerf_*.npz); returns the truth."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "images"), exist_ok=True)
  os.makedirs(os.path.join(root, "masks"), exist_ok=True)
  K = np.array([[20.0, 0, 7.5], [0, 21.0, 5.5], [0, 0, 1]])
  E = np.eye(4)
  E[:3, 3] = [0.1, -0.2, 3.0]
  np.savez(os.path.join(root, "cameras.npz"), intrinsic=K, extrinsic=E, height=h, width=w)
  images = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
  masks = rng.random((n, h, w)) > 0.5
  for k in range(n):
    iio.imwrite(os.path.join(root, "images", f"image_{k:04d}.png"), images[k])
    np.save(os.path.join(root, "masks", f"mask_{k:04d}.npy"), masks[k])
  thetas = random_pose(rng, n)
  transl = rng.normal(size=(n, 3)).astype(np.float32)
  betas = rng.normal(size=(1, 10)).astype(np.float32)
  np.savez(os.path.join(root, "poses.npz"), betas=betas, thetas=thetas, transl=transl)
  truth = dict(K=K, E=E, images=images, masks=masks, thetas=thetas, transl=transl, betas=betas[0])
  for split, idx in (refined or {}).items():
    os.makedirs(os.path.join(root, "poses"), exist_ok=True)
    r = random_pose(rng, len(idx))
    t = rng.normal(size=(len(idx), 3)).astype(np.float32)
    b = rng.normal(size=(10,)).astype(np.float32)
    np.savez(os.path.join(root, "poses", f"anim_nerf_{split}.npz"), betas=b, global_orient=r[:, :3],
             body_pose=r[:, 3:], transl=t)
    truth[f"refined_{split}"] = dict(thetas=r, transl=t, betas=b)
  return truth


def write_zju(root, n_frames=4, n_cams=3, h=16, w=20, seed=0, mask_dir="mask_cihp", distort=True):
  """Writes annots.npy, Camera_B*/%06d.jpg images, mask_cihp/ masks, new_params/{i}.npy; returns the truth."""
  rng = np.random.default_rng(seed)
  Ks, Rs, Ts, Ds = [], [], [], []
  for c in range(n_cams):
    Ks.append(np.array([[25.0 + c, 0, 9.5], [0, 26.0, 7.5], [0, 0, 1]]))
    a = 0.3 * c
    Rs.append(np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]))
    Ts.append(np.array([[100.0 * c], [-50.0], [3000.0]]))  # millimetres
    Ds.append(np.array([[0.05 if distort else 0.0], [-0.01], [0.0], [0.0], [0.0]]))
  ims = []
  images = {}
  for i in range(n_frames):
    paths = []
    for c in range(n_cams):
      rel = os.path.join(f"Camera_B{c + 1}", f"{i:06d}.png")
      paths.append(rel)
      img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
      msk = (rng.random((h, w)) > 0.5).astype(np.uint8) * rng.integers(1, 20)  # part ids, 0 = background
      os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
      os.makedirs(os.path.join(root, mask_dir, os.path.dirname(rel)), exist_ok=True)
      iio.imwrite(os.path.join(root, rel), img)
      iio.imwrite(os.path.join(root, mask_dir, rel), msk.astype(np.uint8))
      images[(i, c)] = (img, msk)
    ims.append({"ims": paths})
  np.save(os.path.join(root, "annots.npy"),
          {"cams": {"K": Ks, "R": Rs, "T": Ts, "D": Ds}, "ims": ims}, allow_pickle=True)
  os.makedirs(os.path.join(root, "new_params"), exist_ok=True)
  params = []
  for i in range(n_frames):
    p = {"poses": random_pose(rng, 1), "Rh": rng.normal(size=(1, 3)) * 0.5,
         "Th": rng.normal(size=(1, 3)), "shapes": rng.normal(size=(1, 10))}
    np.save(os.path.join(root, "new_params", f"{i}.npy"), p, allow_pickle=True)
    params.append(p)
  return dict(K=Ks, R=Rs, T=Ts, D=Ds, images=images, params=params)


def write_humannerf(root, n=4, h=12, w=14, seed=0, betas=True, rest_joints=None, tpose_joints=None):
  """Writes images/, masks/, cameras.pkl, mesh_infos.pkl (with `tpose_joints` (24, 3) in every frame
  when given) and canonical_joints.pkl when `rest_joints` is given; returns the truth."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "images"), exist_ok=True)
  os.makedirs(os.path.join(root, "masks"), exist_ok=True)
  cams, infos, truth = {}, {}, {}
  for k in range(n):
    name = f"frame_{k:06d}"
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    msk = ((rng.random((h, w)) > 0.5) * 255).astype(np.uint8)
    iio.imwrite(os.path.join(root, "images", name + ".png"), img)
    iio.imwrite(os.path.join(root, "masks", name + ".png"), msk)
    E = np.eye(4)
    E[:3, 3] = [0, 0, 2.5 + k]
    cams[name] = {"intrinsics": np.array([[30.0, 0, 6.5], [0, 30.0, 5.5], [0, 0, 1]]), "extrinsics": E}
    infos[name] = {"poses": random_pose(rng, 1)[0], "Rh": rng.normal(size=3) * 0.5,
                   "Th": rng.normal(size=3)}
    if betas:
      infos[name]["betas"] = rng.normal(size=10)
    if tpose_joints is not None:
      infos[name]["tpose_joints"] = tpose_joints
    truth[name] = (img, msk)
  with open(os.path.join(root, "cameras.pkl"), "wb") as f:
    pickle.dump(cams, f)
  with open(os.path.join(root, "mesh_infos.pkl"), "wb") as f:
    pickle.dump(infos, f)
  if rest_joints is not None:
    with open(os.path.join(root, "canonical_joints.pkl"), "wb") as f:
      pickle.dump({"joints": rest_joints}, f)
  return dict(cams=cams, infos=infos, images=truth)
