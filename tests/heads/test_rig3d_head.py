"""Decoding a rig head's raw outputs into ego-frame boxes."""

import math

import numpy as np
import pytest

from vitdeploy.heads.rig3d import decode_boxes3d


def test_decoding_keeps_confident_queries_best_first_with_their_yaw():
    logits = np.full((1, 3, 3), -10.0, np.float32)  # 2 classes + no object
    logits[0, 0, 2] = 10.0  # query 0: no object
    logits[0, 1, 1] = 10.0  # query 1: class 1, sure
    logits[0, 2, 0] = 1.0  # query 2: class 0, p = e / (e + 1 + e^-9 ...) ~ 0.73
    logits[0, 2, 2] = 0.0
    boxes = np.zeros((1, 3, 8), np.float32)
    boxes[0, 1] = [10, -2, 0.7, 4, 2, 1.4, 1.0, 0.0]  # yaw 90 degrees
    boxes[0, 2] = [-5, 3, 0.9, 0.6, 0.6, 1.8, -2.0, -2.0]  # unnormalised sin/cos: yaw -135 degrees
    (out,) = decode_boxes3d(logits, boxes, score_threshold=0.5)
    np.testing.assert_array_equal(out.labels, [1, 0])
    assert out.scores[0] > 0.99 and out.scores[1] == pytest.approx(math.e / (math.e + 1), abs=1e-3)
    np.testing.assert_allclose(out.centers, [[10, -2, 0.7], [-5, 3, 0.9]])
    np.testing.assert_allclose(out.sizes[0], [4, 2, 1.4])
    np.testing.assert_allclose(out.yaws, [math.pi / 2, -3 * math.pi / 4], atol=1e-6)
    assert len(decode_boxes3d(logits, boxes, score_threshold=0.5, top_k=1)[0]) == 1
