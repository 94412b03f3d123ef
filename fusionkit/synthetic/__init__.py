"""Synthetic brackets: an emulated camera (``camera``), brackets rendered from photographs (``render``,
``fusionkit data render``) and the embedded sample set made the same way (``sample``), all written in the
sice layout that ``fusionkit.data`` reads. Imports the core and ``fusionkit.data``.
"""

from .render import render_photos
from .sample import default_sample_dir, ensure_sample, read_manifest, write_contact_sheet

__all__ = ["default_sample_dir", "ensure_sample", "read_manifest", "render_photos", "write_contact_sheet"]
