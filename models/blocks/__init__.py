"""The built-in block types, one spec each (models/specs.py): importing this package registers them."""

from models.blocks import ultralytics, yolov5  # noqa: F401 (registers their specs)
