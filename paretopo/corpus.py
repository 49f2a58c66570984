"""Corpus input (JSONL with `id`, `title`, `text`) and the passage store an index keeps.

The store is one JSONL file plus an array of line offsets, memory-mapped: a server holds
no Python object per passage, so start-up and memory stay flat as the corpus grows.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PASSAGES_FILE = "passages.jsonl"
OFFSETS_FILE = "offsets.npy"
FIELDS = ("id", "title", "text")


class CorpusError(ValueError):
    """A corpus file that cannot be indexed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Passage:
    """One corpus passage."""

    id: str
    title: str
    text: str

    def contents(self) -> str:
        """The text that is indexed: title, newline, passage (as Search-R1's corpus)."""
        return f"{self.title}\n{self.text}"


def _parse_line(raw: bytes, where: str) -> Passage:
    try:
        obj = json.loads(raw)
    except UnicodeDecodeError as err:
        raise CorpusError(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise CorpusError(f"{where}: not valid JSON ({err.msg}, column {err.colno})") from err
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for field in FIELDS:
        if not isinstance(obj.get(field), str):
            raise CorpusError(f"{where}: field {field!r} is missing or not a string")
    if not obj["id"].strip():
        raise CorpusError(f"{where}: field 'id' is empty")
    if not (obj["title"].strip() or obj["text"].strip()):
        raise CorpusError(f"{where}: both 'title' and 'text' are empty")
    return Passage(obj["id"], obj["title"], obj["text"])


def read_corpus(path: Path, *, limit: int | None = None) -> Iterator[Passage]:
    """Yield the passages of a JSONL corpus, validating every line.

    Blank lines are skipped. Raises `CorpusError` naming the line number for a line that is
    not a JSON object with string fields `id`, `title`, `text`, or that repeats an id. A
    repeated id is found when the last passage has been read (before the generator ends), so
    that a 21 M-passage corpus costs 8 bytes an id to check instead of a set of strings.
    """
    ids = _IdHashes()
    count = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if limit is not None and count >= limit:
                break
            if not raw.strip():
                continue
            passage = _parse_line(raw, f"{path} line {lineno}")
            ids.add(passage.id)
            count += 1
            yield passage
    if ids.has_repeats():
        _raise_duplicate(path, limit)


class _IdHashes:
    """64-bit hashes of ids, in a growing numpy buffer (8 bytes an id)."""

    def __init__(self) -> None:
        self._buf = np.empty(1 << 16, dtype=np.uint64)
        self._n = 0

    def add(self, passage_id: str) -> None:
        if self._n == len(self._buf):
            self._buf = np.concatenate([self._buf, np.empty_like(self._buf)])
        digest = hashlib.blake2b(passage_id.encode(), digest_size=8).digest()
        self._buf[self._n] = int.from_bytes(digest, "little")
        self._n += 1

    def has_repeats(self) -> bool:
        hashes = np.sort(self._buf[: self._n])
        return bool(np.any(hashes[1:] == hashes[:-1]))


def _raise_duplicate(path: Path, limit: int | None) -> None:
    """Second pass, only when two hashes agree: name the line that repeats an id (a hash
    collision of two different ids passes)."""
    first_line: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if limit is not None and len(first_line) >= limit:
                break
            if not raw.strip():
                continue
            pid = json.loads(raw)["id"]
            if pid in first_line:
                raise CorpusError(f"{path} line {lineno}: duplicate id {pid!r} (first on "
                                  f"line {first_line[pid]})")
            first_line[pid] = lineno


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (recorded in the index manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_store(passages: list[Passage], out_dir: Path) -> None:
    """Write the passage store (JSONL + line offsets) into `out_dir`."""
    offsets = np.zeros(len(passages) + 1, dtype=np.int64)
    with open(out_dir / PASSAGES_FILE, "wb") as fh:
        for i, p in enumerate(passages):
            line = json.dumps({"id": p.id, "title": p.title, "text": p.text},
                              ensure_ascii=False).encode() + b"\n"
            fh.write(line)
            offsets[i + 1] = offsets[i] + len(line)
    np.save(out_dir / OFFSETS_FILE, offsets)


class PassageStore:
    """Read-only, memory-mapped access to passage `i` of an index directory."""

    def __init__(self, index_dir: Path) -> None:
        self._offsets = np.load(index_dir / OFFSETS_FILE, mmap_mode="r")
        self._file = open(index_dir / PASSAGES_FILE, "rb")  # noqa: SIM115 (lives with self)
        size = (index_dir / PASSAGES_FILE).stat().st_size
        if size != int(self._offsets[-1]):
            self._file.close()
            raise CorpusError(f"{index_dir / PASSAGES_FILE}: {size} bytes but the offsets in "
                              f"{OFFSETS_FILE} end at {int(self._offsets[-1])}; rebuild the index")
        # mmap of an empty file is an error; an empty store has nothing to map.
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def get(self, i: int) -> Passage:
        """Passage number `i` (0-based, in corpus order)."""
        if not 0 <= i < len(self) or self._map is None:
            raise IndexError(f"passage {i} out of range [0, {len(self)})")
        obj = json.loads(self._map[int(self._offsets[i]):int(self._offsets[i + 1])])
        return Passage(obj["id"], obj["title"], obj["text"])

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._file.close()
