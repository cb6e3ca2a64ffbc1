"""Rewrite a wheel without the members whose names match a pattern (RECORD updated), so
the GPU call's carried wheels fit the device tool's 64 MiB: bitsandbytes without the
CUDA/ROCm builds the GPU machine does not load, serifu without the shipped adapters.

    python bench/gpu/slim_wheel.py WHEEL OUT_DIR REGEX
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path


def slim(wheel: Path, out_dir: Path, drop: str) -> Path:
    pattern = re.compile(drop)
    out = out_dir / wheel.name
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if pattern.search(item.filename):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                kept = [
                    line
                    for line in data.decode().splitlines()
                    if not pattern.search(line.split(",", 1)[0])
                ]
                data = ("\n".join(kept) + "\n").encode()
            dst.writestr(item, data)
    tmp.replace(out)
    return out


if __name__ == "__main__":
    wheel, out_dir, drop = sys.argv[1:4]
    print(slim(Path(wheel), Path(out_dir), drop))
