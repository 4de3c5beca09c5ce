"""A user's video -> a HumanNeRF-layout dataset (`--mode=prepare`, configs/video.py).

One module per job, run in this order by `run.prepare(config, workdir)`:

  frames.read_frames      decode (every k-th frame, at most N), resize, keep each frame's source index
  masks.person_masks      person masks from a segmentation model (largest connected component)
  keypoints.detect        COCO-17 keypoints with confidences from a VitPose model, boxes from the masks
  camera.intrinsics       a static pinhole camera (focal from pixels or field of view), world = camera
  fit_sequence            the built-in template's per-frame pose and one shape (fmgs_jax/fit/sequence.py)
  output.write_dataset    images/, masks/, cameras.pkl, mesh_infos.pkl, canonical_joints.pkl
  overlay.write_overlay   the fitted template drawn over the frames (WORKDIR/overlay.mp4)

Masks and keypoints are cached in WORKDIR/prepare/ (the model runs are the slow part), keyed by the
video file, the frame settings and the model files. torch and transformers are imported only inside
the model loaders.

Layer: above data, priors, body, fit and render; only main.py imports it.
"""
