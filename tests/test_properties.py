"""Property-based tests (hypothesis): image loading, TOML config parsing and manifest parsing never crash;
they give a value or the project's own error, whatever the input."""

import json
import shutil
import string
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edge.bundle import MANIFEST, parse_manifest, write_json
from edge.config import parse_config, read_toml
from edge.errors import BundleError, ConfigError, ImageError
from edge.image_header import image_size
from edge.imageio import read_image
from edge.inspector import Inspector

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
toml_scalars = st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=16)
toml_values = st.recursive(toml_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1, max_size=10), kids,
                                             max_size=4), max_leaves=16)


# --- image loading -------------------------------------------------------------------------------

def _read_bytes(tmp_path: Path, data: bytes, name: str = "x.png"):
    p = tmp_path / name
    p.write_bytes(data)
    try:
        img = read_image(p)
    except ImageError as e:
        assert str(p) in str(e)
        return None
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 8
    return img


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_any_bytes_give_an_image_or_an_image_error(tmp_path, data):
    _read_bytes(tmp_path, data)
    assert image_size(data) is None or all(isinstance(v, int) for v in image_size(data))


@st.composite
def small_images(draw):
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    ch = draw(st.sampled_from([1, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    img = rng.integers(0, np.iinfo(dtype).max, (h, w) if ch == 1 else (h, w, ch), endpoint=True).astype(dtype)
    return img


@SETTINGS
@given(img=small_images(), fmt=st.sampled_from([".png", ".tiff", ".bmp"]))
def test_lossless_images_convert_exactly_as_documented(tmp_path, img, fmt):
    assume(not (fmt == ".bmp" and img.dtype == np.uint16))  # BMP has no 16-bit
    ok, buf = cv2.imencode(fmt, img)
    assume(ok)
    got = _read_bytes(tmp_path, buf.tobytes(), "x" + fmt)
    assert got is not None
    want = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img  # 16-bit: the top 8 bits
    if want.ndim == 2:
        want = np.repeat(want[..., None], 3, axis=2)  # gray: copied to 3 channels
    elif want.shape[2] == 4:
        want = want[..., :3]  # alpha: dropped
    np.testing.assert_array_equal(got, want)
    assert image_size(buf.tobytes()) in (None, (img.shape[1], img.shape[0]))
    if fmt != ".tiff":
        assert image_size(buf.tobytes()) == (img.shape[1], img.shape[0])


@SETTINGS
@given(img=small_images(), fmt=st.sampled_from([".png", ".jpg", ".webp"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6))
def test_damaged_encodings_never_crash_the_reader(tmp_path, img, fmt, cut, flips):
    if img.dtype == np.uint16 and fmt != ".png":
        img = (img >> 8).astype(np.uint8)
    ok, buf = cv2.imencode(fmt, img)
    assume(ok)
    data = bytearray(buf.tobytes())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(1, int(len(data) * cut))]) if cut < 1 else bytes(data)
    _read_bytes(tmp_path, data, "x" + fmt)


@SETTINGS
@given(w=st.integers(1, 70_000), h=st.integers(1, 70_000), fmt=st.sampled_from(["png", "bmp", "webp-vp8x", "pnm"]))
def test_the_header_reader_finds_the_size_the_header_states(w, h, fmt):
    import struct
    import zlib
    if fmt == "png":
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
        data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    elif fmt == "bmp":
        data = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, w, -h) + b"\x00" * 30
    elif fmt == "webp-vp8x":
        assume(w <= 1 << 24 and h <= 1 << 24)
        data = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (w - 1).to_bytes(3, "little") \
            + (h - 1).to_bytes(3, "little")
    else:
        data = f"P5\n# comment\n{w} {h}\n255\n".encode()
    assert image_size(data) == (w, h)


# --- TOML config parsing ---------------------------------------------------------------------------

def _parse(data: dict):
    try:
        return parse_config(data, "prop")
    except ConfigError as e:
        assert str(e).startswith("prop: ") and "problem" in str(e)
        return None


@SETTINGS
@given(data=st.dictionaries(st.sampled_from(["station", "inspector", "source", "capture", "trigger", "pipeline",
                                             "storage", "gpio", "hook", "mqtt", "http", "log", "nonsense"]),
                            toml_values, max_size=5))
def test_any_config_mapping_gives_a_config_or_a_config_error(data):
    _parse(data)


SECTIONS = {"http": ["listen", "allow_remote", "token_file"], "hook": ["command", "on", "timeout_s"],
            "mqtt": ["enabled", "host", "port", "qos", "keepalive_s"],
            "capture": ["drop_policy", "batch_size"], "gpio": ["backend", "on_error", "ok", "reject"],
            "storage": ["root", "log", "ok_sample_rate", "retention"]}


@SETTINGS
@given(st.data())
def test_known_keys_with_any_value_give_a_config_or_errors_naming_the_key(data):
    section = data.draw(st.sampled_from(sorted(SECTIONS)))
    key = data.draw(st.sampled_from(SECTIONS[section]))
    value = data.draw(toml_values)
    cfg = {"capture": {"drop_policy": "every"}}
    cfg.setdefault(section, {})[key] = value
    try:
        parse_config(cfg, "prop")
    except ConfigError as e:
        lines = str(e).split("\n")[1:]
        assert any(f"{section}." in ln for ln in lines), str(e)


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_as_a_config_file_gives_a_mapping_or_a_config_error(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    try:
        data = read_toml(p)
    except ConfigError as e:
        assert "not valid TOML" in str(e)
        return
    assert isinstance(data, dict)
    _parse(data)


@SETTINGS
@given(port=st.integers(0, 65535), timeout=st.floats(0.01, 600), qos=st.integers(0, 2),
       cmd=st.lists(st.text(string.printable, min_size=1, max_size=10), min_size=1, max_size=4))
def test_valid_values_come_back_as_given(port, timeout, qos, cmd):
    cfg = parse_config({"capture": {"drop_policy": "every"}, "http": {"listen": f"127.0.0.1:{port}"},
                        "hook": {"command": cmd, "timeout_s": timeout}, "mqtt": {"qos": qos}})
    assert cfg.http.listen == f"127.0.0.1:{port}" and list(cfg.hook.command) == cmd and cfg.hook.timeout_s == timeout
    assert cfg.mqtt.qos == qos


# --- manifest parsing ------------------------------------------------------------------------------

@SETTINGS
@given(m=json_values)
def test_any_json_as_a_bundle_manifest_gives_a_bundle_or_a_bundle_error(tmp_path, m):
    try:
        parse_manifest(tmp_path, m if isinstance(m, dict) else {"schema": m})
    except BundleError:
        pass


def _mutations():
    path = st.lists(st.sampled_from(["input", "taps", "models", "files", "schema", "schema_version", "kind",
                                     "height", "width", "mean", "std", "name", "stride", "channels", "path",
                                     "format", "precision", "color", "outputs", 0, 1, 2]), min_size=1, max_size=3)
    return st.lists(st.tuples(path, st.sampled_from(["delete", "set"]), json_values), min_size=1, max_size=4)


def _mutate(m, muts):
    for path, op, value in muts:
        node = m
        for k in path[:-1]:
            if isinstance(node, dict) and k in node:
                node = node[k]
            elif isinstance(node, list) and isinstance(k, int) and k < len(node):
                node = node[k]
            else:
                break
        else:
            k = path[-1]
            if isinstance(node, dict) and isinstance(k, str):
                if op == "delete":
                    node.pop(k, None)
                else:
                    node[k] = value
            elif isinstance(node, list) and isinstance(k, int) and k < len(node):
                if op == "delete":
                    node.pop(k)
                else:
                    node[k] = value
    return m


@SETTINGS
@given(muts=_mutations())
def test_a_mutated_bundle_manifest_gives_a_bundle_or_a_bundle_error(tiny_bundle, muts):
    m = _mutate(json.loads((tiny_bundle / MANIFEST).read_text()), muts)
    try:
        b = parse_manifest(tiny_bundle, m)
    except BundleError:
        return
    assert b.taps or b.outputs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(muts=_mutations())
def test_a_mutated_inspector_manifest_loads_or_gives_a_bundle_error(tmp_path_factory, tiny_inspector_ro, muts):
    root = tmp_path_factory.mktemp("mut") / "inspector"
    shutil.copytree(tiny_inspector_ro, root)
    m = json.loads((root / MANIFEST).read_text())
    for path, op, value in muts:  # aim at the inspector's own keys as well as the shared ones
        path[0] = {"input": "padim", "taps": "backbone", "models": "thresholds"}.get(path[0], path[0])
    write_json(root / MANIFEST, _mutate(m, muts))
    try:
        Inspector.load(root, open_runtime=False)
    except BundleError:
        pass
    finally:
        shutil.rmtree(root.parent)


def test_hypothesis_is_a_declared_test_dependency():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"hypothesis' in text and '"pillow' in text
