#!/usr/bin/env python3
"""Write crates/ntlb-data/tests/fixtures/pyrandom.json: CPython's own outputs of the `random`
calls the reference's few-shot draw makes, for ntlb's reimplementation to match bit for bit
(crates/ntlb-data/tests/pyrandom.rs).

- `bits`: per seed (small, 0, 2^32 - 1, 2^32, >= 2^32, >= 2^63, negative), eight
  getrandbits(32), then getrandbits(k) for k from 1 to 64 and two random().
- `randbelow`: per seed, _randbelow(n) for n around powers of two, in one stream.
- `sample`: sample(range(n), k) from a fresh seed for k from 1 to 24 and a few larger, each with n
  at k, at the last n of the pool path (CPython's setsize), one past it (the set path), and far
  past it; `pool` says which path CPython took (n <= setsize).
- `stream`: per-class 1-shot draws continuing one stream, as the reference draws them.
- `draws`: Dassl's generate_fewshot_dataset (its algorithm, copied below) over a fake split
  list with uneven classes met in unsorted first-appearance order, train with K then val with
  min(K, 4) on the same stream, for several K and seeds.

Run: python3 scripts/make_pyrandom_vectors.py  (any CPython 3.6+; written with 3.11)."""
import json
import math
import os
import random
import sys
from collections import defaultdict

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "ntlb-data", "tests", "fixtures", "pyrandom.json")

SEEDS = [1, 2, 3, 0, 42, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**40 + 5, 2**63 + 12345, 2**64 - 1, -7]


def setsize(k):
    s = 21
    if k > 5:
        s += 4 ** math.ceil(math.log(k * 3, 4))
    return s


def bits():
    out = []
    for s in SEEDS:
        r = random.Random(s)
        u32 = [r.getrandbits(32) for _ in range(8)]
        ks = [[k, r.getrandbits(k)] for k in range(1, 65)]
        out.append({"seed": s, "u32": u32, "getrandbits": ks, "random": [r.random(), r.random()]})
    return out


def randbelow():
    ns = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**32 + 1, 3 * 2**40 + 7, 2**63 + 1]
    out = []
    for s in [1, 2**32 + 3]:
        r = random.Random(s)
        out.append({"seed": s, "calls": [[n, r._randbelow(n)] for n in ns for _ in range(3)]})
    return out


def sample():
    out = []
    ks = list(range(1, 25)) + [30, 64, 85, 86]
    for s in [1, 2, 2**32 + 9]:
        for k in ks:
            t = setsize(k)
            for n in sorted({k, t, t + 1, 3 * t + 5}):
                if n < k:
                    continue
                r = random.Random(s)
                got = r.sample(range(n), k)
                out.append({"seed": s, "n": n, "k": k, "pool": n <= t, "indices": got, "next": r.getrandbits(32)})
    return out


def stream():
    r = random.Random(1)
    sizes = [5, 30, 7, 1, 22, 21, 86, 2]
    return {"seed": 1, "sizes": sizes, "picks": [r.sample(range(n), 1)[0] for n in sizes]}


# Dassl's DatasetBase.split_dataset_by_label and generate_fewshot_dataset (repeat=False), as
# the reference runs them.
def split_dataset_by_label(data_source):
    output = defaultdict(list)
    for item in data_source:
        output[item[1]].append(item)
    return output


def generate_fewshot_dataset(data_source, num_shots):
    if num_shots < 1:
        return data_source
    dataset = []
    for label, items in split_dataset_by_label(data_source).items():
        if len(items) >= num_shots:
            sampled = random.sample(items, num_shots)
        else:
            sampled = items
        dataset.extend(sampled)
    return dataset


def fake_split():
    # Classes met in the order 3, 0, 5, 1, 4, 2; sizes 1, 2, 4, 17, 30, 90 (pool and set paths
    # at 16 shots, fewer than K for the small ones); entries of a class interleaved with others.
    sizes = {3: 17, 0: 2, 5: 90, 1: 1, 4: 30, 2: 4}
    names = {c: "class_%d" % c for c in sizes}
    left = dict(sizes)
    train = []
    order = [3, 0, 5, 1, 4, 2]
    i = 0
    while any(left.values()):
        c = order[i % len(order)]
        i += 1
        if left[c]:
            k = sizes[c] - left[c]
            train.append(["%s/img_%03d.jpg" % (names[c], k), c, names[c]])
            left[c] -= 1
            if c in (5, 4) and left[c]:
                k = sizes[c] - left[c]
                train.append(["%s/img_%03d.jpg" % (names[c], k), c, names[c]])
                left[c] -= 1
    val = []
    for c, n in [(2, 3), (5, 12), (0, 1), (3, 6), (1, 2), (4, 25)]:
        val += [["%s/val_%03d.jpg" % (names[c], k), c, names[c]] for k in range(n)]
    return {"train": train, "val": val, "test": []}


def draws(split):
    out = []
    for s in [1, 2, 3, 2**32 + 1]:
        for k in [1, 2, 4, 8, 16, 17, 20, 30]:
            random.seed(s)
            train = generate_fewshot_dataset(split["train"], k)
            val = generate_fewshot_dataset(split["val"], min(k, 4))
            out.append({"seed": s, "shots": k, "train": [x[0] for x in train], "val": [x[0] for x in val]})
    return out


def main():
    split = fake_split()
    doc = {
        "python": sys.version.split()[0],
        "bits": bits(),
        "randbelow": randbelow(),
        "sample": sample(),
        "stream": stream(),
        "split": split,
        "draws": draws(split),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
