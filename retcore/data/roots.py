"""Paths stored relative to a root, so a database moves between machines.

The database keeps each image path relative to its dataset's root folder and
each heatmap path relative to the results folder. A copied database is pointed
at the new locations by rewriting only the roots (``retcore relocate``).
Paths written by older versions are absolute; every function here accepts both.

All functions are pure string/path arithmetic: nothing touches the disk except
:func:`root_folder`, which asks whether a root is a file (a CSV manifest).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["is_absolute", "rebase", "resolve_stored", "root_folder", "to_stored"]


def is_absolute(path: str) -> bool:
    """True for ``/x``, ``C:\\x``, ``C:/x`` or ``\\\\server\\x`` (either platform's absolute form)."""
    return PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()


def root_folder(root: str | os.PathLike[str]) -> Path:
    """The folder a dataset root stands for: the root itself, or a CSV manifest's folder."""
    path = Path(root)
    return path.parent if path.suffix.lower() == ".csv" or path.is_file() else path


def to_stored(path: str | os.PathLike[str] | None, base: str | os.PathLike[str]) -> str | None:
    """``path`` relative to the folder ``base`` (POSIX separators) when it lies inside it, else unchanged.

    A file outside ``base`` (a manifest may point anywhere) keeps its absolute path;
    ``None`` and ``''`` stay as they are.
    """
    if path is None or str(path) == "":
        return None if path is None else ""
    absolute = Path(os.path.abspath(path))
    folder = Path(os.path.abspath(base))
    try:
        return absolute.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def resolve_stored(path: str | None, base: str | os.PathLike[str] | None) -> str | None:
    """The usable path of a stored ``path``: absolute ones as they are, relative ones under ``base``."""
    if path is None or path == "" or is_absolute(path) or base is None:
        return path
    return str(Path(base) / path)


def rebase(path: str | None, old: str, new: str) -> str | None:
    """``path`` with the leading folder ``old`` replaced by ``new`` (whole components only).

    ``rebase('/data/eyes/x.jpg', '/data', '/mnt/d') == '/mnt/d/eyes/x.jpg'``; a path
    not under ``old`` (``/database/x``) is returned unchanged.
    """
    if path is None:
        return None
    old_clean = old.rstrip("/\\") or old
    if path == old_clean:
        return new.rstrip("/\\") or new
    for sep in ("/", "\\"):
        if path.startswith(old_clean + sep):
            return (new.rstrip("/\\") or new) + sep + path[len(old_clean) + 1:]
    return path
