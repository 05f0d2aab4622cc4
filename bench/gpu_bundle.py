"""Re-split the GPU bundle (build-bundle's part*.tar) into pieces that fit beside this working tree.

A `run` call carries at most 64 MiB, the working tree included; build-bundle's parts are up to 60 MiB and the
tree (finetune/adapters among it, ViGGO's and NER's, and bench/results) is ~37 MiB, so no part fits beside it.
This packs the parts' files into pieces of at most --max-mb, a file larger than that in chunks (`NAME.chunkNN`;
vLLM's largest library is ~54 MB), and writes `ib.py`, install-bundle that knows the piece count, joins the chunks
once every piece is there, and installs into private paths (/tmp/gb-bench, /tmp/site-bench: the other engineers'
/tmp/gpu-bundle and /tmp/site on a shared machine stay untouched).

    python -m bench.gpu_bundle .gpu-bundle          # -> .gpu-bundle/piece1.tar ... + .gpu-bundle/ib.py
    # on the host, one piece per call:  python3 .gpu-bundle/ib.py .gpu-bundle/pieceK.tar
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
from pathlib import Path

CHUNK = ".chunk"

# ib.py's join, also run by tests/test_bench.py (on its own stage folder) to check that pieces give back every file.
JOIN = f"""
def join_chunks(stage):
    for first in sorted(stage.rglob("*{CHUNK}00")):
        name = first.name[: -len("{CHUNK}00")]
        chunks = sorted(first.parent.glob(name + "{CHUNK}[0-9][0-9]"))
        with open(first.parent / name, "wb") as whole:
            for chunk in chunks:
                whole.write(chunk.read_bytes())
                chunk.unlink()
"""

INSTALLER = """#!/usr/bin/env python3
# install-bundle, for pieces (python3 ib.py pieceK.tar ...; a leading piece count is accepted and ignored);
# private stage/site paths.
import io, lzma, subprocess, sys, tarfile
from pathlib import Path
STAGE, SITE = Path("/tmp/gb-bench"), Path("/tmp/site-bench")
WANT = __PIECES__
__JOIN__
STAGE.mkdir(exist_ok=True)
for part in (arg for arg in sys.argv[1:] if not arg.isdigit()):
    with tarfile.open(part) as tar:
        tar.extractall(STAGE, filter="data")
    (STAGE / f"have-{Path(part).name}").touch()
have = len(list(STAGE.glob("have-piece*.tar")))
if have < WANT:
    print(f"{have}/{WANT} pieces unpacked; send the rest"); sys.exit(0)
join_chunks(STAGE)
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
    p.add_argument("--max-mb", type=float, default=22.0)  # + the ~37 MiB tree (and growing results) < 64 MiB
    args = p.parse_args()
    limit = int(args.max_mb * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        for part in sorted(args.bundle.glob("part*.tar")):
            with tarfile.open(part) as tar:
                tar.extractall(tmp, filter="data")
        for d, _, fs in os.walk(tmp):
            for f in fs:
                split_file(Path(d) / f, limit)
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
    (args.bundle / "ib.py").write_text(installer(len(pieces)))
    print(f"{len(pieces)} pieces; on the host: python3 .gpu-bundle/ib.py .gpu-bundle/pieceK.tar")


def split_file(path: Path, limit: int) -> None:
    """Replace a file larger than `limit` bytes by chunks of at most `limit` (NAME.chunk00, NAME.chunk01, ...)."""
    if path.stat().st_size <= limit:
        return
    with path.open("rb") as whole:
        for i, chunk in enumerate(iter(lambda: whole.read(limit), b"")):
            path.with_name(f"{path.name}{CHUNK}{i:02d}").write_bytes(chunk)
    path.unlink()


def installer(pieces: int) -> str:
    return INSTALLER.replace("__PIECES__", str(pieces)).replace("__JOIN__", JOIN)


if __name__ == "__main__":
    main()
