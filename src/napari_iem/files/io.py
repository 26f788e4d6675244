"""The reading and writing API in one place, for the modules that import it from here.

Each idea has its own module: :mod:`~napari_iem.files.read` (bounded reads, headers
first), :mod:`~napari_iem.files.write` (atomic writes, labels),
:mod:`~napari_iem.files.names` (output names), :mod:`~napari_iem.files.overlay` and
:mod:`~napari_iem.files.manifest` (which outputs this tool wrote, from what).
"""
from .names import output_path, safe_stem, unique_stems
from .overlay import overlay_rgb, write_overlay
from .read import (
                   DEFAULT_MAX_PIXELS,
                   IMAGE_SUFFIXES,
                   ImageInfo,
                   ImageReadError,
                   ImageTooLargeError,
                   find_images,
                   image_info,
                   read_image,
                   read_labels,
)
from .write import (
                   LABEL_SUFFIXES,
                   TEMP_SUFFIX,
                   atomic_output,
                   existing_labels,
                   labels_suffix,
                   write_labels,
)

__all__ = [
                   "DEFAULT_MAX_PIXELS",
                   "IMAGE_SUFFIXES",
                   "LABEL_SUFFIXES",
                   "TEMP_SUFFIX",
                   "ImageInfo",
                   "ImageReadError",
                   "ImageTooLargeError",
                   "atomic_output",
                   "existing_labels",
                   "find_images",
                   "image_info",
                   "labels_suffix",
                   "output_path",
                   "overlay_rgb",
                   "read_image",
                   "read_labels",
                   "safe_stem",
                   "unique_stems",
                   "write_labels",
                   "write_overlay",
]
