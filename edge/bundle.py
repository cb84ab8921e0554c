"""Backbone bundles: the one contract between ``export/`` (torch) and ``edge/`` (no torch).

A bundle is a directory::

    manifest.json      what the model is and how to feed it (schema below)
    model.onnx         ONNX model (FP32): one output per feature tap, or per supervised output
    model_fp16.onnx, model_int8.onnx, model{,_fp16,_int8}.xml/.bin
                       optional variants, listed under "models" (format, precision, path)

The same schema (version 1) serves every ``kind``: "backbone" lists ``taps``; "classifier",
"segmenter" and "multitask" list ``outputs`` (name, role, label map, activation, mask stride).

The manifest records a SHA-256 for every file it names. :func:`load_bundle` refuses a
bundle whose files are missing or whose hashes differ, and says which file and how.
JSON is used (not TOML) because both halves read *and write* it with the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import BundleError

BACKBONE_SCHEMA = "edge-inspect/backbone"
SCHEMA_VERSION = 1
# "backbone": feature taps for PaDiM; the others are supervised models described by "outputs".
KINDS = ("backbone", "classifier", "segmenter", "multitask")
MANIFEST = "manifest.json"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Tap:
    """One feature output of the backbone."""

    name: str
    stride: int
    channels: int

    def __post_init__(self):
        if self.stride < 1 or self.channels < 1:
            raise BundleError(f"tap {self.name!r}: stride and channels must be positive")


@dataclass(frozen=True)
class OutputSpec:
    """One output of a supervised model (classifier, segmenter, multitask) and how to read it.

    role "class": (B, channels) logits; role "mask": (B, channels, H/stride, W/stride) logits.
    ``labels`` maps class index → name (a single sigmoid logit is P(label 1), so it has labels 0 and 1);
    ``ok_class`` is the index meaning a good part; ``background_class`` the mask's background channel.
    """

    name: str
    role: str
    channels: int
    activation: str
    labels: tuple[tuple[int, str], ...]
    stride: int | None = None
    ok_class: int | None = None
    background_class: int | None = None

    def __post_init__(self):
        if self.role not in ("class", "mask"):
            raise BundleError(f"output {self.name!r}: role must be class or mask, not {self.role!r}")
        if self.activation not in ("softmax", "sigmoid", "none"):
            raise BundleError(f"output {self.name!r}: unknown activation {self.activation!r}")
        if self.channels < 1:
            raise BundleError(f"output {self.name!r}: channels must be positive")
        if self.role == "mask" and (self.stride is None or self.stride < 1):
            raise BundleError(f"output {self.name!r}: a mask output needs a positive stride")
        idx = {i for i, _ in self.labels}
        if self.ok_class is not None and self.ok_class not in idx:
            raise BundleError(f"output {self.name!r}: ok_class {self.ok_class} is not in its label map")

    @property
    def label_map(self) -> dict[int, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class InputSpec:
    name: str
    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color: str = "RGB"  # channel order the model expects
    layout: str = "NCHW"
    dynamic_spatial: bool = False

    def __post_init__(self):
        if self.color not in ("RGB", "BGR"):
            raise BundleError(f"input.color must be RGB or BGR, not {self.color!r}")
        if self.layout != "NCHW":
            raise BundleError(f"input.layout {self.layout!r} is not supported (only NCHW)")
        if self.height < 8 or self.width < 8:
            raise BundleError(f"input size {self.height}x{self.width} is too small")


@dataclass(frozen=True)
class ModelFile:
    """One runnable variant of the model: a format, a precision and its file(s)."""

    format: str  # "onnx" | "openvino"
    precision: str  # "fp32" | "fp16" | "int8"
    path: str
    weights: str | None = None  # OpenVINO .bin

    def files(self) -> list[str]:
        return [self.path] + ([self.weights] if self.weights else [])

    @property
    def key(self) -> str:
        """``format/precision``, the name parity reports and options use."""
        return f"{self.format}/{self.precision}"

    def manifest_entry(self) -> dict:
        """This variant as the manifest's ``models`` list holds it (what :func:`parse_manifest` reads back)."""
        d = {"format": self.format, "precision": self.precision, "path": self.path}
        if self.weights:
            d["weights"] = self.weights
        return d


@dataclass(frozen=True)
class Bundle:
    """A verified backbone bundle on disk."""

    root: Path
    name: str
    kind: str
    input: InputSpec
    taps: tuple[Tap, ...]
    models: tuple[ModelFile, ...]
    manifest: dict[str, Any] = field(repr=False, compare=False)
    outputs: tuple[OutputSpec, ...] = ()

    def model(self, fmt: str, precision: str | None = None) -> ModelFile:
        """The model file for a format (and precision, default: the most precise one)."""
        cands = [m for m in self.models if m.format == fmt]
        if precision:
            cands = [m for m in cands if m.precision == precision]
        if not cands:
            have = ", ".join(f"{m.format}/{m.precision}" for m in self.models) or "none"
            want = f"{fmt}/{precision}" if precision else fmt
            raise BundleError(
                f"bundle {self.root} has no {want} model (it has: {have})",
                hint="export that variant with `edge-export`, or pick another --backend/--precision",
            )
        order = {"fp32": 0, "fp16": 1, "int8": 2}
        return sorted(cands, key=lambda m: order.get(m.precision, 9))[0]

    @property
    def id(self) -> str:
        """Short content id: hash of the manifest's file hashes."""
        files = self.manifest.get("files", {})
        blob = json.dumps(files, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _req(d: dict, key: str, where: str):
    if key not in d:
        raise BundleError(f"{where}: missing key {key!r}")
    return d[key]


def parse_manifest(root: Path, m: dict[str, Any]) -> Bundle:
    where = str(root / MANIFEST)
    if m.get("schema") != BACKBONE_SCHEMA:
        raise BundleError(f"{where}: not a backbone bundle manifest (schema={m.get('schema')!r})")
    ver = m.get("schema_version")
    if ver != SCHEMA_VERSION:
        raise BundleError(
            f"{where}: schema_version {ver} is not supported by this edge-inspect (expects {SCHEMA_VERSION})",
            hint="re-export the bundle with a matching edge-export, or upgrade edge-inspect",
        )
    inp = _req(m, "input", where)
    try:
        spec = InputSpec(
            name=inp["name"], height=int(inp["height"]), width=int(inp["width"]),
            mean=tuple(float(v) for v in inp["mean"]), std=tuple(float(v) for v in inp["std"]),
            color=inp.get("color", "RGB"), layout=inp.get("layout", "NCHW"),
            dynamic_spatial=bool(inp.get("dynamic_spatial", False)),
        )
        taps = tuple(Tap(t["name"], int(t["stride"]), int(t["channels"])) for t in m.get("taps", []))
        models = tuple(
            ModelFile(x["format"], x["precision"], x["path"], x.get("weights")) for x in _req(m, "models", where)
        )
        outputs = tuple(_parse_output(o) for o in m.get("outputs") or [])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"{where}: malformed manifest ({type(e).__name__}: {e})") from None
    if not models:
        raise BundleError(f"{where}: lists no model files")
    for mf in models:
        for f in mf.files():
            member_path(root, f, where)
    kind = m.get("kind", "backbone")
    if kind not in KINDS:
        raise BundleError(f"{where}: unknown kind {kind!r} (this edge-inspect knows {', '.join(KINDS)})")
    if kind == "backbone" and not taps:
        raise BundleError(f"{where}: a backbone bundle must list its taps")
    if kind != "backbone" and not outputs:
        raise BundleError(f"{where}: a {kind} bundle must describe its outputs")
    return Bundle(root=root, name=m.get("name", "?"), kind=kind, input=spec, taps=taps, models=models,
                  manifest=m, outputs=outputs)


def _parse_output(o: dict) -> OutputSpec:
    stride = o.get("stride")
    ok, bg = o.get("ok_class"), o.get("background_class")
    return OutputSpec(name=o["name"], role=o["role"], channels=int(o["channels"]), activation=o["activation"],
                      labels=tuple(sorted((int(k), str(v)) for k, v in (o.get("labels") or {}).items())),
                      stride=None if stride is None else int(stride), ok_class=None if ok is None else int(ok),
                      background_class=None if bg is None else int(bg))


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    root = Path(root)
    path = root / MANIFEST
    if not root.exists():
        raise BundleError(f"bundle directory {root} does not exist",
                          hint="export one with `edge-export backbone efficientnet-lite0 --out DIR`")
    if not path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}; it is not an edge-inspect bundle")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from None


def member_path(root: Path, rel: Any, where: str) -> Path:
    """``root / rel`` for a path a manifest names, refusing any that could leave ``root``:
    absolute paths, ``..`` parts, backslashes, and symbolic links that resolve outside it."""
    if (not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or ":" in rel
            or ".." in PurePosixPath(rel).parts):
        raise BundleError(f"{where}: path {rel!r} is not a plain relative path inside the directory; refusing it",
                          hint="a manifest may only name files inside its own directory")
    p = root / rel
    base = root.resolve()
    real = p.resolve()
    if real != base and base not in real.parents:
        raise BundleError(f"{where}: {rel} is a symbolic link out of {root} (to {real}); refusing it",
                          hint="copy the real file into the directory instead of linking to it")
    return p


def verify_files(root: Path, files: dict[str, str], what: str = "bundle",
                 contents: dict[str, bytes] | None = None) -> None:
    """Check every listed file exists and has the recorded SHA-256; raise listing all differences.

    ``contents`` holds files the caller has already read (hashed from memory, not read again).
    A path that could leave ``root`` is refused before anything is read (:func:`member_path`).
    """
    problems = []
    contents = contents or {}
    if not isinstance(files, dict):
        raise BundleError(f"{what} {root}: the manifest's 'files' is not a table of path: sha256")
    for rel, want in sorted(files.items()):
        p = member_path(root, rel, f"{what} {root}")
        if not isinstance(want, str):
            problems.append(f"{rel}: the recorded hash is not a string")
            continue
        if rel in contents:
            got = hashlib.sha256(contents[rel]).hexdigest()
        elif not p.is_file():
            problems.append(f"{rel}: missing")
            continue
        else:
            got = sha256_file(p)
        if got != want:
            problems.append(f"{rel}: sha256 {got[:16]}… but the manifest records {want[:16]}…")
    if problems:
        raise BundleError(
            f"{what} {root} failed its integrity check:\n    " + "\n    ".join(problems),
            hint="the files were modified or copied incompletely; copy the whole directory again "
                 "from the workstation or re-export it",
        )


def load_bundle(root: str | os.PathLike, verify: bool = True) -> Bundle:
    """Read and (by default) hash-verify a backbone bundle."""
    root = Path(root)
    m = read_manifest(root)
    b = parse_manifest(root, m)
    files = m.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{root / MANIFEST}: has no 'files' hash table; refusing an unverifiable bundle")
    missing = [f for mf in b.models for f in mf.files() if f not in files]
    if missing:
        raise BundleError(f"{root / MANIFEST}: model files without a recorded hash: {', '.join(missing)}")
    if verify:
        verify_files(root, files)
    return b


def hash_tree(root: Path, exclude: tuple[str, ...] = (MANIFEST, ".edge-inspect-owner")) -> dict[str, str]:
    """SHA-256 of every regular file under root (relative POSIX paths), manifest and AtomicDir's owner file
    excluded."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            if rel in exclude:
                continue
            out[rel] = sha256_file(p)
    return out


def write_json(path: Path, obj: Any) -> None:
    """Write JSON durably: temp file, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


OWNER_FILE = ".edge-inspect-owner"  # pid of the process building a temp dir; removed after the swap


class AtomicDir:
    """Build a directory next to its destination, then swap it in atomically.

    Used as a context manager; on an exception the half-written temp dir is removed and the
    destination is left as it was. An existing destination is replaced only on success, by one
    ``renameat2(RENAME_EXCHANGE)`` on Linux (so there is no moment without a destination), else by
    two renames. Temp dirs left by a process killed mid-build (``.NAME.*`` holding the pid of a
    dead process) and a ``.NAME.old`` left between the two renames are cleaned up on the next use
    (:func:`recover_dir`).
    """

    def __init__(self, dest: str | os.PathLike, overwrite: bool = True):
        self.dest = Path(dest)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        recover_dir(self.dest)
        if self.dest.exists() and not self.overwrite:
            raise BundleError(f"{self.dest} already exists", hint="pass --force to replace it")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", dir=self.dest.parent))
        (self.tmp / OWNER_FILE).write_text(str(os.getpid()))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        _fsync_tree(self.tmp)
        # the owner file stays until the swap (so a kill before it leaves a temp dir known to be stale);
        # it is not in any manifest's hash table, so an inspector holding one a moment is still valid
        if self.dest.exists() and _exchange(self.tmp, self.dest):
            shutil.rmtree(self.tmp, ignore_errors=True)  # now holds the old content
        else:
            old = None
            if self.dest.exists():
                old = self.dest.with_name(f".{self.dest.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(self.dest, old)
            os.replace(self.tmp, self.dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        (self.dest / OWNER_FILE).unlink(missing_ok=True)
        _fsync_path(self.dest.parent)
        return False


def recover_dir(dest: str | os.PathLike) -> list[Path]:
    """Undo what a killed writer of ``dest`` left behind; returns the paths removed or restored.

    - ``.NAME.old`` while ``NAME`` is missing: the kill fell between the two renames; it is put back.
    - ``.NAME.XXXX`` temp dirs whose owner pid is not running (or that have no owner file and are
      over an hour old): removed. A live writer's temp dir is left alone.
    """
    dest = Path(dest)
    parent = dest.parent
    done: list[Path] = []
    old = dest.with_name(f".{dest.name}.old")
    if old.is_dir() and not os.path.lexists(dest):
        os.replace(old, dest)
        done.append(dest)
    if not parent.is_dir():
        return done
    for p in parent.glob(f".{dest.name}.*"):
        if p == old or p.is_symlink() or not p.is_dir() or _owner_alive(p):
            continue
        shutil.rmtree(p, ignore_errors=True)
        done.append(p)
    if old.is_dir() and os.path.lexists(dest):
        shutil.rmtree(old, ignore_errors=True)
        done.append(old)
    return done


def _owner_alive(tmp: Path) -> bool:
    try:
        pid = int((tmp / OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        import time

        try:
            return time.time() - tmp.stat().st_mtime < 3600  # unknown owner: only an old one is stale
        except OSError:
            return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under root, so the content is on disk before the rename makes it live."""
    for p in sorted(root.rglob("*"), reverse=True):
        if (p.is_file() and not p.is_symlink()) or p.is_dir():
            _fsync_path(p)
    _fsync_path(root)


def _fsync_path(path: Path) -> None:
    """fsync one file or folder; best effort (a filesystem without fsync on folders is not an error)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_backbone_manifest(root: Path, *, name: str, input_spec: dict, taps: list[dict], models: list[dict],
                            weights: dict, parity: dict | None = None, outputs: list[dict] | None = None,
                            **extra: Any) -> dict:
    """Write manifest.json for the files already in ``root`` (hashing all of them); return it.

    Shared by the exporter and by test fixtures, so there is one definition of the format.
    ``kind`` (in ``extra``) defaults to "backbone"; supervised kinds pass ``outputs`` and no taps.
    """
    manifest = {
        "schema": BACKBONE_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "kind": extra.pop("kind", "backbone"),
        "name": name,
        **{k: v for k, v in extra.items() if k not in ("files",)},
        "input": input_spec,
        "taps": taps,
        **({"outputs": outputs} if outputs else {}),
        "models": models,
        "weights": weights,
        "parity": parity or {},
    }
    manifest["files"] = hash_tree(Path(root))
    write_json(Path(root) / MANIFEST, manifest)
    return manifest
