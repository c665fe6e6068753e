"""Default thresholds and fractions, each defined once (the CLI, the runtime and the tasks read them here).

This module imports nothing, so the CLI can show these defaults without loading the runtime.
"""

#: WBC components smaller than this share of the model's window (at the model's scale) are specks:
#: platelets, debris. The smallest SigTuple training WBC is 1,536 px of 16,384 (about 1/11).
SPECK_FRAC = 1 / 32

#: Probability above which a segmentation / detection map pixel counts as WBC.
MASK_THRESHOLD = 0.5

#: Components under this share of a resized smear map are not taken for WBC detections.
DETECTION_MIN_AREA_FRAC = 0.002

#: The 'uncertain' threshold when none was calibrated: the top class must be likelier than all others together.
UNCERTAIN_BELOW = 0.5

#: Lowest 'uncertain' threshold ``edge-wbc calibrate`` may choose.
UNCERTAIN_FLOOR = 0.5

#: Accuracy ``edge-wbc calibrate`` wants on the val crops it does not call uncertain.
CALIBRATE_TARGET = 0.95

#: Accuracy ``edge-wbc export-android`` wants on the reported val predictions when it picks the threshold.
EXPORT_TARGET_ACCURACY = 0.99

#: The grid ``edge-wbc export-android`` picks its uncertain threshold from: 0.50 .. 0.99.
EXPORT_THRESHOLD_GRID = tuple(round(0.50 + 0.01 * i, 2) for i in range(50))

#: Temperature of an uncalibrated classifier.
TEMPERATURE = 1.0

#: The WBC-centred crop of a field classifier (``crop: "wbc"``): side = this x the WBC's longer side.
CROP_RATIO = 1.5

#: A WBC component smaller than this share of the segmenter's input is not taken for the cell.
CROP_MIN_WBC_FRAC = 0.01

#: The segmenter that finds the WBC for ``crop: "wbc"`` models (a shipped model's name).
CROP_SEGMENTER = "wbc_unet_int8"

#: `edge-wbc count --report`: fields shown at full size (up to REPORT_FULL_PX px); beyond, every field is a
#: REPORT_THUMB_PX px thumbnail; over REPORT_MAX_FIELDS fields the report is refused (JSON/CSV hold them all).
REPORT_FULL_FIELDS = 100
REPORT_FULL_PX = 800
REPORT_THUMB_PX = 240
REPORT_MAX_FIELDS = 1000

#: A count's differential is marked unreliable when fewer cells than this were answered (not uncertain).
MIN_ANSWERED = 10

#: µm per pixel that the shipped smear detector's input sees: BCCD fields (0.0725 µm/px, from their VOC
#: red-cell boxes and 7.5 µm red cells) shrunk 4x to its 160 px input. Its model.json may say otherwise
#: (``metrics.um_per_px``).
SMEAR_DETECTOR_UM_PER_PX = 0.29

#: µm per pixel of the shipped cell segmenter's training patches: the median red-cell estimate over the
#: SigTuple training patches (0.259; 117 of 164 give one), rounded.
CELL_SEGMENTER_UM_PER_PX = 0.25

#: µm per pixel (in the red-cell estimator's units) that the multi-source WBC detector works at: every
#: field is resampled to it before detection (a WBC is about 24 px across there, a red cell 15 px).
DETECTOR_UM_PER_PX = 0.5

#: The detector's targets are the ellipses inscribed in the WBC boxes shrunk by this factor about their
#: centres (touching cells stay apart); the runtime grows the found boxes back by its inverse.
DETECTOR_TARGET_SHRINK = 0.8

#: Overlap of the detector's windows, in its input pixels (more than a WBC, so each is whole in one).
DETECTOR_OVERLAP = 48

#: How the field detector's map becomes WBCs (a detector's model.json may say otherwise, ``metrics.decode``):
#: components of the map above ``threshold`` with at least ``min_area_px`` pixels (at the detector's scale)
#: and a mean probability of at least ``min_mean_prob``. Chosen on the val fields of BCCD and smartphone_pig
#: (``benchmarks/detect_decode.py``, best mean F1 at IoU >= 0.5); platelet clumps are the small, less sure ones.
DETECTOR_DECODE = {"threshold": 0.3, "min_area_px": 50, "min_mean_prob": 0.9}

#: Width, µm, assumed for a field whose red cells are too few for a scale estimate, when the detector has
#: no input field of its own (the rule-based nucleus detector): the field detector's 288 px window at 0.5 µm/px.
FIELD_FALLBACK_UM = 144.0

#: Typical WBC diameter, µm: the scale of a single-cell crop is read off its WBC's size.
WBC_UM = 12.0

# ---- OOD statistics (edge_wbc.runtime.ood, fitted by `convert --ood`) -------------------------------
#: training images a source used for the class means and the tied covariance of the features
OOD_TRAIN_PER_SOURCE = 2000
#: share of every training source's val images answered (the threshold is the largest such quantile)
OOD_QUANTILE = 0.99
#: shrinkage of the covariance towards its mean diagonal (directions of almost no variance)
OOD_SHRINK = 0.05
#: `edge-wbc adapt --method features`: unlabelled cell images needed for the feature mean
ADAPT_MIN_IMAGES = 20
#: how `adapt --method features` estimates the shift: "mean" or "em" (edge_wbc.runtime.ood.SHIFT_KINDS)
ADAPT_SHIFT = "mean"
#: training crops a source used to fit a field model's image-quality limits (metrics.quality)
QUALITY_PER_SOURCE = 600
