"""Write crates/ntlb-data/tests/fixtures/parquet_label_widths{,_no_arrow_schema}.parquet: parquet
files whose label columns hold the same class indexes in every integer width pyarrow writes (as
Hugging Face `datasets` keeps a ClassLabel's width), and columns holding what a class index cannot
be. The second file lacks pyarrow's stored arrow schema, as files of other writers do: the widths
come from the parquet logical types alone.

Run with any pyarrow: python scripts/make_parquet_label_fixture.py
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DIR = Path(__file__).resolve().parent.parent / "crates/ntlb-data/tests/fixtures"

labels = [0, 1, 2, 1]
n = len(labels)
image = pa.StructArray.from_arrays(
    [
        pa.array([f"image {i}".encode() for i in range(n)], pa.binary()),
        pa.array([f"{i}.JPEG" for i in range(n)], pa.string()),
    ],
    names=["bytes", "path"],
)
columns = {"image": image}
for t in ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]:
    columns[t] = pa.array(labels, getattr(pa, t)())
# Row 1 of each: what no class list has.
columns["negative_int8"] = pa.array([0, -1, 2, 1], pa.int8())
columns["negative_int64"] = pa.array([0, -(2**63), 2, 1], pa.int64())
columns["huge_uint64"] = pa.array([0, 2**64 - 1, 2, 1], pa.uint64())
columns["huge_uint32"] = pa.array([0, 2**32 - 1, 2, 1], pa.uint32())
columns["null_uint8"] = pa.array([0, None, 2, 1], pa.uint8())
DIR.mkdir(parents=True, exist_ok=True)
for name, arrow_schema in [("parquet_label_widths", True), ("parquet_label_widths_no_arrow_schema", False)]:
    out = DIR / f"{name}.parquet"
    # Two rows per row group: the labels are read across groups.
    pq.write_table(pa.table(columns), out, row_group_size=2, store_schema=arrow_schema)
    print(out, out.stat().st_size, "bytes")
