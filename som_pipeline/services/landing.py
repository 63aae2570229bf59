"""The landing zone on disk: which files are waiting, and where they go once processed.

``$SOM_HOME/landing/<channel>/`` receives files (any name: spaces, unicode, dots are fine). Files whose
name starts with ``.`` or ends with ``.tmp``/``.part``/``.partial`` are still being written and are left
alone (writers should write under such a name and rename when done). After processing, a file moves to
``$SOM_HOME/archive/<channel>/<YYYY-MM-DD>/<sha256[:12]>__<safe name>``: the content hash prefix makes
archive names unique and ties them to ``ops.ingest_files``.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass(frozen=True)
class LandedFile:
    channel: str
    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


def list_landing(landing_dir: Path, channel: str) -> list[LandedFile]:
    """Ready files in a channel folder, oldest first (then by name): arrival order."""
    if not landing_dir.is_dir():
        return []
    out = []
    for entry in os.scandir(landing_dir):
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.startswith(".") or entry.name.lower().endswith(IN_PROGRESS_SUFFIXES):
            continue
        st = entry.stat(follow_symlinks=False)
        out.append(LandedFile(channel, Path(entry.path), st.st_size, st.st_mtime_ns))
    return sorted(out, key=lambda f: (f.mtime_ns, f.name))


def safe_name(name: str, max_len: int = 120) -> str:
    """A file-system-safe rendering of an arbitrary received name (ASCII, no separators, no '..')."""
    norm = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    norm = re.sub(r"[^A-Za-z0-9._-]+", "_", norm)
    norm = re.sub(r"\.{2,}", ".", norm).strip("._") or "file"
    return norm[:max_len]


def archive_path(archive_root: Path, channel: str, name: str, sha256: str, when: datetime) -> Path:
    return archive_root / channel / when.strftime("%Y-%m-%d") / f"{sha256[:12]}__{safe_name(name)}"


def move_to(path: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # same content already archived (same hash prefix and name): drop the copy
        path.unlink()
        return dest
    shutil.move(str(path), str(dest))
    return dest
