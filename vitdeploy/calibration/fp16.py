"""FP16: a mixed-precision ONNX by ModelOpt AutoCast (DESIGN.md decision 1).

Kept in FP32: LayerNorm / GroupNorm, Softmax and reductions (their statistics and exponentials
overflow or lose accuracy in FP16), the output tail (the layers that write boxes, scores and masks
and everything after them, so the numbers a planner consumes are not rounded to 11 bits), and any
node whose values on the calibration frames exceed AutoCast's ``data_max`` — measured on real
frames, because on random noise the activation ranges, and so the FP32 choices, are different.
Graph inputs and outputs stay FP32 (``keep_io_types``), so the runtime feeds both files alike.

AutoCast's reference run keeps every intermediate tensor of every frame in memory at once (1.4 GB
of tensors per frame for ViT-Tiny at 448x800; the process peaks at 2-3x that), so it gets as many
calibration frames as fit in :data:`REFERENCE_BUDGET_BYTES`, at least one; the manifest records
how many (``fp16.autocast_frames``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from vitdeploy.calibration.int8 import FP32_OP_TYPES
from vitdeploy.calibration.layers import Layer, output_tail, restore_input_casts
from vitdeploy.calibration.modelopt_runner import run_modelopt

_FLOAT16 = onnx.TensorProto.FLOAT16
_FLOAT = onnx.TensorProto.FLOAT
#: Memory AutoCast's reference run (all intermediate tensors of all frames) may take.
REFERENCE_BUDGET_BYTES = 2 << 30


@dataclass
class Fp16Conversion:
    """What stayed FP32: op type -> count of compute nodes (Casts not counted)."""

    fp32_ops: dict[str, int]
    fp16_ops: dict[str, int]
    kept_output_nodes: list[str]
    reference_frames: int  # calibration frames AutoCast's range check ran on

    def summary(self) -> dict:
        return {"fp32_ops": self.fp32_ops, "fp16_ops": self.fp16_ops,
                "fp32_output_tail": len(self.kept_output_nodes), "autocast_frames": self.reference_frames}


def convert_fp16(fp32_path: Path, out_path: Path, *, calibration: dict[str, np.ndarray], layers: list[Layer],
                 log_path: Path, keep_fp32: tuple[str, ...] = (), set_cameras: int | None = None) -> Fp16Conversion:
    """``keep_fp32``: more node names to keep in FP32 (a fused preprocessing subgraph: cheap, and
    pixel arithmetic gains nothing from FP16). ``set_cameras``: the graph takes whole frame sets
    of this many cameras (``CalibrationData.set_cameras``); AutoCast gets whole sets."""
    model = onnx.load(str(fp32_path), load_external_data=False)
    tail = sorted(output_tail(model, layers))
    options = {
        "op_types_to_exclude": list(FP32_OP_TYPES),
        "nodes_to_exclude": [f"^{re.escape(n)}$" for n in [*tail, *keep_fp32]],
    }
    per_run = set_cameras or 1
    runs = max(1, min(_count(calibration) // per_run, REFERENCE_BUDGET_BYTES // max(1, per_run * frame_bytes(model))))
    frames = runs * per_run
    run_modelopt("fp16", onnx_path=fp32_path, output_path=out_path, options=options, log_path=log_path,
                 calibration={k: v[:frames] for k, v in calibration.items()}, set_cameras=set_cameras)
    converted = onnx.load(str(out_path))
    # AutoCast leaves intermediate shapes inferred at its calibration batch size in value_info;
    # onnxruntime trusts them and then fails at other camera counts ("Shape mismatch attempting
    # to re-use buffer"). Graph inputs/outputs keep their symbolic shapes; the rest is re-inferred.
    del converted.graph.value_info[:]
    restore_input_casts(converted)
    onnx.save(converted, str(out_path))
    fp32_ops, fp16_ops = compute_precisions(converted)
    return Fp16Conversion(fp32_ops=fp32_ops, fp16_ops=fp16_ops, kept_output_nodes=tail, reference_frames=frames)


def _count(feeds: dict[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


def frame_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all the tensors one camera frame produces inside ``model`` (dynamic axes as 1)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    total = 0
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        numel = 1
        for d in t.shape.dim:
            numel *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        total += numel * onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize if t.elem_type else 0
    return total


def node_compute_types(model: onnx.ModelProto) -> dict[str, int]:
    """Node name -> the element type of its first floating-point input (what it computes in)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    out = {}
    for node in model.graph.node:
        for tensor in node.input:
            if types.get(tensor) in (_FLOAT, _FLOAT16):
                out[node.name] = types[tensor]
                break
    return out


def compute_precisions(model: onnx.ModelProto) -> tuple[dict[str, int], dict[str, int]]:
    """(FP32 op counts, FP16 op counts) over compute nodes, Casts and shape ops left out."""
    skip = {"Cast", "Shape", "Reshape", "Transpose", "Gather", "Concat", "Expand", "Unsqueeze", "Squeeze",
            "Constant", "Slice", "Split", "Identity"}
    by_node = {n.name: n.op_type for n in model.graph.node}
    fp32, fp16 = Counter(), Counter()
    for name, elem in node_compute_types(model).items():
        op = by_node[name]
        if op in skip:
            continue
        (fp16 if elem == _FLOAT16 else fp32)[op] += 1
    return dict(sorted(fp32.items())), dict(sorted(fp16.items()))
