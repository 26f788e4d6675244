"""``python -m napari_iem.cli``: the ``napari-iem`` command."""
import sys

from . import main

sys.exit(main())
