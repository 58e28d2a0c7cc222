"""The rig parser on arbitrary input: a Rig or a RigConfigError, never another exception."""

from __future__ import annotations

import contextlib
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitdeploy.errors import RigConfigError
from vitdeploy.runtime.rig import (
    _CAMERA_KEYS,
    _MODEL_KEYS,
    _OUTPUT_KEYS,
    _TOP_KEYS,
    Rig,
    load_rig,
    parse_rig,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def toml_value(value) -> str:
    """A TOML literal for a generated value (strings JSON-quoted, non-ASCII kept as it is: JSON's
    surrogate-pair escapes are not TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


scalars = (st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(st.characters(exclude_categories=['Cs']), max_size=30) | st.sampled_from(["synthetic://front", "front.mp4", "fp16", "mosaic", "torch",
                                                     "rtsp://camera.example/x", "device://0", "0", "x ! appsink"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(st.characters(exclude_categories=['Cs']), max_size=8), inner, max_size=3), max_leaves=6)


def table(keys: set[str], plausible: dict | None = None):
    """A table of known keys (and now and then an unknown one) with arbitrary values; two times in
    three on top of ``plausible`` ones, so that the parse gets past the first field."""
    unknown = st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=8), values, max_size=1)
    anything = st.tuples(st.dictionaries(st.sampled_from(sorted(keys)), values, max_size=len(keys)),
                         st.integers(0, 9), unknown).map(lambda t: {**t[0], **(t[2] if t[1] == 0 else {})})
    if plausible is None:
        return anything
    merged = st.tuples(st.fixed_dictionaries(plausible), anything).map(lambda t: {**t[1], **t[0]})
    return st.sampled_from([1, 2, 0]).flatmap(lambda i: anything if i == 0 else merged)


CAMERA = {"name": st.sampled_from(["front", "rear", "dash"]), "fps": st.floats(0.1, 100) | st.integers(-1, 60),
          "source": st.sampled_from(["synthetic://front", "a.mp4", "frames/", "rtsp://camera.example/x"])}


@st.composite
def rig_documents(draw) -> str:
    lines = [f"{toml_value(k)} = {toml_value(v)}" for k, v in draw(table(_TOP_KEYS - {"model", "outputs",
                                                                                      "cameras"})).items()]
    for name, keys in (("model", _MODEL_KEYS), ("outputs", _OUTPUT_KEYS)):
        if draw(st.booleans()):
            lines.append(f"[{name}]")
            lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in draw(table(keys)).items()]
    for _ in range(draw(st.sampled_from([1, 2, 3, 0]))):
        lines.append("[[cameras]]")
        lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in draw(table(_CAMERA_KEYS, CAMERA)).items()]
    return "\n".join(lines) + "\n"


def parse_or_config_error(text: str) -> None:
    try:
        rig = parse_rig(text)
    except RigConfigError:
        return
    assert isinstance(rig, Rig) and rig.cameras


@FAST
@given(rig_documents())
def test_arbitrary_toml_gives_a_rig_or_a_rig_config_error(text):
    parse_or_config_error(text)


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_gives_a_rig_or_a_rig_config_error(text):
    parse_or_config_error(text)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_in_a_rig_file_give_a_rig_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("rig") / "rig.toml"
    path.write_bytes(data)
    with contextlib.suppress(RigConfigError):
        load_rig(path)
