"""The optional live window (``display=true``): q or Esc stops the run."""

from __future__ import annotations

import os
import re
import sys

import cv2
import numpy as np

from reidsort.utils.errors import ReidsortError

QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27})  # 27 = Esc
HEADLESS_HINT = (
    "install a GUI build (pip install opencv-python, not opencv-python-headless) on a machine "
    "with a display, or run with display=false (the annotated video is still written)"
)


def gui_backend() -> str:
    """OpenCV's GUI backend from its build information ('NONE' for headless builds)."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1) if match else "NONE"


def check_display_available() -> None:
    """Raise a one-line :class:`ReidsortError` if no window can be opened here."""
    if gui_backend().upper() == "NONE":
        raise ReidsortError(
            f"display=true but this OpenCV build has no GUI support; {HEADLESS_HINT}")
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        # checked before OpenCV tries: its Qt backend aborts the process without a display
        raise ReidsortError(f"display=true but no display is available ($DISPLAY is not set); "
                            f"{HEADLESS_HINT}")


class LiveWindow:
    """One OpenCV window showing the annotated frames."""

    def __init__(self, title: str) -> None:
        check_display_available()
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as error:
            raise ReidsortError(f"display=true but OpenCV cannot open a window ({error.msg}); "
                                f"{HEADLESS_HINT}") from None

    def show(self, image: np.ndarray) -> bool:
        """Show a frame; False once the user pressed q or Esc (or closed the window)."""
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS:
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
