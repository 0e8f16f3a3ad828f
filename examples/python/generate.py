"""Generates the Python client of auth.v1 and history.v1 from ../../proto.

    python generate.py            # writes ./generated (git-ignored)

grpcio-tools bundles protoc and the well-known types, so nothing else is
needed. Regenerate whenever proto/ changes.
"""

import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
OUT = HERE / "generated"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO)) for p in sorted(PROTO.glob("*/v1/*.proto"))]
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--python_out={OUT}",
            f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}",
            *files,
        ]
    )
    # Packages for `from history.v1 import history_pb2`.
    for directory in [OUT, *[p for p in OUT.rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()
    return code


if __name__ == "__main__":
    sys.exit(main())
