"""Build a hyperswitch-prism wheel that loads on glibc 2.34 .. 2.38, from the official one.

The official 0.6.0 wheel is tagged manylinux_2_39 because its native library
(payments/generated/libconnector_service_ffi.so) imports exactly two symbols of GLIBC_2.38:
`__isoc23_sscanf` and `__isoc23_strtol`, the C23 variants glibc 2.38 introduced. Their call
sites (the bundled TLS/crypto code) parse base-10 numbers, where the C23 variants behave
exactly like `__isoc99_sscanf` and `strtol`, which the library already imports too (at
GLIBC_2.7 and GLIBC_2.2.5). So this script:

1. checks the official wheel's sha256 against the pinned value (anything else: refused);
2. checks that the library needs nothing newer than GLIBC_2.34 besides those two imports
   (anything else: refused, nothing is guessed);
3. renames the two imports with patchelf (`--rename-dynamic-symbols`) and points their
   version entries (.gnu.version) at the versions the older symbols are already imported at;
4. unlinks the now-unused GLIBC_2.38 entry from libc's chain in .gnu.version_r (patchelf
   leaves it, and ld.so refuses a library that needs a version the system lacks);
5. checks the result again, and writes the wheel with the library replaced, valid RECORD
   hashes and the platform tag manylinux_2_34_x86_64 (build tag 1, so pip tells it apart).

Idempotent: when the rebuilt wheel is already in the output folder with the recorded
sha256, nothing is done. On glibc >= 2.39 (or not glibc) `--if-needed` does nothing: pip
installs the official wheel as is.

    python devtools/prism_wheel.py --if-needed --out var/wheels
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from elftools.elf.elffile import ELFFile

PACKAGE = "hyperswitch-prism"
VERSION = "0.6.0"
OFFICIAL_NAME = "hyperswitch_prism-0.6.0-py3-none-manylinux_2_39_x86_64.whl"
OFFICIAL_SHA256 = "c5bb1bfed3f60be8c3f9332640ffce358ae38c84050363e0001c2b722af598a0"
REBUILT_TAG = "manylinux_2_34_x86_64"
REBUILT_NAME = f"hyperswitch_prism-{VERSION}-1-py3-none-{REBUILT_TAG}.whl"
LIBRARY = "payments/generated/libconnector_service_ffi.so"
DIST_INFO = f"hyperswitch_prism-{VERSION}.dist-info"
# The two imports rewritten: new name, and the glibc version the new name is bound at.
RENAMES = {"__isoc23_sscanf": ("__isoc99_sscanf", "GLIBC_2.7"), "__isoc23_strtol": ("strtol", "GLIBC_2.2.5")}
DROPPED_VERSION = "GLIBC_2.38"
NEWEST_ALLOWED = (2, 34)
NEEDED_FROM = (2, 39)  # glibc from which the official wheel works as is


class WheelError(Exception):
    pass


def glibc_version() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    except (ValueError, OSError, AttributeError):
        return None
    return tuple(int(part) for part in version.split(".")[:2]) if name == "glibc" else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def glibc_tuple(version: str) -> tuple[int, ...] | None:
    if not version.startswith("GLIBC_"):
        return None
    try:
        return tuple(int(part) for part in version[len("GLIBC_"):].split("."))
    except ValueError:
        return None


# --- reading and editing the ELF dynamic symbol versions ---------------------------------


class Versions:
    """The dynamic symbols of a library with the version each import needs, and where the
    .gnu.version and .gnu.version_r sections sit in the file (ELF64 little-endian only)."""

    def __init__(self, path: Path):
        with path.open("rb") as handle:
            elf = ELFFile(handle)
            if elf.elfclass != 64 or not elf.little_endian:
                raise WheelError(f"{path.name} is not a 64-bit little-endian ELF library.")
            sections = {name: elf.get_section_by_name(name) for name in (".dynsym", ".dynstr", ".gnu.version", ".gnu.version_r")}
            if not all(sections.values()):
                raise WheelError(f"{path.name} lacks one of {', '.join(sections)}.")
            strings = sections[".dynstr"]
            self.versym_offset = sections[".gnu.version"]["sh_offset"]
            self.verneed_offset = sections[".gnu.version_r"]["sh_offset"]
            self.verneed_count = sections[".gnu.version_r"]["sh_info"]
            self.symbols = [symbol.name for symbol in sections[".dynsym"].iter_symbols()]
            handle.seek(self.versym_offset)
            self.versym = list(struct.unpack(f"<{len(self.symbols)}H", handle.read(2 * len(self.symbols))))
            handle.seek(self.verneed_offset)
            raw = handle.read(sections[".gnu.version_r"]["sh_size"])
            # file -> [(offset in section, name, index, hidden flag)]; offsets for editing.
            self.needs: dict[str, list[tuple[int, str, int]]] = {}
            self.file_offsets: dict[str, int] = {}
            at = 0
            for _ in range(self.verneed_count):
                _version, count, file_name, aux, next_need = struct.unpack_from("<HHIII", raw, at)
                file = strings.get_string(file_name)
                self.file_offsets[file] = at
                entries, aux_at = [], at + aux
                for _ in range(count):
                    _hash, _flags, index, name, next_aux = struct.unpack_from("<IHHII", raw, aux_at)
                    entries.append((aux_at, strings.get_string(name), index))
                    aux_at += next_aux
                self.needs[file] = entries
                at += next_need

    def version_name(self, index: int) -> str:
        for entries in self.needs.values():
            for _at, name, entry_index in entries:
                if entry_index == index:
                    return name
        return ""

    def index_of(self, version: str, file: str = "libc.so.6") -> int | None:
        return next((index for _at, name, index in self.needs.get(file, []) if name == version), None)

    def too_new(self) -> dict[str, str]:
        """Imports bound to a glibc version newer than NEWEST_ALLOWED: {symbol: version}."""
        found = {}
        for symbol, index in zip(self.symbols, self.versym):
            version = self.version_name(index & 0x7FFF)
            parsed = glibc_tuple(version)
            if parsed and parsed > NEWEST_ALLOWED:
                found[symbol] = version
        return found

    def needed_glibc(self) -> list[str]:
        return [name for entries in self.needs.values() for _at, name, _index in entries if glibc_tuple(name)]


def check_only_expected(versions: Versions) -> None:
    too_new = versions.too_new()
    expected = {name: DROPPED_VERSION for name in RENAMES}
    if too_new != expected:
        raise WheelError(
            f"{LIBRARY} needs {too_new or 'nothing newer than GLIBC_2.34'}; this script rewrites exactly "
            f"{expected} and refuses anything else (a new SDK release needs a new look)."
        )
    for old, (new, version) in RENAMES.items():
        if versions.index_of(version) is None or new not in versions.symbols:
            raise WheelError(f"{LIBRARY} does not already import {new}@{version}, which {old} would become.")


def set_versions(path: Path, versions: Versions) -> None:
    """Bind each renamed import at its older version and unlink DROPPED_VERSION from libc's
    chain of needed versions, in place."""
    targets = {new: versions.index_of(version) for new, version in RENAMES.values()}
    dropped = versions.index_of(DROPPED_VERSION)
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), 0) as data:
        for number, (symbol, index) in enumerate(zip(versions.symbols, versions.versym)):
            if symbol in targets and (index & 0x7FFF) == dropped:
                struct.pack_into("<H", data, versions.versym_offset + 2 * number, targets[symbol])
        chain = versions.needs["libc.so.6"]
        position = next(i for i, (_at, name, _index) in enumerate(chain) if name == DROPPED_VERSION)
        if position == 0 or len(chain) < 2:
            raise WheelError(f"{DROPPED_VERSION} is first in libc's version chain; not handled.")
        base = versions.verneed_offset
        removed_at, previous_at = chain[position][0], chain[position - 1][0]
        (removed_next,) = struct.unpack_from("<I", data, base + removed_at + 12)
        new_next = 0 if removed_next == 0 else (removed_at - previous_at) + removed_next
        struct.pack_into("<I", data, base + previous_at + 12, new_next)
        need_at = base + versions.file_offsets["libc.so.6"]
        (count,) = struct.unpack_from("<H", data, need_at + 2)
        struct.pack_into("<H", data, need_at + 2, count - 1)
        data.flush()


def patch_library(path: Path, patchelf: str) -> None:
    check_only_expected(Versions(path))
    with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as mapping:
        mapping.writelines(f"{old} {new}\n" for old, (new, _version) in RENAMES.items())
    try:
        subprocess.run([patchelf, "--rename-dynamic-symbols", mapping.name, str(path)], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise WheelError(f"patchelf failed: {error}") from error
    finally:
        os.unlink(mapping.name)
    set_versions(path, Versions(path))
    after = Versions(path)
    newest = [name for name in after.needed_glibc() if glibc_tuple(name) > NEWEST_ALLOWED]
    if after.too_new() or newest or any(old in after.symbols for old in RENAMES):
        raise WheelError(f"the patched library still needs {after.too_new() or newest}.")


# --- the wheel ---------------------------------------------------------------------------


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def rebuild_wheel(official: Path, library: Path, out: Path) -> None:
    """The official wheel with the library replaced, the new platform tag and a fresh RECORD.
    Entries keep the official timestamps, so the same input gives the same bytes."""
    record_name = f"{DIST_INFO}/RECORD"
    lines = []
    with zipfile.ZipFile(official) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename == record_name:
                record_info = info
                continue
            if info.filename == LIBRARY:
                data = library.read_bytes()
            elif info.filename == f"{DIST_INFO}/WHEEL":
                text = source.read(info).decode()
                if "manylinux_2_39_x86_64" not in text:
                    raise WheelError(f"unexpected WHEEL file:\n{text}")
                data = (text.replace("manylinux_2_39_x86_64", REBUILT_TAG).rstrip("\n") + "\nBuild: 1\n").encode()
            else:
                data = source.read(info)
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.external_attr = info.external_attr
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, data, compresslevel=6)
            lines.append(record_line(info.filename, data))
        lines.append(f"{record_name},,")
        entry = zipfile.ZipInfo(record_name, date_time=record_info.date_time)
        entry.external_attr = record_info.external_attr
        target.writestr(entry, "\n".join(lines) + "\n", compress_type=zipfile.ZIP_DEFLATED)


def fetch_official(cache: Path) -> Path:
    official = cache / "official" / OFFICIAL_NAME
    if not official.exists():
        official.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--platform", "manylinux_2_39_x86_64", "--python-version", "3.11",
            "-d", str(official.parent), f"{PACKAGE}=={VERSION}",
        ]
        if subprocess.run(command).returncode != 0 or not official.exists():
            raise WheelError(f"could not download {OFFICIAL_NAME} from PyPI.")
    actual = sha256_of(official)
    if actual != OFFICIAL_SHA256:
        raise WheelError(f"{official} has sha256 {actual}, not the pinned {OFFICIAL_SHA256}; refused.")
    return official


def build(cache: Path, patchelf: str) -> Path:
    """The rebuilt wheel in `cache`, made once (see the module docstring)."""
    out = cache / REBUILT_NAME
    stamp = out.with_name(out.name + ".sha256")
    if out.exists() and stamp.exists() and stamp.read_text().strip() == sha256_of(out):
        return out
    official = fetch_official(cache)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        library = Path(work) / "lib.so"
        with zipfile.ZipFile(official) as source, source.open(LIBRARY) as src, library.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        patch_library(library, patchelf)
        partial = Path(work) / REBUILT_NAME
        rebuild_wheel(official, library, partial)
        os.replace(partial, out)
    stamp.write_text(sha256_of(out) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="var/wheels", help="cache folder for the official and rebuilt wheels")
    parser.add_argument("--if-needed", action="store_true", help="do nothing on glibc >= 2.39 or without glibc")
    parser.add_argument("--patchelf", default=shutil.which("patchelf") or "patchelf")
    args = parser.parse_args(argv)
    glibc = glibc_version()
    if args.if_needed and (glibc is None or glibc >= NEEDED_FROM):
        return 0
    cache = Path(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        out = build(cache, args.patchelf)
    except (WheelError, OSError, zipfile.BadZipFile) as error:
        print(f"prism_wheel: cannot build a {PACKAGE} wheel for glibc {glibc}: {error}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
