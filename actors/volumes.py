"""Volumes and container mounts, Docker's local driver: the pure part.

* ``VolumeStore``: named volumes under ``<data-root>/volumes/<name>/_data``
  with their metadata in ``<name>/meta.json`` (written atomically), loaded
  again when the daemon starts.  Removing renames the directory away first
  (one syscall, so a container being created cannot pick up a half-removed
  volume), then deletes it.
* The parsing and validation of a container's mounts as dockerd does it
  (moby ``volume/mounts/linux_parser.go``, ``daemon/volumes.go``):
  ``HostConfig.Binds`` ("/host:/ctr:ro", "name:/ctr", "/ctr"),
  ``HostConfig.Mounts`` (bind, volume, tmpfs), ``HostConfig.Tmpfs`` and
  ``Config.Volumes`` (the image's VOLUMEs too) -> mount points, in Docker's
  words when something is wrong.
* The OCI ``mounts`` of a container record, and the copy-up of an image
  directory into an empty volume (read from the image layers as overlayfs
  would merge them, written through descriptors that never follow a link).

Nothing here mounts anything: the runtime does the mounts, inside the
container's mount namespace.  Nothing here imports trio.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import re
import shutil
import stat
import time
from typing import Any, Iterable

DEFAULT_DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
NAME_RE = re.compile(r"^" + RESTRICTED_NAME_CHARS + r"+$")
DEFAULT_PROPAGATION = "rprivate"
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
RW_MODES = {"rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"}
LABEL_MODES = {"z", "Z"}
COPY_MODES = {"nocopy"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated", "default"}
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]


class VolumeError(Exception):
    """An error with the HTTP status dockerd answers it with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def now_rfc3339(ts: float | None = None) -> str:
    """Go's time.RFC3339 in local time ("2024-05-01T10:00:00Z" in UTC)."""
    t = time.localtime(ts if ts is not None else time.time())
    off = t.tm_gmtoff or 0
    if off == 0:
        tz = "Z"
    else:
        sign = "+" if off > 0 else "-"
        off = abs(off)
        tz = f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + tz


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise VolumeError(f'create {name}: "{name}" includes invalid characters for a local volume '
                          f'name, only "{RESTRICTED_NAME_CHARS}" are allowed. If you intended to '
                          "pass a host directory, use absolute path")


def anonymous_name() -> str:
    return os.urandom(32).hex()


# --------------------------------------------------------------------------- the store


class VolumeStore:
    """The local driver's volumes.  Not thread-safe: the daemon calls the
    index-changing methods from its trio thread only (the slow parts, rmtree
    and sizes, are separate functions safe to run in a worker thread)."""

    def __init__(self, data_root: str):
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.volumes: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if name.startswith(".") or not NAME_RE.match(name):
                if name.startswith(".trash-"):
                    shutil.rmtree(path, ignore_errors=True)  # a removal cut short
                continue
            try:
                with open(os.path.join(path, "meta.json")) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                if not os.path.isdir(os.path.join(path, "_data")):
                    continue
                meta = {"CreatedAt": now_rfc3339(os.stat(path).st_mtime), "Labels": None,
                        "Options": None}
            if not os.path.isdir(os.path.join(path, "_data")):
                continue
            self.volumes[name] = self._record(name, meta)

    def _record(self, name: str, meta: dict) -> dict:
        return {"CreatedAt": meta.get("CreatedAt") or now_rfc3339(), "Driver": DEFAULT_DRIVER,
                "Labels": meta.get("Labels") or None, "Mountpoint": self.mountpoint(name),
                "Name": name, "Options": meta.get("Options") or None, "Scope": "local"}

    def mountpoint(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def get(self, name: str) -> dict:
        vol = self.volumes.get(name)
        if vol is None:
            raise VolumeError(f"get {name}: no such volume", 404)
        return vol

    def create(self, name: str, *, labels: dict | None = None, options: dict | None = None,
               driver: str = "") -> tuple[dict, bool]:
        """(volume, created): an existing volume of that name is returned as is."""
        if driver not in ("", DEFAULT_DRIVER):
            raise VolumeError(f"create {name}: volume driver {driver!r} is not supported by "
                              "trioctr (only the local driver is)")
        if options:
            raise VolumeError(f"create {name}: volume options (DriverOpts) are not supported by "
                              f"trioctr's local driver yet: {', '.join(sorted(options))}")
        validate_name(name)
        if name in self.volumes:
            return self.volumes[name], False
        path = os.path.join(self.root, name)
        try:
            os.mkdir(path, 0o701)
        except FileExistsError:
            shutil.rmtree(path, ignore_errors=True)  # a leftover without metadata
            os.mkdir(path, 0o701)
        try:
            os.mkdir(os.path.join(path, "_data"), 0o755)
            meta = {"CreatedAt": now_rfc3339(), "Labels": dict(labels) if labels else None,
                    "Options": None}
            tmp = os.path.join(path, "meta.json.tmp")
            with open(tmp, "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, os.path.join(path, "meta.json"))
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        vol = self._record(name, meta)
        self.volumes[name] = vol
        return vol, True

    def detach(self, name: str) -> str:
        """Take a volume out of the store: its directory is renamed away at
        once; returns the path to delete (``delete_tree``)."""
        self.get(name)
        trash = os.path.join(self.root, f".trash-{name}-{os.urandom(4).hex()}")
        os.rename(os.path.join(self.root, name), trash)
        del self.volumes[name]
        return trash


def delete_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def tree_size(path: str) -> int:
    """Disk usage of a tree in bytes (allocated blocks, each inode once)."""
    # by descriptors (os.fwalk): a running container changes its volume
    # meanwhile, and a directory it swaps for a symlink must not be followed
    total, seen = 0, set()
    for _dirpath, dirnames, filenames, dfd in os.fwalk(path, follow_symlinks=False):
        for n in dirnames + filenames:
            try:
                st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512 if not stat.S_ISDIR(st.st_mode) else 0
    return total


# --------------------------------------------------------------------------- filters


VOLUME_FILTERS = {"dangling", "name", "label", "label!", "driver"}
PRUNE_FILTERS = {"label", "label!", "all"}


def _label_match(labels: dict | None, want: str) -> bool:
    labels = labels or {}
    k, eq, v = want.partition("=")
    return k in labels and (not eq or labels[k] == v)


def _truthy(v: str, key: str) -> bool:
    low = v.lower()
    if low in ("1", "true"):
        return True
    if low in ("0", "false"):
        return False
    raise VolumeError(f"invalid filter '{key}={v}'")


def volume_matches(vol: dict, filters: dict[str, list[str]], in_use: bool) -> bool:
    if "dangling" in filters:
        want = {_truthy(v, "dangling") for v in filters["dangling"]}
        if (not in_use) not in want:
            return False
    if "name" in filters and not any(v in vol["Name"] for v in filters["name"]):
        return False
    if "driver" in filters and not any(v in vol["Driver"] for v in filters["driver"]):
        return False
    if "label" in filters and not all(_label_match(vol.get("Labels"), w) for w in filters["label"]):
        return False
    if "label!" in filters and any(_label_match(vol.get("Labels"), w) for w in filters["label!"]):
        return False
    return True


# --------------------------------------------------------------------------- mount points


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _mount_config_error(kind: str, msg: str) -> VolumeError:
    return VolumeError(f'invalid mount config for type "{kind}": {msg}')


def valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "cons": 0}
    for o in mode.split(","):
        if o in RW_MODES:
            counts["rw"] += 1
        elif o in LABEL_MODES:
            counts["label"] += 1
        elif o in PROPAGATIONS:
            counts["prop"] += 1
        elif o in COPY_MODES:
            counts["copy"] += 1
        elif o in CONSISTENCY_MODES:
            counts["cons"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _check_target(kind: str, target: str) -> str:
    if not target:
        raise _mount_config_error(kind, "field Target must not be empty")
    if posixpath.normpath(target.replace("\\", "/")) == "/":
        raise _mount_config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _mount_config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    return posixpath.normpath(target)


def _point(kind: str, dest: str, *, source: str = "", name: str = "", rw: bool = True,
           mode: str = "", propagation: str = "", copy: bool = False, anonymous: bool = False,
           labels: dict | None = None, driver: str = "", extra: dict | None = None) -> dict:
    return {"Type": kind, "Source": source, "Destination": dest, "Name": name, "RW": rw,
            "Mode": mode, "Propagation": propagation, "Driver": driver, "_copy": copy,
            "_anonymous": anonymous, "_labels": labels, **(extra or {})}


def parse_bind(raw: str, volume_driver: str = "") -> dict:
    """One HostConfig.Binds entry (moby's ParseMountRaw for Linux)."""
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise VolumeError(_invalid_spec(raw))
    mode = ""
    if len(arr) == 1:
        source, target = "", arr[0]
    elif len(arr) == 2:
        if valid_mode(arr[1]):
            raise VolumeError(_invalid_spec(raw))  # "/foo:rw": a destination cannot have a mode
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise VolumeError(_invalid_spec(raw))
    if not valid_mode(mode):
        raise VolumeError(f"invalid mode: {mode}")
    kind = "bind" if source.startswith("/") else "volume"
    opts = mode.split(",") if mode else []
    rw = not any(o == "ro" or o.startswith("ro-") or o == "rro" for o in opts)
    if any(o in ("ro-force-recursive", "rro") for o in opts):
        if kind != "bind":
            raise VolumeError(f"mount mode {mode!r} requires a bind mount: {_invalid_spec(raw)}")
        raise VolumeError(f"mount mode {mode!r} (recursive read-only) is not supported by trioctr yet")
    try:
        dest = _check_target(kind, target)
    except VolumeError as exc:
        raise VolumeError(f"{_invalid_spec(raw)}: {exc.message}") from None
    prop = next((o for o in opts if o in PROPAGATIONS), "")
    if kind == "bind":
        return _point("bind", dest, source=posixpath.normpath(source), rw=rw, mode=mode,
                      propagation=prop or DEFAULT_PROPAGATION)
    if volume_driver not in ("", DEFAULT_DRIVER):
        raise VolumeError(f"volume driver {volume_driver!r} is not supported by trioctr "
                          "(only the local driver is)")
    anonymous = source == ""
    return _point("volume", dest, name=source or anonymous_name(), rw=rw,
                  mode=mode or "z", copy="nocopy" not in opts, anonymous=anonymous,
                  labels={ANONYMOUS_LABEL: ""} if anonymous else None, driver=DEFAULT_DRIVER)


def _tmpfs_data(topts: Any, read_only: bool) -> list[str]:
    out = ["ro"] if read_only else []
    if topts is None:
        return out
    if not isinstance(topts, dict):
        raise _mount_config_error("tmpfs", "TmpfsOptions must be an object")
    mode = topts.get("Mode") or 0
    size = topts.get("SizeBytes") or 0
    if not isinstance(mode, int) or isinstance(mode, bool) or not isinstance(size, int) or \
            isinstance(size, bool):
        raise _mount_config_error("tmpfs", "TmpfsOptions.Mode and SizeBytes must be numbers")
    if size < 0:
        raise _mount_config_error("tmpfs", f"invalid tmpfs size: {size}")
    if mode:
        out.append(f"mode={mode:o}")
    if size:
        for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                out.append(f"size={size // div}{suffix}")
                break
        else:
            out.append(f"size={size}")
    extra = []
    for o in topts.get("Options") or []:  # API 1.46 (e.g. ["exec"]); harmless before
        if isinstance(o, list):
            extra.append("=".join(str(x) for x in o))
    _check_tmpfs_options(extra)
    return out + extra


def parse_mount(m: Any, *, source_exists=os.path.lexists) -> dict:
    """One HostConfig.Mounts entry (moby's ValidateMountConfig + ParseMountSpec)."""
    if not isinstance(m, dict):
        raise VolumeError("json: cannot unmarshal into Go struct field HostConfig.Mounts of type mount.Mount")
    kind = m.get("Type") or ""
    target = m.get("Target") or ""
    source = m.get("Source") or ""
    ro = bool(m.get("ReadOnly"))
    bopts, vopts, topts = m.get("BindOptions"), m.get("VolumeOptions"), m.get("TmpfsOptions")
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("npipe", "cluster", "image"):
            raise _mount_config_error(kind, "mount type unknown")  # dockerd's Linux parser
        raise _mount_config_error(kind, "mount type unknown")
    dest = _check_target(kind, target)
    if m.get("Consistency") not in (None, "", "default", "consistent", "cached", "delegated"):
        raise _mount_config_error(kind, f"invalid consistency: {m.get('Consistency')}")
    if kind == "bind":
        if not source:
            raise _mount_config_error(kind, "field Source must not be empty")
        prop = ""
        non_recursive = False
        if bopts:
            if not isinstance(bopts, dict):
                raise _mount_config_error(kind, "BindOptions must be an object")
            prop = bopts.get("Propagation") or ""
            if prop and prop not in PROPAGATIONS:
                raise _mount_config_error(kind, f"invalid propagation mode: {prop}")
            non_recursive = bool(bopts.get("NonRecursive"))
            if bopts.get("ReadOnlyForceRecursive"):
                raise _mount_config_error(kind, "BindOptions.ReadOnlyForceRecursive is not supported by trioctr yet")
        must_exist = not (bopts or {}).get("CreateMountpoint")  # API 1.42's option: made at start
        if vopts is not None:
            raise _mount_config_error(kind, "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _mount_config_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        if must_exist and not source_exists(source):
            raise _mount_config_error(kind, f"bind source path does not exist: {source}")
        return _point("bind", dest, source=posixpath.normpath(source), rw=not ro,
                      propagation=prop or DEFAULT_PROPAGATION,
                      extra={"_non_recursive": non_recursive})
    if kind == "volume":
        if bopts is not None:
            raise _mount_config_error(kind, "field BindOptions must not be specified")
        if not source and ro:
            raise _mount_config_error(kind, "must not set ReadOnly mode when using anonymous volumes")
        copy = True
        labels: dict | None = None
        if vopts is not None:
            if not isinstance(vopts, dict):
                raise _mount_config_error(kind, "VolumeOptions must be an object")
            copy = not vopts.get("NoCopy")
            drv = (vopts.get("DriverConfig") or {})
            if not isinstance(drv, dict):
                raise _mount_config_error(kind, "VolumeOptions.DriverConfig must be an object")
            if drv.get("Name") not in (None, "", DEFAULT_DRIVER):
                raise VolumeError(f"volume driver {drv.get('Name')!r} is not supported by trioctr "
                                  "(only the local driver is)")
            if drv.get("Options"):
                raise VolumeError("volume options (VolumeOptions.DriverConfig.Options) are not "
                                  "supported by trioctr's local driver yet")
            if vopts.get("Subpath"):
                raise _mount_config_error(kind, "VolumeOptions.Subpath is not supported by trioctr yet")
            if vopts.get("Labels"):
                if not isinstance(vopts["Labels"], dict):
                    raise _mount_config_error(kind, "VolumeOptions.Labels must be an object")
                labels = dict(vopts["Labels"])
        anonymous = source == ""
        if anonymous:
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        return _point("volume", dest, name=source or anonymous_name(), rw=not ro, copy=copy,
                      anonymous=anonymous, labels=labels, driver=DEFAULT_DRIVER)
    if bopts is not None:
        raise _mount_config_error(kind, "field BindOptions must not be specified")
    if source:
        raise _mount_config_error(kind, "field Source must not be specified")
    if vopts is not None:
        raise _mount_config_error(kind, "field VolumeOptions must not be specified")
    return _point("tmpfs", dest, rw=not ro, extra={"_data": _tmpfs_data(topts, ro)})


def parse_tmpfs(tmpfs: Any) -> dict[str, list[str]]:
    """HostConfig.Tmpfs {"/run": "size=64m"} -> destination -> options."""
    out: dict[str, list[str]] = {}
    if not tmpfs:
        return out
    if not isinstance(tmpfs, dict) or not all(isinstance(v, str) for v in tmpfs.values()):
        raise VolumeError("json: cannot unmarshal into Go struct field HostConfig.Tmpfs of type map[string]string")
    for dest, data in tmpfs.items():
        if posixpath.normpath(dest) == "/" and dest.startswith("/"):
            raise VolumeError("invalid specification: destination can't be '/'")
        if not dest.startswith("/"):
            raise VolumeError(f"invalid mount path: '{dest}' mount path must be absolute")
        opts = [o for o in data.split(",") if o]
        _check_tmpfs_options(opts)
        out[posixpath.normpath(dest)] = opts
    return out


# mount options that would make a "tmpfs" entry something else than a new
# tmpfs (a bind of its source, a remount or a move of what is there)
TMPFS_FORBIDDEN = {"bind", "rbind", "remount", "move"}


def _check_tmpfs_options(opts: list[str]) -> None:
    for o in opts:
        if o.strip().lower() in TMPFS_FORBIDDEN:
            raise VolumeError(f"invalid tmpfs option {o!r}: a tmpfs mount cannot be a bind, a "
                              "remount or a move")


def plan_mounts(hc: dict, config_volumes: dict | None) -> list[dict]:
    """The mount points of a container from its HostConfig and Config.Volumes
    (the image's VOLUMEs merged in), validated as dockerd does.  Volumes are
    named, not created yet."""
    binds = hc.get("Binds") or []
    mounts = hc.get("Mounts") or []
    tmpfs = parse_tmpfs(hc.get("Tmpfs"))
    driver = hc.get("VolumeDriver") or ""
    if driver not in ("", DEFAULT_DRIVER):
        raise VolumeError(f"volume driver {driver!r} is not supported by trioctr (only the local "
                          "driver is)")
    points: list[dict] = []
    seen: set[str] = set()
    for raw in binds:
        mp = parse_bind(raw, driver)
        if mp["Destination"] in seen or mp["Destination"] in tmpfs:
            raise VolumeError(f"Duplicate mount point: {mp['Destination']}")
        seen.add(mp["Destination"])
        points.append(mp)
    for m in mounts:
        mp = parse_mount(m)
        if mp["Destination"] in seen:
            raise VolumeError(f"Duplicate mount point: {m.get('Target')}")
        seen.add(mp["Destination"])
        points.append(mp)
    for spec in sorted(config_volumes or {}):
        dest = posixpath.normpath(spec)
        if not spec.startswith("/"):
            raise VolumeError(f"invalid mount path: '{spec}' mount path must be absolute")
        if dest == "/":
            raise VolumeError("invalid specification: destination can't be '/'")
        if dest in seen or dest in tmpfs:
            continue
        seen.add(dest)
        points.append(_point("volume", dest, name=anonymous_name(), copy=True, anonymous=True,
                             labels={ANONYMOUS_LABEL: ""}, driver=DEFAULT_DRIVER))
    return points


def inspect_entry(mp: dict) -> dict:
    """A mount point as GET /containers/{id}/json shows it."""
    if mp["Type"] == "volume":
        return {"Type": "volume", "Name": mp["Name"], "Source": mp["Source"],
                "Destination": mp["Destination"], "Driver": mp.get("Driver") or DEFAULT_DRIVER,
                "Mode": mp["Mode"], "RW": mp["RW"], "Propagation": mp["Propagation"]}
    return {"Type": mp["Type"], "Source": mp["Source"], "Destination": mp["Destination"],
            "Mode": mp["Mode"], "RW": mp["RW"], "Propagation": mp["Propagation"]}


def volume_names(rec: dict) -> list[str]:
    return [m["Name"] for m in rec.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]


def named_sources(hc: dict) -> set[str]:
    """The volume names a container's HostConfig mentions by name."""
    out = set()
    for raw in hc.get("Binds") or []:
        src = raw.split(":", 1)[0] if ":" in raw else ""
        if src and not src.startswith("/"):
            out.add(src)
    for m in hc.get("Mounts") or []:
        if isinstance(m, dict) and m.get("Type") == "volume" and m.get("Source"):
            out.add(m["Source"])
    return out


# --------------------------------------------------------------------------- OCI mounts


def oci_mounts(rec: dict) -> list[dict]:
    """The OCI ``mounts`` entries for a container's binds, volumes and tmpfs
    (dockerd's oci_linux.go withMounts).  Missing sources of Binds are created
    as dockerd does at start (Mounts were checked at create)."""
    hc = rec.get("HostConfig") or {}
    by_dest: dict[str, dict] = {}
    for m in hc.get("Mounts") or []:
        if isinstance(m, dict) and m.get("Target"):
            by_dest[posixpath.normpath(m["Target"])] = m
    out: list[dict] = []
    for mp in rec.get("Mounts") or []:
        dest = mp["Destination"]
        if mp["Type"] == "tmpfs":
            spec = by_dest.get(dest) or {}
            data = _tmpfs_data(spec.get("TmpfsOptions"), bool(spec.get("ReadOnly")))
            out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                        "options": TMPFS_DEFAULTS + [DEFAULT_PROPAGATION] + data})
            continue
        src = mp["Source"]
        if mp["Type"] == "bind" and not os.path.lexists(src):
            spec = by_dest.get(dest)
            # a Binds entry (or a mount with CreateMountpoint): dockerd makes the directory
            if spec is None or (spec.get("BindOptions") or {}).get("CreateMountpoint"):
                os.makedirs(src, 0o755, exist_ok=True)
        spec = by_dest.get(dest) if mp["Type"] == "bind" else None
        non_recursive = bool(spec and (spec.get("BindOptions") or {}).get("NonRecursive"))
        opts = ["bind" if non_recursive else "rbind"]
        if not mp["RW"]:
            opts.append("ro")
        if mp.get("Propagation"):
            opts.append(mp["Propagation"])
        out.append({"destination": dest, "type": "bind", "source": src, "options": opts})
    for dest, data in parse_tmpfs(hc.get("Tmpfs")).items():
        out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                    "options": TMPFS_DEFAULTS + [DEFAULT_PROPAGATION] + data})
    return out


# --------------------------------------------------------------------------- copy-up


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class ImageTree:
    """The merged, read-only view of an image's layers (bottom first) for the
    copy-up: lookups resolve symlinks inside the image, listings merge the
    layers honouring whiteouts and opaque directories."""

    def __init__(self, layer_dirs: Iterable[str]):
        from oci.spec import LayeredFS

        self.fs = LayeredFS(layer_dirs)

    def resolve_dir(self, path: str) -> list[str] | None:
        """The resolved components of a directory, None if missing; raises
        VolumeError when it is not a directory."""
        comps = self.fs.resolve(path)
        if comps is None:
            return None
        found = self.fs._lookup(comps) if comps else (None, None)
        if comps and found is None:
            return None
        if comps and not stat.S_ISDIR(found[1].st_mode):
            raise VolumeError(f"cannot mount volume over existing file, file exists {path}")
        return comps

    def _root_stat(self) -> os.stat_result | None:
        for layer in self.fs.layers:
            try:
                return os.lstat(layer)
            except OSError:
                continue
        return None

    def dir_stat(self, comps: list[str]) -> os.stat_result | None:
        if not comps:
            return self._root_stat()
        found = self.fs._lookup(comps)
        return found[1] if found else None

    def listdir(self, comps: list[str]) -> list[tuple[str, str, os.stat_result]]:
        """(name, host path, lstat) of the entries of a merged directory."""
        seen: dict[str, tuple[str, os.stat_result] | None] = {}
        rel = "/".join(comps)
        for layer in self.fs.layers:
            wh, opq = self.fs._pending[layer]
            stop = False
            cur = layer
            present = True
            for i, c in enumerate(comps):
                cur = os.path.join(cur, c)
                try:
                    st = os.lstat(cur)
                except OSError:
                    present = False
                    break
                sub = "/".join(comps[: i + 1])
                if _is_whiteout(st) or sub in wh or not stat.S_ISDIR(st.st_mode):
                    present, stop = False, True
                    break
                if self.fs._opaque(cur) or sub in opq:
                    stop = True
            if present:
                if not comps and (self.fs._opaque(layer) or "." in opq):
                    stop = True
                prefix = f"{rel}/" if rel else ""
                for w in wh:  # whiteouts an unprivileged unpack only recorded
                    if w.startswith(prefix) and "/" not in w[len(prefix):]:
                        seen.setdefault(w[len(prefix):], None)
                try:
                    names = os.listdir(cur)
                except OSError:
                    names = []
                for n in names:
                    if n in seen:
                        continue
                    p = os.path.join(cur, n)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    child = f"{rel}/{n}" if rel else n
                    if _is_whiteout(st) or child in wh or n.startswith(".wh."):
                        seen[n] = None
                    else:
                        seen[n] = (p, st)
            if stop:
                break
        return [(n, v[0], v[1]) for n, v in sorted(seen.items()) if v is not None]


_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _set_owner_mode(fd: int, st: os.stat_result) -> None:
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except OSError:
        pass
    os.fchmod(fd, stat.S_IMODE(st.st_mode))


def copy_up(layer_dirs: list[str], path: str, mountpoint: str) -> bool:
    """Copy the image's content at ``path`` into an empty volume (dockerd's
    copyExistingContents: only when the volume is empty; the volume's root
    takes the ownership and mode of the image directory).  Returns whether
    anything was done.  Never follows a link in the volume."""
    tree = ImageTree(layer_dirs)
    comps = tree.resolve_dir(path)
    if comps is None:
        return False
    root_fd = os.open(mountpoint, _O_DIR)
    try:
        if os.listdir(root_fd):
            return False
        _copy_dir(tree, comps, root_fd, depth=0)
        st = tree.dir_stat(comps)
        if st is not None:
            _set_owner_mode(root_fd, st)
        return True
    finally:
        os.close(root_fd)


def _copy_dir(tree: ImageTree, comps: list[str], dst_fd: int, depth: int) -> None:
    if depth > 256:
        raise OSError(errno.ELOOP, "directory tree too deep to copy")
    for name, src, st in tree.listdir(comps):
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            fd = os.open(name, _O_DIR, dir_fd=dst_fd)
            try:
                _copy_dir(tree, comps + [name], fd, depth + 1)
                _set_owner_mode(fd, st)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
        elif stat.S_ISREG(mode):
            sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                dfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600, dir_fd=dst_fd)
                try:
                    while True:
                        chunk = os.read(sfd, 1 << 20)
                        if not chunk:
                            break
                        os.write(dfd, chunk)
                    _set_owner_mode(dfd, st)
                    os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(dfd)
            finally:
                os.close(sfd)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), name, dir_fd=dst_fd)
            try:
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
            except OSError:
                pass
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            try:
                os.mknod(name, mode, st.st_rdev, dir_fd=dst_fd)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
            except OSError:
                pass
        # sockets are not copied (as tar would not)
