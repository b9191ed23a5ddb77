"""Are two run directories the same output? For speed work on the post-processing path (issue 14): run
``benchmarks/cpu_postprocess.py --keep-run A`` before a change and ``--keep-run B`` after it, then

    python benchmarks/compare_rundirs.py A B

It compares run.json, metrics.json and every partial/ file byte for byte, samples.parquet as a table (same
columns, dtypes and values, row for row; the bytes may differ between writers of the same table) and the
report's HTML with the run directory's own path and its "generated <time> UTC" stamp taken out. Exit status 0 when they agree, 1 with the
first differences listed otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_STAMP = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def differences(a: Path, b: Path) -> list[str]:
    """What differs between run directories ``a`` and ``b`` (empty: the same output)."""
    import pandas as pd

    out: list[str] = []
    names = sorted({p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
                   | {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()})
    for name in names:
        pa, pb = a / name, b / name
        if not pa.exists() or not pb.exists():
            out.append(f"{name}: only in {a if pa.exists() else b}")
            continue
        if name == "samples.parquet":
            fa, fb = pd.read_parquet(pa), pd.read_parquet(pb)
            if list(fa.columns) != list(fb.columns):
                out.append(f"{name}: columns differ: {list(fa.columns)} vs {list(fb.columns)}")
                continue
            for col in fa.columns:
                if fa[col].dtype != fb[col].dtype:
                    out.append(f"{name}: column {col} dtype {fa[col].dtype} vs {fb[col].dtype}")
                elif not fa[col].equals(fb[col]):
                    first = int((fa[col].astype(object) != fb[col].astype(object)).to_numpy().argmax())
                    out.append(f"{name}: column {col} differs, first at row {first}: "
                               f"{fa[col].iloc[first]!r} vs {fb[col].iloc[first]!r}")
        elif name.endswith(".html"):
            ta = _STAMP.sub("generated <TIME> UTC", pa.read_text(encoding="utf-8").replace(str(a), "<RUN>"))
            tb = _STAMP.sub("generated <TIME> UTC", pb.read_text(encoding="utf-8").replace(str(b), "<RUN>"))
            if ta != tb:
                at = next(i for i, (x, y) in enumerate(zip(ta, tb)) if x != y) if ta[:len(tb)] != tb[:len(ta)] \
                    else min(len(ta), len(tb))
                out.append(f"{name}: differs at char {at}: {ta[max(0, at - 80):at + 80]!r} vs "
                           f"{tb[max(0, at - 80):at + 80]!r}")
        elif pa.read_bytes() != pb.read_bytes():
            out.append(f"{name}: bytes differ")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    diffs = differences(args.a, args.b)
    for d in diffs[:40]:
        print(d)
    print(f"{len(diffs)} difference(s)" if diffs else "identical", file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
