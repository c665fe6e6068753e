"""Loading data: BloodMNIST npz, class-per-folder trees, BCCD crops (split by smear), and
:func:`load_dataset`, which loads any catalog dataset (the segmentation ones through
:mod:`edge_wbc.data.segdata`) or a folder path, preprocessed to a ModelSpec.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import DataError
from ..preprocess import is_image_file, preprocess
from ..spec import ModelSpec
from .catalog import CATALOG, CLASSIFICATION_DATASETS, SEG_DATASETS
from .containers import SPLITS, Dataset, Split, sample_indices
from .roots import ENV_VAR, data_root, dataset_root
from .segdata import load_seg_dataset

BLOODMNIST_LABELS = (
    "basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet",
)
BCCD_MONO = ("Lymphocyte", "Monocyte")
BCCD_POLY = ("Neutrophil", "Eosinophil")


# ---- BloodMNIST -------------------------------------------------------------------------------
def load_bloodmnist(path: str | Path) -> Dataset:
    path = Path(path)
    if path.is_dir():
        path = path / "bloodmnist" / "bloodmnist.npz" if (path / "bloodmnist").is_dir() else path / "bloodmnist.npz"
    if not path.is_file():
        raise DataError(
            f"{path}: BloodMNIST not found. Set {ENV_VAR} or --data to a folder holding "
            "bloodmnist/bloodmnist.npz, or run `edge-wbc data fetch bloodmnist`"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    with npz:
        need = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
        missing = [k for k in need if k not in npz.files]
        if missing:
            raise DataError(f"{path}: npz lacks keys {missing} (has {sorted(npz.files)})")
        splits = {}
        for s in SPLITS:
            try:
                x, y = npz[f"{s}_images"], npz[f"{s}_labels"]
            except ValueError as e:
                if "pickle" in str(e):  # object arrays need pickle: refused, never loaded
                    raise DataError(f"{path}: {s} arrays cannot be read without pickle ({e})") from None
                raise DataError(f"{path}: {s} arrays are corrupt ({e})") from None
            except Exception as e:  # noqa: BLE001 - BadZipFile (bad CRC), zlib.error, EOFError, OSError ...
                raise DataError(f"{path}: {s} arrays are corrupt ({type(e).__name__}: {e})") from None
            if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
                raise DataError(f"{path}: {s}_images must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
            if np.asarray(y).dtype.kind not in "iu":
                raise DataError(f"{path}: {s}_labels must be integers, got {np.asarray(y).dtype}")
            y = np.asarray(y).reshape(-1).astype(np.int64)
            if len(y) != len(x):
                raise DataError(f"{path}: {s}_labels has {len(y)} rows but {s}_images has {len(x)}")
            if len(y) and (y.min() < 0 or y.max() >= len(BLOODMNIST_LABELS)):
                raise DataError(f"{path}: {s}_labels outside 0..{len(BLOODMNIST_LABELS) - 1}")
            splits[s] = Split(x, y, [f"{s}[{i}]" for i in range(len(y))])
    return Dataset("bloodmnist", BLOODMNIST_LABELS, splits, source=str(path), license=CATALOG["bloodmnist"].license)


# ---- folder trees -----------------------------------------------------------------------------
def iter_image_files(root: Path, follow_symlinks: bool = True,
                     onerror: Callable[[Path, OSError], None] | None = None,
                     skip_dir: str | Path | None = None) -> Iterator[Path]:
    """Sorted, streaming walk for image files (by extension; hidden files such as ``._x.jpg`` are skipped).

    A directory reached twice (a symlink loop, or two links to one folder) is walked once. A
    symlink with an image extension whose target is missing or loops is yielded, so the caller
    reports it instead of it silently disappearing. A directory that cannot be listed is passed to
    ``onerror(path, error)``; without ``onerror`` it raises :class:`DataError` (never skipped silently).
    ``skip_dir``: a folder below ``root`` that is not walked (a command's own ``--out`` folder inside its
    inputs: a second run must not read its annotated copies back as inputs).
    """
    seen: set[tuple[int, int]] = set()
    skip: set[tuple[int, int]] = set()
    if skip_dir is not None:
        try:
            st = os.stat(skip_dir)
            skip.add((st.st_dev, st.st_ino))
        except OSError:  # not made yet: nothing of it to skip
            pass

    def failed(d: Path, e: OSError) -> None:
        if onerror is None:
            raise DataError(f"{d}: cannot list directory ({e.strerror or e})") from None
        onerror(d, e)

    def walk(d: Path) -> Iterator[Path]:
        try:
            st = d.stat()
        except OSError as e:
            failed(d, e)
            return
        key = (st.st_dev, st.st_ino)
        if key in seen or (key in skip and d != Path(root)):
            return
        seen.add(key)
        try:
            with os.scandir(d) as it:
                names = sorted(entry.name for entry in it)
        except OSError as e:
            failed(d, e)
            return
        for name in names:
            e = d / name
            try:
                if e.is_dir():
                    if follow_symlinks or not e.is_symlink():
                        yield from walk(e)
                elif name.startswith(".") or not is_image_file(e):
                    continue
                elif e.is_file() or (e.is_symlink() and not e.exists()):
                    yield e
            except OSError:  # an entry that cannot be examined: report it as a file, do not drop it
                if is_image_file(e) and not name.startswith("."):
                    yield e

    yield from walk(Path(root))


def _class_dirs(root: Path) -> list[Path]:
    try:
        return sorted([d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")], key=lambda p: p.name)
    except OSError as e:
        raise DataError(f"{root}: cannot list directory ({e.strerror or e})") from None


def folder_classes(root: str | Path) -> tuple[str, ...]:
    """The class names of a ``root/<class>/*`` tree, as :func:`load_folder_tree` orders them."""
    return tuple(d.name for d in _class_dirs(Path(root)))


def _decode_files(
    files: list[Path], spec: ModelSpec, progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Decode files into one array. Bad files raise ImageError naming the file."""
    out = np.empty((len(files), *spec.input_shape), np.uint8)
    for i, f in enumerate(files):
        out[i] = preprocess(f, spec)
        if progress:
            progress(1)
    return out, [str(f) for f in files]


def stratified_split(
    labels: np.ndarray, fractions=(0.7, 0.1, 0.2), seed: int = 0, groups: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Deterministic stratified split of indices; with ``groups`` whole groups move together."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    idx = {s: [] for s in SPLITS}
    if groups is None:
        groups = [str(i) for i in range(len(labels))]
    # one label per group: the most common label of its members
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    by_class: dict[int, list[str]] = {}
    for g in sorted(members):
        lab = int(np.bincount(labels[members[g]]).argmax())
        by_class.setdefault(lab, []).append(g)
    for lab in sorted(by_class):
        gs = by_class[lab]
        order = rng.permutation(len(gs))
        n = len(gs)
        n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
        n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
        for j, k in enumerate(order):
            s = "test" if j < n_test else "val" if j < n_test + n_val else "train"
            idx[s].extend(members[gs[k]])
    return {s: np.array(sorted(v), dtype=np.int64) for s, v in idx.items()}


def stratified_kfold(
    labels: np.ndarray, folds: int, fold: int, seed: int = 0, val_fraction: float = 0.15
) -> dict[str, np.ndarray]:
    """Fold ``fold`` of a seeded stratified ``folds``-fold split: test = that fold; val = a seeded,
    stratified ``val_fraction`` of the other folds (at least one image per class); train = the rest.

    Each class is shuffled once with ``seed`` and dealt round-robin into the folds, so over
    ``fold = 0 .. folds-1`` the test folds are disjoint, cover every image exactly once, and each holds
    ``n_c // folds`` or ``n_c // folds + 1`` images of every class ``c``.
    """
    labels = np.asarray(labels, np.int64)
    if folds < 2:
        raise DataError(f"invalid folds {folds}: must be >= 2")
    if not 0 <= fold < folds:
        raise DataError(f"invalid fold {fold}: valid choices are 0 to {folds - 1}")
    counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
    small = {c: int(n) for c, n in enumerate(counts) if 0 < n < folds + 1}
    if small:
        raise DataError(f"{folds}-fold cross-validation needs more than {folds} images per class; "
                        f"class index: count {small}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), np.int64)
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(labels == c)
        fold_of[members[rng.permutation(len(members))]] = np.arange(len(members)) % folds
    test = np.flatnonzero(fold_of == fold)
    rest = np.flatnonzero(fold_of != fold)
    vrng = np.random.default_rng([seed, fold])  # a val slice of its own per fold
    val = []
    for c in np.unique(labels[rest]):
        members = rest[labels[rest] == c]
        n_val = max(1, round(len(members) * val_fraction))
        val.extend(members[vrng.permutation(len(members))[:n_val]].tolist())
    val = np.array(sorted(val), np.int64)
    train = np.setdiff1d(rest, val)
    return {"train": train, "val": val, "test": test}


def _check_classes(name: str, labels: tuple[str, ...], splits: dict[str, Split]) -> None:
    train = splits.get("train")
    if train is None or len(train) == 0:  # a test-only tree (the embedded sample): nothing to compare with
        return
    present = set(np.unique(train.labels).tolist())
    for s, sp in splits.items():
        absent = sorted({labels[i] for i in np.unique(sp.labels).tolist()} - {labels[i] for i in present})
        if absent:
            raise DataError(f"{name}: classes {absent} occur in {s} but not in train")


def load_folder_tree(root: str | Path, spec: ModelSpec, seed: int = 0, fractions=(0.7, 0.1, 0.2),
                     labels: tuple[str, ...] | None = None, progress=None, only: str | None = None,
                     subsample: tuple[int, int] | None = None,
                     folds: int | None = None, fold: int | None = None) -> Dataset:
    """`root/{train,val,test}/<class>/*` (official split) or `root/<class>/*` (split here, stratified).

    With ``labels`` given (a named dataset), a tree with only some of the split folders (the embedded
    sample's ``test/``) loads those; the others are empty.

    With an official split, ``only`` decodes that split alone (the others are left empty) and
    ``subsample`` = (n, seed) decodes only :func:`~edge_wbc.data.containers.sample_indices` of it: the
    same images as sampling the decoded split, without decoding the rest (``edge-wbc bench --limit``).

    With ``folds`` (``root/<class>/*`` only), fold ``fold`` of a seeded stratified k-fold split is the
    test split (:func:`stratified_kfold`) instead of the default 70/10/20 split.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    present_splits = [s for s in SPLITS if (root / s).is_dir()]
    has_splits = len(present_splits) == len(SPLITS) or (labels is not None and "test" in present_splits)
    if folds is not None and present_splits:
        raise DataError(f"{root}: has its own {'/'.join(present_splits)} split; --folds needs a tree of <class>/ "
                        "folders only")
    if has_splits:
        names = labels or tuple(d.name for d in _class_dirs(root / "train"))
        splits = {}
        for s in SPLITS:
            if s not in present_splits:
                splits[s] = Split(np.empty((0, *spec.input_shape), np.uint8), np.empty(0, np.int64), [])
                continue
            present = [d.name for d in _class_dirs(root / s)]
            extra = sorted(set(present) - set(names))
            if extra:
                raise DataError(f"{root / s}: class folders {extra} are not in train's classes {list(names)}")
            files, ys = [], []
            for ci, c in enumerate(names):
                cf = list(iter_image_files(root / s / c)) if (root / s / c).is_dir() else []
                if not cf and s == "train":
                    raise DataError(f"{root / s / c}: class folder is empty (no image files)")
                files += cf
                ys += [ci] * len(cf)
            if only is not None and s != only:
                splits[s] = Split(np.zeros((0, *spec.input_shape), np.uint8), np.array(ys, np.int64)[:0], [])
                continue
            population = None
            if only is not None and subsample is not None and subsample[0] < len(ys):
                keep = sample_indices(np.array(ys), subsample[0], subsample[1])
                population, files, ys = len(ys), [files[i] for i in keep], [ys[i] for i in keep]
            x, ids = _decode_files(files, spec, progress)
            splits[s] = Split(x, np.array(ys, np.int64), ids, population=population)
    else:
        dirs = _class_dirs(root)
        if len(dirs) < 2:
            raise DataError(
                f"{root}: expected at least 2 class folders (or train/val/test), found {[d.name for d in dirs]}"
            )
        names = labels or tuple(d.name for d in dirs)
        files, ys = [], []
        for ci, c in enumerate(names):
            cf = list(iter_image_files(root / c))
            if not cf:
                raise DataError(f"{root / c}: class folder is empty (no image files)")
            files += cf
            ys += [ci] * len(cf)
        y = np.array(ys, np.int64)
        x, ids = _decode_files(files, spec, progress)
        if folds is None:
            parts = stratified_split(y, fractions, seed)
        else:
            parts = stratified_kfold(y, folds, fold or 0, seed)
        splits = {s: Split(x[i], y[i], [ids[j] for j in i]) for s, i in parts.items()}
    if only is None:
        _check_classes(str(root), tuple(names), splits)
    return Dataset(root.name, tuple(names), splits, source=str(root))


def bccd_parts(y: np.ndarray, groups: list[str], bccd_root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """BCCD's split by smear: test = the smears of ``BCCD/ImageSets/Main/test.txt``; the other smears
    split train/val (85/15), stratified by class, whole smears at a time."""
    y = np.asarray(y, np.int64)
    test_list = Path(bccd_root) / "BCCD" / "ImageSets" / "Main" / "test.txt"
    if not test_list.is_file():
        return stratified_split(y, (0.7, 0.15, 0.15), seed, groups)
    try:
        test_smears = {ln.strip() for ln in test_list.read_text(encoding="utf-8").split() if ln.strip()}
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{test_list}: cannot read the test smear list ({e})") from None
    is_test = np.array([g in test_smears for g in groups])
    rest = np.flatnonzero(~is_test)
    sub = stratified_split(y[rest], (0.85, 0.15, 0.0), seed, [groups[i] for i in rest])
    return {
        "train": rest[np.concatenate([sub["train"], sub["test"]])],
        "val": rest[sub["val"]],
        "test": np.flatnonzero(is_test),
    }


def load_bccd(root: str | Path, spec: ModelSpec, task: str = "bccd4", seed: int = 0, progress=None) -> Dataset:
    """BCCD WBC crops split by source smear.

    Test = crops of the smears listed in ``BCCD/ImageSets/Main/test.txt`` (the dataset's held-out
    smears, the same ones the smear counter is evaluated on); the remaining smears are split into
    train/val, stratified by class, whole smears at a time. ``bccd4`` drops Basophil (n=3);
    ``bccd2`` maps Lymphocyte/Monocyte to mononuclear and Neutrophil/Eosinophil to polynuclear.
    """
    root = Path(root)
    crops = root / "BCCD_cropped" if (root / "BCCD_cropped").is_dir() else root
    bccd_root = crops.parent
    if not crops.is_dir():
        raise DataError(f"{crops}: BCCD crops folder not found")
    if task == "bccd4":
        classes = {
            "Eosinophil": "eosinophil",
            "Lymphocyte": "lymphocyte",
            "Monocyte": "monocyte",
            "Neutrophil": "neutrophil",
        }
    elif task == "bccd2":
        classes = {c: "mononuclear" for c in BCCD_MONO} | {c: "polynuclear" for c in BCCD_POLY}
    else:
        raise DataError(f"unknown BCCD task {task!r}: valid choices are bccd4, bccd2")
    names = tuple(sorted(set(classes.values())))
    files, ys, groups = [], [], []
    for folder, lab in sorted(classes.items()):
        d = crops / folder
        if not d.is_dir():
            raise DataError(f"{d}: class folder missing")
        for f in iter_image_files(d):
            m = re.match(r"(BloodImage_\d+)", f.name)
            files.append(f)
            ys.append(names.index(lab))
            groups.append(m.group(1) if m else f.stem)
    y = np.array(ys, np.int64)
    parts = bccd_parts(y, groups, bccd_root, seed)
    x, ids = _decode_files(files, spec, progress)
    splits = {
        s: Split(x[np.sort(i)], y[np.sort(i)], [ids[j] for j in np.sort(i)], [groups[j] for j in np.sort(i)])
        for s, i in parts.items()
    }
    _check_classes(task, names, splits)
    return Dataset(task, names, splits, source=str(crops), license=CATALOG[task].license)


def load_dataset(
    name: str, spec: ModelSpec | None = None, data: str | Path | None = None, seed: int = 0, progress=None,
    only: str | None = None, subsample: tuple[int, int] | None = None,
    folds: int | None = None, fold: int | None = None,
) -> Dataset:
    """Load a named dataset (bloodmnist, pbc128, bccd4, bccd2) or a folder path, preprocessed to ``spec``.

    ``only`` / ``subsample``: a hint that only that split (a stratified sample of it) will be used; folder
    trees with an official split then decode just that (see :func:`load_folder_tree`), others load as usual.

    ``folds``/``fold``: k-fold cross-validation of a folder tree of ``<class>/`` folders (see
    :func:`load_folder_tree`); the named datasets have their own splits and refuse it.
    """
    if folds is not None:
        p = Path(name).expanduser()
        if name in CATALOG or not p.is_dir():
            raise DataError(f"--folds needs a folder of <class>/ image folders, not {name!r} "
                            f"(the named datasets {', '.join(CATALOG)} have their own splits)")
        if spec is None:
            raise DataError(f"dataset {name!r} needs a model spec (input size) to load images")
        return load_folder_tree(p, spec, seed=seed, progress=progress, folds=folds, fold=fold)
    if name in SEG_DATASETS:
        return load_seg_dataset(name, spec, data=data, seed=seed)
    if name == "bloodmnist":
        root, sample = dataset_root("bloodmnist", data)
        ds = load_bloodmnist(root / CATALOG["bloodmnist"].path)
        ds.sample = sample
        if spec is not None and (spec.input_height, spec.input_width) != (28, 28):
            from ..preprocess import preprocess_array

            for sp in ds.splits.values():
                sp.images = preprocess_array(sp.images, spec)
        return ds
    if spec is None:
        raise DataError(f"dataset {name!r} needs a model spec (input size) to load images")
    if name == "pbc128":
        root, sample = dataset_root("pbc128", data)
        p = root / CATALOG["pbc128"].path
        if not p.is_dir():
            raise DataError(f"{p}: pbc128 not found under the data root (set --data or {ENV_VAR})")
        ds = load_folder_tree(p, spec, seed=seed, labels=BLOODMNIST_LABELS, progress=progress, only=only,
                              subsample=subsample)
        ds.name, ds.license, ds.sample = "pbc128", CATALOG["pbc128"].license, sample
        return ds
    if name in ("bccd4", "bccd2"):
        p = data_root(data) / "bccd"
        if not p.is_dir():
            raise DataError(f"{p}: BCCD not found under the data root (set --data or {ENV_VAR})")
        return load_bccd(p, spec, name, seed=seed, progress=progress)
    p = Path(name).expanduser()
    if p.is_dir():
        return load_folder_tree(p, spec, seed=seed, progress=progress, only=only, subsample=subsample)
    raise DataError(
        f"unknown dataset {name!r}: valid choices are {', '.join(CLASSIFICATION_DATASETS)} or a folder path"
    )


def describe(root: Path) -> list[dict]:
    """What `edge-wbc data info` shows for one root (the named classification datasets)."""
    rows = []
    for name in CLASSIFICATION_DATASETS:
        p = root / CATALOG[name].path
        rows.append({"dataset": name, "path": str(p), "present": p.exists(), "description": CATALOG[name].description})
    return rows


def iter_inputs(paths: Iterable[str | Path], onerror: Callable[[Path, OSError], None] | None = None,
                skip_dir: str | Path | None = None) -> Iterator[Path]:
    """Expand files and directories (recursively, sorted, symlink-loop safe) into image paths.

    A generator all the way down: paths are produced one at a time, never collected, so a run over
    any number of files holds one directory listing at a time. Files named explicitly are yielded
    whatever their extension or state (a missing or bad file is reported by the caller, not dropped);
    ``onerror`` and ``skip_dir`` (the command's output folder, not walked when it lies inside an input
    folder; named as an input itself, it is read) as in :func:`iter_image_files`.
    """
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from iter_image_files(p, onerror=onerror, skip_dir=skip_dir)
        else:
            yield p
