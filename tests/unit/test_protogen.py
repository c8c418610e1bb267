"""The checked-in stubs in flotilla/v1 must be exactly what `make proto` generates from proto/."""

from pathlib import Path

from flotilla.protogen import ROOT, generate


def test_checked_in_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert fresh, "protoc generated nothing"
    for path in fresh:
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} missing: run `make proto`"
        assert committed.read_text() == path.read_text(), f"{committed.name} is stale: run `make proto`"
    committed_names = {p.name for p in (ROOT / "flotilla" / "v1").glob("*_pb2*")}
    assert committed_names == {p.name for p in fresh}, "stubs without a proto file: run `make proto`"
