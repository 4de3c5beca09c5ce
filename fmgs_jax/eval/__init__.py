"""Evaluation: metrics, metrics.json reports, mesh and surfel exports, visual outputs."""

from fmgs_jax.eval.export import export_mesh, export_surfels_ply, rotations_to_quaternions, surfel_surface
from fmgs_jax.eval.perceptual import frame_lpips, load_lpips_weights, lpips_distance, lpips_params
from fmgs_jax.eval.metrics import (
    chamfer_fscore,
    confusion_matrix,
    crop_to_bbox,
    depth_errors,
    image_metrics,
    mask_bbox,
    masked_psnr,
    mesh_chamfer_fscore,
    normal_angular_error,
    part_miou,
    protocol_for_dataset,
    psnr,
    sample_surface,
    ssim,
)
from fmgs_jax.eval.report import metrics_report, write_metrics_json
from fmgs_jax.eval.visualize import (
    SAPIENS_CLASSES,
    SAPIENS_PALETTE,
    colorize_depth,
    colorize_normals,
    colorize_semantics,
    comparison_grid,
    image_grid,
    write_png,
    write_video,
)
