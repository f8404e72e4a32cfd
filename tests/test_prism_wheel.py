"""devtools/prism_wheel.py: the installed Prism library needs nothing newer than this glibc,
and the rebuild refuses any library but the one it was written for."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from devtools import prism_wheel
from tests.fixtures.prism import prism_sdk_or_skip


def library_versions(too_new: dict[str, str]):
    """A stand-in for prism_wheel.Versions: the imports newer than GLIBC_2.34, and libc's
    versions the renamed imports are bound to."""
    versions = SimpleNamespace(symbols=["strtol", "__isoc99_sscanf", *too_new])
    versions.too_new = lambda: too_new
    versions.index_of = lambda version, file="libc.so.6": {"GLIBC_2.7": 16, "GLIBC_2.2.5": 2}.get(version)
    return versions


def test_the_installed_library_loads_on_this_glibc():
    prism_sdk_or_skip()
    from payments import generated  # noqa: I001 - after the skip: the SDK may be missing

    library = Path(generated.__file__).parent / "libconnector_service_ffi.so"
    needs = prism_wheel.Versions(library).needed_glibc()
    glibc = prism_wheel.glibc_version()
    assert all(prism_wheel.glibc_tuple(version)[:2] <= glibc for version in needs), needs


def test_exactly_the_two_c23_imports_are_rewritten():
    prism_wheel.check_only_expected(
        library_versions({"__isoc23_sscanf": "GLIBC_2.38", "__isoc23_strtol": "GLIBC_2.38"})
    )


@pytest.mark.parametrize(
    "too_new",
    [
        {"__isoc23_sscanf": "GLIBC_2.38", "__isoc23_strtol": "GLIBC_2.38", "pidfd_spawn": "GLIBC_2.39"},
        {"__isoc23_sscanf": "GLIBC_2.38", "__isoc23_strtol": "GLIBC_2.38", "strlcpy": "GLIBC_2.38"},
        {},
    ],
    ids=["a newer symbol", "another 2.38 symbol", "nothing to rewrite"],
)
def test_anything_else_is_refused(too_new):
    with pytest.raises(prism_wheel.WheelError, match="refuses anything else"):
        prism_wheel.check_only_expected(library_versions(too_new))


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    official = tmp_path / "official" / prism_wheel.OFFICIAL_NAME
    official.parent.mkdir()
    official.write_bytes(b"not the wheel")

    with pytest.raises(prism_wheel.WheelError, match="not the pinned"):
        prism_wheel.fetch_official(tmp_path)
