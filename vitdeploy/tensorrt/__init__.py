"""Everything TensorRT, in one room (as Polygraphy keeps ``backend/trt/``).

* ``compat``: TensorRT and pycuda imported lazily, the TensorRT names used (checked against the
  recorded 10.x/11.x Python APIs), the machine probe;
* ``profile``, ``trtexec``, ``errors``: the optimisation profile over the camera axis, the
  equivalent trtexec line and why a build failed — plain Python, no TensorRT needed;
* ``builder``: the few calls into TensorRT that turn an ONNX file into a plan;
* ``build``: `vitdeploy build` — a bundle's ONNX at one precision -> a checked plan in the bundle;
* ``golden``, ``agreement``: the golden pool (driving frames and a photograph) with its FP32
  outputs, and what a built engine must reach on it: element bounds and the head's own agreement;
* ``provenance``: which machine a plan belongs to and whether it may run on this one;
* ``runner``, ``cuda_graph``: the engine side of the tensorrt backend (the backend module itself,
  ``vitdeploy.runtime.backends.tensorrt``, only adapts it to the backend registry).

This room works on ONNX files and the manifest and never imports ``vitdeploy.models``. Nothing in it
imports ``tensorrt`` or ``pycuda`` at module level (DESIGN.md decision 3).
"""
