"""Generate the Python gRPC code for `proto/paretopo/v1/*.proto` into `paretopo/v1/`.

    python scripts/gen_proto.py          # regenerate in place
    python scripts/gen_proto.py --check  # exit 1 when the committed code is stale

The protos live under `proto/` with package `paretopo.v1`, so protoc writes
`paretopo/v1/<name>_pb2.py` whose imports read `from paretopo.v1 import ...`: the generated
code is the sub-package `paretopo.v1` of the installed library.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("paretopo") / "v1"
INIT_TEXT = '"""Generated gRPC code for the `paretopo.v1` protobuf package. Do not edit."""\n'


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every proto file; return the generated files, relative to out_root."""
    from grpc_tools import protoc

    proto_dir = PROTO_ROOT / PACKAGE_DIR
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in proto_dir.glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PACKAGE_DIR}")
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the message above")
    (out_root / PACKAGE_DIR / "__init__.py").write_text(INIT_TEXT)
    out_dir = out_root / PACKAGE_DIR
    return sorted(p.relative_to(out_root) for p in out_dir.iterdir() if p.is_file())


def stale_files() -> list[str]:
    """Files whose committed content differs from a fresh generation (or that are missing/extra)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = set(generate(Path(tmp)))
        committed = {
            p.relative_to(ROOT) for p in (ROOT / PACKAGE_DIR).iterdir() if p.is_file()
        } if (ROOT / PACKAGE_DIR).exists() else set()
        differing = [
            str(p) for p in sorted(fresh & committed)
            if not filecmp.cmp(Path(tmp) / p, ROOT / p, shallow=False)
        ]
        return sorted(differing + [f"missing: {p}" for p in fresh - committed]
                      + [f"extra: {p}" for p in committed - fresh])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("generated gRPC code is stale; run `python scripts/gen_proto.py`:", *stale,
                  sep="\n  ", file=sys.stderr)
            return 1
        print("generated gRPC code is up to date")
        return 0
    for path in generate(ROOT):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
