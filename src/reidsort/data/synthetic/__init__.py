"""Built-in synthetic pedestrians: Re-ID crops and people walking in synthetic videos.

No dataset can be downloaded at run time, so the project renders its own: identities with a
stable appearance (:class:`PersonAppearance`), cameras with their own look (:class:`CameraStyle`),
single crops (:func:`render_person_crop`), people drawn into any frame (:func:`draw_person`) and
a complete Market-1501-style dataset (:func:`write_market1501`).
"""

from reidsort.data.synthetic.market import (
    GENERATOR_VERSION,
    META_FILENAME,
    ensure_synthetic_market1501,
    read_synthetic_meta,
    write_market1501,
)
from reidsort.data.synthetic.person import (
    BodyShape,
    BodySide,
    Facing,
    HairStyle,
    LowerGarment,
    LowerKind,
    PersonAppearance,
    SleeveLength,
    UpperGarment,
    UpperPattern,
    draw_person,
)
from reidsort.data.synthetic.scene import (
    CameraStyle,
    Occluder,
    apply_camera_effects,
    render_background,
    render_person_crop,
)

__all__ = [
    "GENERATOR_VERSION",
    "META_FILENAME",
    "BodyShape",
    "BodySide",
    "CameraStyle",
    "Facing",
    "HairStyle",
    "LowerGarment",
    "LowerKind",
    "Occluder",
    "PersonAppearance",
    "SleeveLength",
    "UpperGarment",
    "UpperPattern",
    "apply_camera_effects",
    "draw_person",
    "ensure_synthetic_market1501",
    "read_synthetic_meta",
    "render_background",
    "render_person_crop",
    "write_market1501",
]
