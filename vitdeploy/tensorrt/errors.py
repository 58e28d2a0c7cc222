"""Why a build failed, in words a user can act on."""

from __future__ import annotations

from dataclasses import dataclass

from vitdeploy.errors import VitDeployError


class BuildError(VitDeployError):
    """A TensorRT engine could not be built (bad options, unparsable ONNX, builder failure)."""


@dataclass(frozen=True)
class ParserIssue:
    """One error of TensorRT's ONNX parser, with the node it happened at (-1: no node)."""

    node: int
    node_name: str
    operator: str
    code: str
    message: str

    def __str__(self) -> str:
        where = f"node {self.node} {self.node_name!r} ({self.operator})" if self.node >= 0 else "the graph"
        return f"{where}: {self.message} [{self.code}]"


class OnnxParseError(BuildError):
    """TensorRT's ONNX parser rejected the graph; ``issues`` lists each node and message."""

    def __init__(self, onnx_file: str, issues: list[ParserIssue]):
        self.onnx_file = onnx_file
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues) or "  - (the parser gave no details)"
        super().__init__(
            f"TensorRT cannot parse {onnx_file} ({len(self.issues)} error(s)):\n{lines}\n"
            f"`vitdeploy info` lists the lint findings of the graph; re-export or recalibrate after fixing them"
        )
