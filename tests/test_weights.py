from dlcourse import weights


def test_every_manifest_entry_matches_its_file():
    entries = weights.manifest()
    assert entries, "weights/manifest.json lists no files"
    for name, entry in entries.items():
        path = weights.WEIGHTS_DIR / name
        assert path.is_file(), f"{name} is in the manifest but missing"
        assert weights.sha256(path) == entry["sha256"], f"{name} changed since it was recorded"
        for key in ("training_time_s", "device", "command"):
            assert key in entry, f"{name}: manifest entry lacks {key}"


def test_every_weight_file_is_in_the_manifest_and_loads_safely():
    for path in weights.WEIGHTS_DIR.glob("*.pt"):
        assert path.name in weights.manifest(), f"{path.name} has no manifest entry"
        sd = weights.load_state_dict(path.name)
        assert sd and all(k for k in sd)
