"""Compares two specbatch outputs of the same greedy job (GPU and CPU) row by
row and prints how many completions are identical and, for the others, how
many leading characters agree. Fails if a row is missing on one side, the
error rows differ, or fewer than half the completions agree on their first
8 characters: the backends differ by rounding only (the CPU quantizes
activations to 8 bits), which can flip a near-tie late in a random model's
answer, but not from the start in most rows.

Usage: python3 tests/gpu/compare_outputs.py OUT_A OUT_B
"""

import glob
import sys

import pyarrow.parquet as pq


def rows(out):
    result = {}
    for f in sorted(glob.glob(f"{out}/data/**/*.parquet", recursive=True)):
        for r in pq.read_table(f).to_pylist():
            # Ids need not be unique (the quickstart has a duplicate on
            # purpose); the input position is.
            key = (r["input_file"], r["input_row"])
            if key in result:
                sys.exit(f"{out}: input row {key} written twice")
            result[key] = r
    return result


def main():
    a, b = rows(sys.argv[1]), rows(sys.argv[2])
    if a.keys() != b.keys():
        sys.exit(f"row ids differ: {sorted(a.keys() ^ b.keys())}")
    same = prefix_ok = errors = 0
    for k in sorted(a):
        ra, rb = a[k], b[k]
        if (ra.get("error_kind") is None) != (rb.get("error_kind") is None):
            sys.exit(f"row {k}: error on one side only: {ra.get('error_kind')} / {rb.get('error_kind')}")
        if ra.get("error_kind") is not None:
            errors += 1
            continue
        ta, tb = ra["output_text"] or "", rb["output_text"] or ""
        same += ta == tb
        common = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        prefix_ok += common >= 8
    n = len(a) - errors
    print(f"{len(a)} rows, {errors} error rows on both sides, {same} of {n} completions identical, "
          f"{prefix_ok} of {n} agree on their first 8 characters")
    if prefix_ok * 2 < n:
        sys.exit("the GPU and CPU outputs disagree from the start in most rows")


main()
