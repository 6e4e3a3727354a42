import subprocess
import sys


def test_import_rna_core_loads_no_framework():
    code = ("import sys, rna_core, rna_core.models, rna_core.backends, rna_core.apps.cli; "
            "rna_core.available_backends(); "
            "bad = [m for m in ('torch', 'mindspore') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_backend_is_named():
    import pytest

    import rna_core

    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        rna_core.get_backend("jax")


def test_missing_optional_dependency_is_named(tmp_path, monkeypatch):
    import pytest

    from rna_core import registry

    (tmp_path / "fake_backend.py").write_text("import not_a_real_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.BACKENDS, "fake", ("fake_backend:FakeBackend", "numpy"))
    with pytest.raises(ImportError, match="needs the missing package 'not_a_real_package_xyz'"):
        registry.get_backend("fake")


def test_every_source_package_is_in_the_wheel():
    """pyproject lists packages by hand (backends/ and models/ map into rna_core): a new sub-package must be listed."""
    from pathlib import Path

    import pytest

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = {"rna_core": "rna_core", **{k: v for k, v in config["package-dir"].items()}}
    found = set()
    for package, folder in dirs.items():
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root / folder).parts
            found.add(".".join((package, *parts)))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
