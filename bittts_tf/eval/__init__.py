"""Inference from checkpoints and objective evaluation."""
