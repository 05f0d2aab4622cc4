"""Adapters on demand: where `adapter_store` keeps them, and the size-capped LRU cache of the loaded ones.

Pure bookkeeping, no engine: `serving/adapters.py` fetches, validates and loads; this module says which
source a name maps to and which loaded adapters must go when a new one does not fit in `adapter_cache_bytes`.
"""

from __future__ import annotations

import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from serving import s3
from serving.sources import SourceKind, is_s3_uri

HUB_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class AdapterStore:
    """`adapter_store`: adapter `name` lives in the folder (S3 prefix, Hub repo) `{uri}/{name}`."""

    uri: str
    kind: SourceKind

    @classmethod
    def parse(cls, value: str) -> AdapterStore:
        value = value.strip()
        if is_s3_uri(value):
            return cls(str(s3.S3Uri.parse(value)).rstrip("/"), SourceKind.S3)
        value = value.rstrip("/")
        folder = Path(value).expanduser()
        # An existing folder or anything spelt as a path is local; a bare name (no '/') is a Hub org.
        if folder.is_dir() or value.startswith((".", "/", "~")) or not HUB_ORG.match(value):
            if not folder.is_dir():
                raise ValueError(f"adapter_store: folder {value} does not exist")
            return cls(str(folder.resolve()), SourceKind.LOCAL)
        return cls(value, SourceKind.HUB)

    def source_for(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class CacheEntry:
    folder: str
    size: int
    name: str | None  # None: a folder left by an earlier run, not loaded in the engine


class AdapterCache:
    """Adapters loaded from the store, least recently used first, within `capacity` bytes.

    Keyed by local folder, so a download left by an earlier run counts against the cap (and goes first)
    until a request for its adapter adopts it.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._folders: dict[str, str] = {}  # adapter name -> folder

    @property
    def used(self) -> int:
        return sum(entry.size for entry in self._entries.values())

    def names(self) -> list[str]:
        """Loaded adapters, least recently used first."""
        return [entry.name for entry in self._entries.values() if entry.name is not None]

    def adopt_leftovers(self, root: Path) -> list[CacheEntry]:
        """Count the downloads under `root` (`<kind>/<folder>`) from earlier runs, oldest first; returns
        what no longer fits. Half-finished downloads are deleted."""
        found: list[tuple[float, Path]] = []
        for folder in root.glob("*/*"):
            if folder.name.startswith(".partial-"):
                shutil.rmtree(folder, ignore_errors=True)
            elif folder.is_dir():
                found.append((folder.stat().st_mtime, folder))
        evicted: list[CacheEntry] = []
        for _, folder in sorted(found):
            evicted += self.add(str(folder), folder_bytes(folder), None)
        return evicted

    def add(self, folder: str, size: int, name: str | None) -> list[CacheEntry]:
        """Record `folder` as the most recently used; return the entries that must go to make room.

        Raises ValueError when `size` alone exceeds the capacity.
        """
        if size > self.capacity:
            raise ValueError(f"{size} bytes exceed the adapter cache's {self.capacity}")
        self._drop(folder)
        if name is not None:
            self._drop(self._folders.get(name))
            self._folders[name] = folder
        self._entries[folder] = CacheEntry(folder, size, name)
        evicted: list[CacheEntry] = []
        while self.used > self.capacity:
            _, oldest = self._entries.popitem(last=False)
            if oldest.name is not None:
                self._folders.pop(oldest.name, None)
            evicted.append(oldest)
        return evicted

    def touch(self, name: str) -> None:
        folder = self._folders.get(name)
        if folder is not None:
            self._entries.move_to_end(folder)

    def pop(self, name: str) -> CacheEntry | None:
        """Forget adapter `name` (replaced by a registration, or refused by the engine)."""
        folder = self._folders.pop(name, None)
        return self._entries.pop(folder) if folder is not None else None

    def _drop(self, folder: str | None) -> None:
        entry = self._entries.pop(folder, None) if folder is not None else None
        if entry is not None and entry.name is not None and self._folders.get(entry.name) == folder:
            del self._folders[entry.name]


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
