"""Metrics in plain NumPy: classification (accuracy, macro-F1, AUC, ECE), segmentation (Dice / IoU),
and the parameter / MAC count of a graph."""

from .classification import (
    accuracy,
    binary_auc,
    classification_report,
    confusion,
    ece,
    macro_f1,
    ovr_auc,
    per_class,
)
from .segmentation import block_mean, dice_iou, dice_summary, label_grid, label_grids, seg_report

__all__ = [
    "accuracy", "binary_auc", "classification_report", "confusion", "ece", "macro_f1", "ovr_auc", "per_class",
    "block_mean", "dice_iou", "dice_summary", "label_grid", "label_grids", "seg_report",
]
