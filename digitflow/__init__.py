"""Neutral code every digitflow process shares: settings, the model contract, pure image code.

Nothing in this package imports Flask, Celery, TensorFlow or ONNX Runtime.
"""
