"""Data: the dataset catalog, where data is found, loaders, fetch and near-duplicate checks.

``load_dataset(name, spec)`` loads any dataset of :data:`CATALOG` (or a folder path) preprocessed
to a ModelSpec; ``data_root()`` says where data is found (``--data``, ``$EDGE_WBC_DATA``, the cache).
"""

from .catalog import CATALOG, DatasetInfo, dataset_credit, dataset_info, dataset_license
from .containers import SPLITS, Dataset, Split
from .fetch import fetch, md5sum
from .loaders import (
    BLOODMNIST_LABELS,
    describe,
    iter_image_files,
    iter_inputs,
    load_bccd,
    load_bloodmnist,
    load_dataset,
    load_folder_tree,
    stratified_kfold,
    stratified_split,
)
from .roots import ENV_VAR, cache_dir, data_root, data_sources

__all__ = [
    "CATALOG", "DatasetInfo", "dataset_info", "dataset_license", "dataset_credit", "Dataset", "Split", "SPLITS",
    "data_root", "data_sources", "cache_dir", "ENV_VAR", "load_dataset", "load_bloodmnist", "load_folder_tree",
    "load_bccd", "fetch", "md5sum", "stratified_split", "stratified_kfold",
    "iter_inputs", "iter_image_files", "describe",
    "BLOODMNIST_LABELS",
]
