"""Export trained Re-ID models for inference: ONNX (``onnx``) and TorchScript (``torchscript``).

``python main.py task=export ckpt_path=<last.ckpt>``; from Python,
:func:`reidsort.export.onnx.export_onnx` and :func:`reidsort.export.torchscript.export_torchscript`.

This package's ``__init__`` imports nothing: :mod:`reidsort.export.metadata` must stay importable
without torch (the ONNX embedder of the tracker reads it).
"""
