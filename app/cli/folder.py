"""A folder against a collection: which of its files the server already holds (by path and
SHA-256), which are new or changed, and which the server holds but the folder no longer has.

Hashes are kept between runs in a state file (by size and modification time), so an unchanged
folder is not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.cli.client import CliError, Limits, Server, error_message
from app.cli.upload import LocalFile

HASH_BLOCK = 1 << 20  # bytes read at a time while hashing: large files never sit in memory


@dataclass
class Plan:
    """What to do to make a collection match a folder."""

    send: list[LocalFile] = field(default_factory=list)
    unchanged: int = 0
    gone: list[str] = field(default_factory=list)


def plan(server: Server, limits: Limits, folder: Path, collection: str) -> Plan:
    """Compare the folder's files (of types the server reads) with what the collection holds."""
    hashes = Hashes(state_file(server.url, collection, folder))
    local = {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if is_wanted(path, folder, limits)
    }
    held = held_files(server, collection)
    result = Plan(gone=sorted(set(held) - set(local)))
    for relative, path in local.items():
        if held.get(relative) == hashes.sha256(relative, path):
            result.unchanged += 1
        else:
            result.send.append(LocalFile(path, str(path), path.stat().st_size, synced=relative))
    hashes.save()
    return result


def is_wanted(path: Path, folder: Path, limits: Limits) -> bool:
    """A file in a folder is sent if the server reads its type and no part of its path is
    hidden (.git, .obsidian)."""
    hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
    return not hidden and path.suffix.lower() in limits.file_types and path.is_file()


def held_files(server: Server, collection: str) -> dict[str, str]:
    """The collection's synced files as {path: sha256}; none if the collection is new."""
    response = server.call("GET", f"/api/collections/{collection}/files")
    if response.status_code == 404:
        return {}
    if response.status_code >= 400:
        raise CliError(error_message(response))
    return {file["path"]: file["sha256"] for file in response.json()["data"]}


def state_file(url: str, collection: str, folder: Path) -> Path:
    """Where the hashes of this folder, synced to this collection on this server, are kept."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{url}\n{collection}\n{folder.resolve()}".encode()).hexdigest()[:24]
    return cache / "embedsearch" / "sync" / f"{key}.json"


class Hashes:
    """Files' SHA-256 by path, recomputed only when a file's size or modification time moved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.known: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.known = {}  # first run, or a damaged state file: hash everything again
        self.current: dict[str, Any] = {}

    def sha256(self, relative: str, path: Path) -> str | None:
        """The file's hash (None if it cannot be read: the upload will say why)."""
        stat = path.stat()
        known = self.known.get(relative)
        if known and known[:2] == [stat.st_size, stat.st_mtime_ns]:
            self.current[relative] = known
            return known[2]
        digest = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while block := f.read(HASH_BLOCK):
                    digest.update(block)
        except OSError:
            return None
        self.current[relative] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        return digest.hexdigest()

    def save(self) -> None:
        """Keep the hashes of the files seen in this pass."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.current))
        temporary.replace(self.path)
