"""Tiny local checkpoints for the preparation tests, built from configs (no downloads).

* `brightness_segmenter`: a Sapiens-style TorchScript file whose person logit rises with pixel brightness
  (the synthetic capture's person is lit, its background black), so its masks are the true ones;
* `constant_segformer`: a randomly initialised SegFormer folder with a `person` class whose classifier
  bias makes every pixel the person's (`person=True`) or the background's (`person=False`);
* `random_vitpose`: a randomly initialised COCO-17 VitPose folder (its keypoints are meaningless).
"""

import os

import numpy as np


def brightness_segmenter(path: str, height: int = 32, width: int = 24) -> str:
  import torch  # pylint: disable=g-import-not-at-top

  class Seg(torch.nn.Module):

    def forward(self, x):
      # x: (B, 3, H, W) normalised with Sapiens' mean / std; undo to 0-255 brightness.
      mean = torch.tensor([123.5, 116.5, 103.5]).view(1, 3, 1, 1)
      std = torch.tensor([58.5, 57.0, 57.5]).view(1, 3, 1, 1)
      v = (x * std + mean).mean(1, keepdim=True)
      person = (v - 12.0) * 2.0  # brighter than 12 / 255: the person
      return torch.cat([-person, person, torch.zeros_like(v).repeat(1, 26, 1, 1) - 20.0], 1)

  torch.jit.script(Seg()).save(path)
  return path


def constant_segformer(folder: str, person: bool = True) -> str:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  cfg = transformers.SegformerConfig(
      num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
      strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16,
      id2label={0: "wall", 1: "person", 2: "sky"}, label2id={"wall": 0, "person": 1, "sky": 2})
  torch.manual_seed(0)
  model = transformers.SegformerForSemanticSegmentation(cfg)
  with torch.no_grad():
    model.decode_head.classifier.weight.zero_()
    model.decode_head.classifier.bias.copy_(torch.tensor([0.0, 10.0 if person else -10.0, 0.0]))
  model.save_pretrained(folder)
  transformers.SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
  return folder


def random_vitpose(folder: str) -> str:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  bb = transformers.VitPoseBackboneConfig(image_size=(64, 48), patch_size=(16, 16), hidden_size=32,
                                          num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                          out_indices=[2])
  torch.manual_seed(0)
  transformers.VitPoseForPoseEstimation(transformers.VitPoseConfig(backbone_config=bb, num_labels=17)).save_pretrained(folder)
  transformers.VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(folder)
  return folder


def write_clip(path: str, frames: np.ndarray, fps: float = 10.0) -> str:
  """(N, H, W, 3) uint8 frames as an H.264 mp4 (near-lossless, so thresholds of the decoded frames hold)."""
  import imageio  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  w = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv444p",
                         macro_block_size=1, output_params=["-crf", "0"])
  for f in frames:
    w.append_data(f)
  w.close()
  return path
