from flotilla.migrate import available


def test_migration_versions_are_unique_and_contiguous() -> None:
    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1))
