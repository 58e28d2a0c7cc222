"""The manifest reader on arbitrary input: a Manifest whose fields have their declared types, or a
BundleError — never another exception (which a later command would meet as a traceback)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_manifest import _manifest

from vitdeploy.bundle import Bundle, Engine, Manifest, Precision, Variant
from vitdeploy.errors import BundleError

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


def full_manifest() -> dict:
    m = _manifest()
    m.graphs[0].variants.append(Variant(Precision.INT8, "model.int8.onnx", "def", details={"agreement": None}))
    m.engines.append(Engine(file="m.plan", graph="model", precision=Precision.FP16, tensorrt_version="10.3",
                            cuda_version="12.6", gpu_name="Orin", compute_capability="8.7", profile={"cameras": [1, 6, 6]},
                            onnx_sha256="a", plan_sha256="b", build_seconds=1.0, built_at="", dla_core=0))
    m.calibration["int8"] = {"status": "good"}
    return json.loads(m.to_json())


def paths(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


PATHS = [p for p in paths(full_manifest()) if p and p != ("schema",)]


@st.composite
def mutated_manifests(draw) -> str:
    """A valid manifest with one to three values (anywhere, of any depth) replaced by arbitrary JSON."""
    raw = full_manifest()
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        parent = raw
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this path
    return json.dumps(raw)


def assert_typed(obj, tp) -> None:
    """``obj`` has the type the dataclass field declares (recursively)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return
    if origin in (typing.Union, __import__("types").UnionType):
        assert any(_matches(obj, a) for a in args), (obj, tp)
        for a in args:
            if _matches(obj, a):
                assert_typed(obj, a)
                return
    if dataclasses.is_dataclass(tp):
        assert isinstance(obj, tp)
        hints = typing.get_type_hints(tp)
        for f in dataclasses.fields(tp):
            assert_typed(getattr(obj, f.name), hints[f.name])
        return
    assert _matches(obj, tp), (obj, tp)
    if origin is list:
        for v in obj:
            assert_typed(v, args[0])
    elif origin is tuple:
        for v, a in zip(obj, args, strict=True):
            assert_typed(v, a)
    elif origin is dict:
        for k, v in obj.items():
            assert isinstance(k, str)
            assert_typed(v, args[1])


def _matches(obj, tp) -> bool:
    origin = typing.get_origin(tp) or tp
    if tp is type(None):
        return obj is None
    if tp is typing.Any:
        return True
    if origin is float:
        return isinstance(obj, (int, float)) and not isinstance(obj, bool)
    if origin is int:
        return isinstance(obj, int) and not isinstance(obj, bool)
    if dataclasses.is_dataclass(tp):
        return isinstance(obj, tp)
    return isinstance(obj, origin)


def read(text: str) -> Manifest | None:
    try:
        manifest = Manifest.from_json(text)
    except BundleError:
        return None
    assert_typed(manifest, Manifest)
    return manifest


@FAST
@given(mutated_manifests())
def test_a_manifest_with_wrong_values_is_typed_or_a_bundle_error(text):
    read(text)


@FAST
@given(json_values)
def test_arbitrary_json_is_a_bundle_error(value):
    assert read(json.dumps(value)) is None


@FAST
@given(st.text(max_size=200))
def test_arbitrary_text_is_a_bundle_error(text):
    read(text)


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_in_manifest_json_are_a_bundle_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("b")
    (folder / "manifest.json").write_bytes(data)
    with contextlib.suppress(BundleError):
        Bundle.open(folder)


def test_deeply_nested_json_is_a_bundle_error():
    assert read("[" * 100_000 + "]" * 100_000) is None
