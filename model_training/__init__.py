"""Training pipeline: load MNIST -> build -> train -> evaluate -> export (run with python -m model_training)."""
