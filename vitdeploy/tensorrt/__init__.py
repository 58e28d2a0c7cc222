"""The TensorRT engine builder: a bundle's ONNX at one precision -> a strongly typed plan.

``build.build_engines`` is the entry point of `vitdeploy build`. Everything except ``builder``
is plain Python that works without TensorRT or a GPU (and is tested so): the optimisation
profile over the camera axis (``profile``), the equivalent trtexec command (``trtexec``), golden
inputs and tolerances (``golden``). ``builder`` holds the few calls into TensorRT. The builder
works on ONNX files and never imports ``vitdeploy.models``.
"""
