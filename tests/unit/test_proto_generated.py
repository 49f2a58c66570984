"""The committed gRPC code must match what grpcio-tools generates from proto/ today."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_generated_package_imports() -> None:
    from paretopo.v1 import common_pb2

    vector = common_pb2.ObjectiveVector(values=[0.5, 0.25])
    assert list(common_pb2.ObjectiveVector.FromString(vector.SerializeToString()).values) == [
        0.5, 0.25,
    ]
