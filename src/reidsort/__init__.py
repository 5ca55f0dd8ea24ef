"""reidsort: person re-identification training and DeepSORT-style multi-object tracking."""

__version__ = "0.1.0"
