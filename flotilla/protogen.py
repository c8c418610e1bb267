"""Generate the checked-in gRPC stubs in ``flotilla/v1`` from ``proto/`` (``make proto``).

The stubs are committed so services import them without a build step; ``tests/unit/test_protogen.py``
regenerates into a temporary directory and fails when the committed ones are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "flotilla" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc for every proto file, writing ``flotilla/v1/*_pb2*.py(i)`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_DIR)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    return sorted((out_dir / "flotilla" / "v1").glob("*_pb2*"))


def main() -> int:
    written = generate(ROOT)
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
