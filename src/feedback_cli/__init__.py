"""fbloop: a one-line idea in, a scored and selected image and video out."""

__version__ = "0.1.0"
