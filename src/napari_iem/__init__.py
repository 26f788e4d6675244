"""Unsupervised segmentation by Inpainting Error Maximization (IEM)."""
__version__ = "0.1.0"
