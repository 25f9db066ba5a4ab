"""Episode videos (mp4 through imageio-ffmpeg, which ships its own ffmpeg binary)."""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: int = 20) -> Path:
    """Write (T, H, W, 3) uint8 frames to ``path`` (.mp4 or .gif); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, dtype=np.uint8)
    if path.suffix == ".gif":
        imageio.mimsave(path, list(frames), duration=1.0 / fps, loop=0)
    else:
        # 128 px frames are not multiples of 16 for every codec block; macro_block_size=1 keeps them exact
        imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path
