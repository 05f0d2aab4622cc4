"""Re-split the GPU bundle (build-bundle's part*.tar) into pieces that fit beside this working tree.

A `run` call carries at most 64 MiB, the working tree included; build-bundle's parts are up to 60 MiB and
the tree (finetune/adapters among it) is ~10 MiB, so part1 no longer fits. This packs the parts' files into
pieces of at most --max-mb (each file whole: the largest is ~54 MB) and writes `ib.py`, install-bundle with
a piece count instead of the manifest's part count and private paths (/tmp/gb-bench, /tmp/site-bench: the
other engineers' /tmp/gpu-bundle and /tmp/site on a shared machine stay untouched).

    python -m bench.gpu_bundle .gpu-bundle          # -> .gpu-bundle/piece1.tar ... + .gpu-bundle/ib.py
    # on the host, one piece per call:  python3 .gpu-bundle/ib.py N .gpu-bundle/pieceK.tar
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
from pathlib import Path

INSTALLER = """#!/usr/bin/env python3
# install-bundle, for pieces (python3 ib.py NUM_PIECES pieceK.tar ...); private stage/site paths.
import io, lzma, subprocess, sys, tarfile
from pathlib import Path
STAGE, SITE = Path("/tmp/gb-bench"), Path("/tmp/site-bench")
STAGE.mkdir(exist_ok=True)
want = int(sys.argv[1])
for part in sys.argv[2:]:
    with tarfile.open(part) as tar:
        tar.extractall(STAGE, filter="data")
    (STAGE / f"have-{Path(part).name}").touch()
have = len(list(STAGE.glob("have-piece*.tar")))
if have < want:
    print(f"{have}/{want} pieces unpacked; send the rest"); sys.exit(0)
SITE.mkdir(exist_ok=True)
with tarfile.open(fileobj=io.BytesIO(lzma.decompress((STAGE / "vllm-tree.tar.xz").read_bytes()))) as tar:
    tar.extractall(SITE, filter="tar")
for blob in (STAGE / "vllm-so").glob("*.xz"):
    dest = SITE / blob.name[: -len(".xz")].replace("__", "/")
    dest.write_bytes(lzma.decompress(blob.read_bytes()))
    dest.chmod(0o755)
wheels = sorted(str(w) for w in (STAGE / "wheels").glob("*.whl"))
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                "--upgrade", "--target", str(SITE), *wheels], check=True)
print(f"installed into {SITE}: export PYTHONPATH={SITE} VLLM_USE_FLASHINFER_SAMPLER=0")
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path)
    p.add_argument("--max-mb", type=float, default=54.0)
    args = p.parse_args()
    limit = int(args.max_mb * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        for part in sorted(args.bundle.glob("part*.tar")):
            with tarfile.open(part) as tar:
                tar.extractall(tmp, filter="data")
        files = sorted(
            (
                (os.path.getsize(os.path.join(d, f)), os.path.relpath(os.path.join(d, f), tmp))
                for d, _, fs in os.walk(tmp)
                for f in fs
            ),
            reverse=True,
        )
        pieces: list[list] = []
        for size, rel in files:  # first fit, largest first
            for piece in pieces:
                if piece[0] + size <= limit:
                    piece[0] += size
                    piece[1].append(rel)
                    break
            else:
                pieces.append([size, [rel]])
        for old in args.bundle.glob("piece*.tar"):
            old.unlink()
        for i, (size, rels) in enumerate(pieces, 1):
            with tarfile.open(args.bundle / f"piece{i}.tar", "w") as tar:
                for rel in rels:
                    tar.add(os.path.join(tmp, rel), arcname=rel)
            print(f"piece{i}.tar: {size / 1e6:.1f} MB")
    (args.bundle / "ib.py").write_text(INSTALLER)
    print(f"{len(pieces)} pieces; on the host: python3 .gpu-bundle/ib.py {len(pieces)} .gpu-bundle/pieceK.tar")


if __name__ == "__main__":
    main()
