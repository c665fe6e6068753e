"""The five-class cell sources: vocabulary, splits per source, label maps and their errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_wbc.data.cells import VOCAB, list_cells, parse_label_map, vocab_label
from edge_wbc.errors import DataError


def test_named_sources_splits_and_counts(data_root):
    it = list_cells(["pbc128", "bccd", "wbcseg"], data=data_root)
    src, sp = np.array(it.sources), np.array(it.splits)
    # PBC keeps its official split, less its three non-WBC classes
    assert ((src == "pbc128") & (sp == "test")).sum() == 2055
    assert it.dropped == {"pbc128/erythroblast": 1551, "pbc128/ig": 2892, "pbc128/platelet": 2348}
    # BCCD: test = the crops of the smears in test.txt, never a smear in two splits
    test_smears = set((data_root / "bccd/BCCD/ImageSets/Main/test.txt").read_text().split())
    b = src == "bccd"
    assert {g for g, s in zip(np.array(it.groups)[b], sp[b]) if s == "test"} <= test_smears
    by_split = {}
    for g, s in zip(np.array(it.groups)[b], sp[b]):
        by_split.setdefault(g, set()).add(s)
    assert all(len(v) == 1 for v in by_split.values())
    # wbc_seg: 300 cells, 1 neutrophil / 2 lymphocyte / ... codes, 70/10/20 stratified
    w = src == "wbcseg"
    assert w.sum() == 300 and (sp[w] == "test").sum() == 60
    ys = np.array(it.labels)[w]
    assert (ys == VOCAB.index("neutrophil")).sum() == 176 and (ys == VOCAB.index("basophil")).sum() == 1


def test_vocabulary_and_label_map_errors():
    assert vocab_label("Neutrophils", "x") == "neutrophil"
    assert vocab_label("ig", "x") is None
    with pytest.raises(DataError, match=r"class 'segmented' is not in the WBC vocabulary \(basophil, eosinophil.*"
                                        r"--label-map segmented=<class>"):
        vocab_label("segmented", "mysrc")
    assert vocab_label("segmented", "x", parse_label_map(["Segmented=neutrophil"])) == "neutrophil"
    with pytest.raises(DataError, match="'blast' is not a class; valid classes are basophil"):
        parse_label_map(["lymph=blast"])
    with pytest.raises(DataError, match="use OLD=NEW"):
        parse_label_map(["lymph"])
    with pytest.raises(DataError, match="unknown cell source 'nope'"):
        list_cells(["nope"])


def test_folder_tree_source_with_a_label_map(tmp_path, pbc_files):
    for cls, new in (("neutrophil", "segmented"), ("lymphocyte", "lymphocyte")):
        d = tmp_path / "lab" / new
        d.mkdir(parents=True)
        for f in pbc_files[cls]:
            shutil.copy(f, d / f.name)
    with pytest.raises(DataError, match="class 'segmented' is not in the WBC vocabulary"):
        list_cells([str(tmp_path / "lab")])
    it = list_cells([str(tmp_path / "lab")], label_map={"segmented": "neutrophil"})
    assert sorted(set(it.sources)) == ["lab"] and len(it) == 6
    assert sorted(VOCAB[y] for y in it.labels) == ["lymphocyte"] * 3 + ["neutrophil"] * 3
    assert set(it.splits) <= {"train", "val", "test"}
