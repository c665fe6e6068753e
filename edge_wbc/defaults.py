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
