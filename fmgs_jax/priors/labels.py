"""Body-part label spaces and the explicit tables that map every source into Sapiens' 28 classes.

Segmentation lives in the Sapiens (Goliath) 28-class space throughout: the avatar's semantic field
predicts these classes, and every prior source is mapped into them here, by name, with tables a reader
can check line by line. A source class with no counterpart maps to `IGNORE` (-1): the semantic loss
skips those pixels rather than learning a guess.

Tables:
* `SAPIENS_CLASSES`   the 28 classes of the original Sapiens `sapiens-seg-*` checkpoints (identity).
* `SAPIENS2_CLASSES`  the 29 classes of `sapiens2-seg-*` (Sapiens2 docs/SEG.md): the 28 plus
                      `Eyeglass` inserted at index 2, which we fold into Face_Neck (glasses sit on the face).
* `LIP_CLASSES`       the 20 classes of the LIP human-parsing benchmark, the usual label set of
                      transformers human-parsing checkpoints (SegFormer/Mask2Former "clothes" models).
* `TEMPLATE_PARTS`    the 16 named parts of the synthetic capture's template (mannequin-x converted to
                      SMPL format): head, neck, torso, pelvis and upper/lower/end segment of each limb.
* SMPL and mannequin-x joint names (`pelvis`, `left_hip`, `L_Elbow`, ...), so a per-vertex part label
  derived from the dominant skinning joint maps too.
Names are compared after `normalize_name` (lower case, `_` for spaces and hyphens, `l_`/`r_` ->
`left_`/`right_`), so `Left Upper Arm`, `left_upper_arm` and `Left-Upper-Arm` are one name.
"""

from collections.abc import Mapping, Sequence

import numpy as np

IGNORE = -1  # part label of pixels whose source class has no Sapiens counterpart (skipped by the loss)

SAPIENS_CLASSES = (
    "Background", "Apparel", "Face_Neck", "Hair", "Left_Foot", "Left_Hand", "Left_Lower_Arm",
    "Left_Lower_Leg", "Left_Shoe", "Left_Sock", "Left_Upper_Arm", "Left_Upper_Leg", "Lower_Clothing",
    "Right_Foot", "Right_Hand", "Right_Lower_Arm", "Right_Lower_Leg", "Right_Shoe", "Right_Sock",
    "Right_Upper_Arm", "Right_Upper_Leg", "Torso", "Upper_Clothing", "Lower_Lip", "Upper_Lip",
    "Lower_Teeth", "Upper_Teeth", "Tongue",
)
NUM_CLASSES = len(SAPIENS_CLASSES)  # 28

SAPIENS2_CLASSES = SAPIENS_CLASSES[:2] + ("Eyeglass",) + SAPIENS_CLASSES[2:]  # 29

LIP_CLASSES = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat", "Socks",
    "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg",
    "Left-shoe", "Right-shoe",
)

TEMPLATE_PARTS = (
    "head", "neck", "torso", "pelvis",
    "left_upper_arm", "left_lower_arm", "left_hand", "right_upper_arm", "right_lower_arm", "right_hand",
    "left_upper_leg", "left_lower_leg", "left_foot", "right_upper_leg", "right_lower_leg", "right_foot",
)

# Source name (normalised) -> Sapiens class name; None = no counterpart (IGNORE).
_TABLE: dict[str, str | None] = {}


def normalize_name(name: str) -> str:
  """Canonical form of a class name: lower case, '_' separators, `l_`/`r_` spelled out."""
  n = name.strip().lower().replace("-", "_").replace(" ", "_")
  if n.startswith("l_"):
    n = "left_" + n[2:]
  elif n.startswith("r_"):
    n = "right_" + n[2:]
  return n


def _add(pairs: Mapping[str, str | None]) -> None:
  for src, dst in pairs.items():
    if dst is not None and dst not in SAPIENS_CLASSES:
      raise ValueError(f"label table maps {src!r} to unknown Sapiens class {dst!r}")
    _TABLE[normalize_name(src)] = dst


_add({c: c for c in SAPIENS_CLASSES})  # Sapiens 28: identity
_add({"Eyeglass": "Face_Neck"})  # Sapiens2's extra class
_add({  # LIP human parsing
    "Hat": "Apparel", "Glove": "Apparel", "Sunglasses": "Face_Neck", "Scarf": "Apparel",
    "Upper-clothes": "Upper_Clothing", "Dress": "Upper_Clothing", "Coat": "Upper_Clothing",
    "Jumpsuits": "Upper_Clothing", "Socks": None,  # LIP does not say which foot
    "Pants": "Lower_Clothing", "Skirt": "Lower_Clothing", "Face": "Face_Neck",
    "Left-arm": None, "Right-arm": None,  # LIP's arm covers upper + lower arm: no single class
    "Left-leg": None, "Right-leg": None,  # likewise upper + lower leg
    "Left-shoe": "Left_Shoe", "Right-shoe": "Right_Shoe",
})
_add({  # template parts (synthetic capture)
    "head": "Face_Neck", "neck": "Face_Neck", "torso": "Torso", "pelvis": "Torso",
    "left_upper_arm": "Left_Upper_Arm", "left_lower_arm": "Left_Lower_Arm", "left_hand": "Left_Hand",
    "right_upper_arm": "Right_Upper_Arm", "right_lower_arm": "Right_Lower_Arm", "right_hand": "Right_Hand",
    "left_upper_leg": "Left_Upper_Leg", "left_lower_leg": "Left_Lower_Leg", "left_foot": "Left_Foot",
    "right_upper_leg": "Right_Upper_Leg", "right_lower_leg": "Right_Lower_Leg", "right_foot": "Right_Foot",
})
_add({  # SMPL joint names (part = dominant skinning joint of the surface point)
    "spine1": "Torso", "spine2": "Torso", "spine3": "Torso",
    "left_hip": "Left_Upper_Leg", "right_hip": "Right_Upper_Leg",
    "left_knee": "Left_Lower_Leg", "right_knee": "Right_Lower_Leg",
    "left_ankle": "Left_Foot", "right_ankle": "Right_Foot", "left_toe": "Left_Foot", "right_toe": "Right_Foot",
    "left_collar": "Torso", "right_collar": "Torso",
    "left_shoulder": "Left_Upper_Arm", "right_shoulder": "Right_Upper_Arm",
    "left_elbow": "Left_Lower_Arm", "right_elbow": "Right_Lower_Arm",
    "left_wrist": "Left_Hand", "right_wrist": "Right_Hand",
})
_add({  # mannequin-x joint names not already covered (after l_/r_ expansion)
    "spine": "Torso", "chest": "Torso", "left_thorax": "Torso", "right_thorax": "Torso",
})
_add({"left_" + f: "Left_Hand" for f in
      ("index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2", "pinky3",
       "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3")})
_add({"right_" + f: "Right_Hand" for f in
      ("index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2", "pinky3",
       "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3")})


def sapiens_name(source_name: str) -> str | None:
  """The Sapiens class a source class name maps to; None if it has no counterpart.

  Raises:
    KeyError: the name is in no table (add it to a table above rather than guessing).
  """
  n = normalize_name(source_name)
  if n not in _TABLE:
    raise KeyError(f"no Sapiens mapping for class name {source_name!r} (normalised {n!r}); "
                   "add it to a table in fmgs_jax/priors/labels.py")
  return _TABLE[n]


def mapping_table(source_names: Sequence[str], strict: bool = True) -> np.ndarray:
  """Index table from a source label set into Sapiens ids.

  Args:
    source_names: names of the source classes, index = source id.
    strict: unknown names raise; with False they map to IGNORE (e.g. a generic scene-parsing label set
      whose 'sky' and 'car' have nothing to do with body parts).
  Returns:
    (len(source_names),) int32: Sapiens class id, or IGNORE.
  """
  out = np.full(len(source_names), IGNORE, np.int32)
  for i, name in enumerate(source_names):
    try:
      dst = sapiens_name(name)
    except KeyError:
      if strict:
        raise
      dst = None
    if dst is not None:
      out[i] = SAPIENS_CLASSES.index(dst)
  return out


def remap_labels(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
  """(H, W) int source ids -> (H, W) int16 Sapiens ids; ids outside the table -> IGNORE."""
  labels = np.asarray(labels)
  ok = (labels >= 0) & (labels < len(table))
  out = np.full(labels.shape, IGNORE, np.int16)
  out[ok] = table[labels[ok]]
  return out


def remap_scores(scores: np.ndarray, table: np.ndarray) -> np.ndarray:
  """Source class probabilities -> Sapiens class probabilities plus an 'unmapped' column.

  Probabilities of source classes that map to the same Sapiens class add up, so e.g. Sapiens2's
  Eyeglass and Face_Neck vote together; the mass of unmapped classes goes to the last column.

  Args:
    scores: (..., S) float probabilities over source classes.
    table: (S,) int from `mapping_table`.
  Returns:
    (..., NUM_CLASSES + 1) float32.
  """
  scores = np.asarray(scores, np.float32)
  m = np.zeros((len(table), NUM_CLASSES + 1), np.float32)
  m[np.arange(len(table)), np.where(table >= 0, table, NUM_CLASSES)] = 1.0
  return scores @ m


def labels_from_scores(scores: np.ndarray) -> np.ndarray:
  """(..., NUM_CLASSES + 1) scores from `remap_scores` -> (...) int16 labels, IGNORE where unmapped wins."""
  lab = np.argmax(scores, axis=-1).astype(np.int16)
  lab[lab == NUM_CLASSES] = IGNORE
  return lab
