#!/usr/bin/env python3
"""Write crates/ntlb-data/tests/fixtures/coop_pickle/: cached few-shot draws as upstream CoOp
pickles them (`split_fewshot/shot_K-seed_S.pkl`, `pickle.dump({"train": ..., "val": ...}, f,
protocol=pickle.HIGHEST_PROTOCOL)`), for ntlb's Rust reader (crates/ntlb-data/tests/coop_pickle.rs).

The items are Dassl `Datum` objects. A stub class stands in for Dassl's, registered as module
`dassl.data.datasets.base_dataset` so the pickle names the class exactly as Dassl's would
(GLOBAL/STACK_GLOBAL `dassl.data.datasets.base_dataset Datum`, then NEWOBJ and BUILD of its
`_impath`, `_label`, `_domain`, `_classname`).

- pets.pkl (protocol 4): train and val of a split-file set, absolute paths of another machine;
- imagenet.pkl (protocol 5): ImageNet's (train only), paths in upstream CoOp's layout;
- other_class.pkl: the same lists holding tuples, not Datum objects;
- expected.json: what each Datum holds.

Run: python3 scripts/make_coop_pickle_fixtures.py"""
import json
import os
import pickle
import sys
import types

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "ntlb-data", "tests", "fixtures", "coop_pickle")

for name in ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]:
    sys.modules.setdefault(name, types.ModuleType(name))


class Datum:
    """Dassl's Datum, attributes as its __init__ sets them (no file check here)."""

    def __init__(self, impath="", label=0, domain=0, classname=""):
        self._impath = impath
        self._label = int(label)
        self._domain = int(domain)
        self._classname = classname


Datum.__module__ = "dassl.data.datasets.base_dataset"
Datum.__qualname__ = "Datum"
sys.modules["dassl.data.datasets.base_dataset"].Datum = Datum

PETS = "/home/alice/coop/data/oxford_pets/images"
pets_train = [(f"{PETS}/{c}_{k}.jpg", lab, c) for lab, c, ks in [(2, "beagle", [3, 1]), (0, "Abyssinian", [2, 5]), (1, "Bengal", [7])] for k in ks]
pets_val = [(f"{PETS}/{c}_{k}.jpg", lab, c) for lab, c, k in [(0, "Abyssinian", 9), (2, "beagle", 8)]]
IMNET = "/scratch/bob/imagenet/images/train"
imnet_train = [(f"{IMNET}/{w}/img{k}.JPEG", lab, name) for lab, (w, name, k) in enumerate([("n00000001", "red circle", 1), ("n00000002", "green square", 0), ("n00000003", "blue triangle", 1)])]


def datums(items):
    return [Datum(impath=p, label=lab, domain=0, classname=c) for p, lab, c in items]


def dump(name, obj, protocol):
    with open(os.path.join(OUT, name), "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def main():
    os.makedirs(OUT, exist_ok=True)
    dump("pets.pkl", {"train": datums(pets_train), "val": datums(pets_val)}, 4)
    dump("imagenet.pkl", {"train": datums(imnet_train)}, 5)
    dump("other_class.pkl", {"train": pets_train, "val": pets_val}, 4)
    expected = {
        "pets.pkl": {"train": pets_train, "val": pets_val},
        "imagenet.pkl": {"train": imnet_train},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
