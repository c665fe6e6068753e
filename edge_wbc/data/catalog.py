"""The dataset catalog: every fact about a named dataset, in one table.

One :class:`DatasetInfo` per name: where it lives under the data root, its task, the input size a
model trained on it gets by default, its license and credit (shown in every Android bundle), and,
for the datasets ``edge-wbc data fetch`` can download, the URL and md5. Loaders, training, export
and ``edge-wbc data info`` read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    path: str  # relative to the data root
    task: str  # "classification" | "segmentation"
    default_size: tuple[int, int]  # (height, width) of a model trained on it, unless --size says otherwise
    license: str
    credit: str
    description: str
    url: str | None = None  # downloadable by `edge-wbc data fetch` (md5-checked)
    md5: str | None = None


_PBC = "PBC images (Acevedo et al. 2020, Data in Brief 30:105474)"
_BCCD = "BCCD dataset (Shenggan)"

CATALOG: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "bloodmnist",
            "bloodmnist/bloodmnist.npz",
            "classification",
            (28, 28),
            "CC BY 4.0",
            f"MedMNIST v2 (Yang et al. 2023); {_PBC}",
            "BloodMNIST 28 px, 8 classes, official split",
            url="https://zenodo.org/records/10519652/files/bloodmnist.npz?download=1",
            md5="7053d0359d879ad8a5505303e11de1dc",
        ),
        DatasetInfo(
            "pbc128",
            "pbc128",
            "classification",
            (64, 64),
            "CC BY 4.0",
            _PBC,
            "PBC images at 128 px in the official BloodMNIST split, 8 classes",
        ),
        DatasetInfo(
            "bccd4",
            "bccd/BCCD_cropped",
            "classification",
            (64, 64),
            "MIT",
            _BCCD,
            "BCCD WBC crops, 4 classes (basophil dropped), split by smear",
        ),
        DatasetInfo(
            "bccd2",
            "bccd/BCCD_cropped",
            "classification",
            (64, 64),
            "MIT",
            _BCCD,
            "BCCD WBC crops, mononuclear vs polynuclear, split by smear",
        ),
        DatasetInfo(
            "wbcseg",
            "wbc_seg/dataset1",
            "segmentation",
            (128, 128),
            "GPL-3.0 repository (Zheng et al. 2018)",
            "Zheng et al. 2018, Micron 107:55-71; images by Jiangxi Tecom Science Corp.",
            "WBC / nucleus masks of single-cell images (Zheng et al. 2018)",
        ),
        DatasetInfo(
            "sigtuple",
            "sigtuple/Train_data",
            "segmentation",
            (128, 128),
            "no license stated; evaluation only",
            "SigTuple AI challenge data",
            "SigTuple WBC patches with WBC masks (128 px)",
        ),
        DatasetInfo(
            "seg",
            "",
            "segmentation",
            (128, 128),
            "wbcseg: GPL-3.0 repository (Zheng et al. 2018); sigtuple: no license stated, evaluation only",
            "Zheng et al. 2018; SigTuple AI challenge data",
            "wbcseg and sigtuple, each split on its own, concatenated",
        ),
        DatasetInfo(
            "bccd_smear",
            "bccd/BCCD",
            "segmentation",
            (128, 160),
            "MIT",
            _BCCD,
            "BCCD smears with filled WBC boxes as targets (the dataset's own split)",
        ),
        DatasetInfo(
            "smartphone_pig",
            "smartphone_pig",
            "detection",
            (256, 256),
            "CC0 1.0",
            "Alipo-on et al., smartphone-microscope WBC fields of Visayan warty pigs (CC0)",
            "Smartphone-through-eyepiece smear fields (416 px) with YOLO WBC boxes, its own split",
        ),
    )
}

#: The segmentation datasets (loaded by :mod:`edge_wbc.data.segdata`).
SEG_DATASETS = tuple(n for n, d in CATALOG.items() if d.task == "segmentation")
#: The named classification datasets (``edge-wbc data info`` lists these).
CLASSIFICATION_DATASETS = tuple(n for n, d in CATALOG.items() if d.task == "classification")
#: Datasets ``edge-wbc data fetch`` can download.
FETCHABLE = tuple(n for n, d in CATALOG.items() if d.url)

UNKNOWN_LICENSE = "unknown: not a dataset known to edge-wbc; check the data's own license"


def dataset_info(name: str) -> DatasetInfo:
    if name not in CATALOG:
        raise DataError(f"unknown dataset {name!r}: valid choices are {', '.join(CATALOG)}")
    return CATALOG[name]


#: Source names of the multi-source models (field classifier: ``pbc128,bccd,wbcseg``; field detector:
#: ``fields:bccd,smartphone_pig``) -> the catalog entry that holds their licence and credit.
SOURCE_ENTRIES = {"pbc128": "pbc128", "bccd": "bccd_smear", "wbcseg": "wbcseg", "sigtuple": "sigtuple",
                  "smartphone_pig": "smartphone_pig"}
FIELDS_PREFIX = "fields:"


def _parts(name: str) -> list[str] | None:
    """The sources of a multi-source name (``a,b`` or ``fields:a,b``), or None for a single name."""
    body = name[len(FIELDS_PREFIX):] if name.startswith(FIELDS_PREFIX) else name
    if body == name and "," not in name:
        return None
    return [p.strip() for p in body.split(",") if p.strip()]


def dataset_license(name: str) -> str:
    """The license of a named dataset, or of each source of a multi-source one (a folder path or an
    unknown name: a note saying so)."""
    parts = _parts(name)
    if parts is not None:
        return "; ".join(f"{p}: {dataset_license(SOURCE_ENTRIES.get(p, p))}" for p in parts)
    return CATALOG[name].license if name in CATALOG else UNKNOWN_LICENSE


def dataset_credit(name: str) -> str:
    parts = _parts(name)
    if parts is not None:
        return "; ".join(c for c in dict.fromkeys(dataset_credit(SOURCE_ENTRIES.get(p, p)) for p in parts) if c)
    return CATALOG[name].credit if name in CATALOG else ""


def default_size(name: str, task: str, fallback: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) a ``task`` model trained on ``name`` gets by default; ``fallback`` for a folder
    path or a dataset of another task."""
    if name in CATALOG and CATALOG[name].task == task:
        return CATALOG[name].default_size
    return fallback if isinstance(fallback, tuple) else (fallback, fallback)
