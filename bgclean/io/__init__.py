"""Reading and writing videos, frame folders and images; reading external masks.

This is the only package that sees BGR channel order, uint8/uint16 arrays and ffmpeg. Frames leave it
as ``Frame`` records holding RGB arrays (H,W,3) of uint8 or uint16; alpha and grayscale are carried
on the side so the writer can restore them. Video goes through ffmpeg pipes (the binary that the
imageio-ffmpeg wheel ships), with commands built by ffmpeg-python as argument lists.

``media``    probing inputs; the ``Frame`` and ``MediaInfo`` records; timestamps
``reading``  frames from videos, folders and images; external masks
``outputs``  the output's kind and default path; checks before anything is written
``staging``  atomic outputs: staging names, discard on a signal, sweeping what a killed run left
``writers``  image, folder and video writers (rate, timestamps and audio kept)
"""

from bgclean.io.media import (
    DEFAULT_FOLDER_FPS,
    IMAGE_EXTS,
    VIDEO_EXTS,
    WRITABLE_VIDEO_EXTS,
    Frame,
    MediaInfo,
    count_video_frames,
    exact_fps,
    ffmpeg_exe,
    frame_timestamps,
    natural_key,
    probe,
    variable_rate,
)
from bgclean.io.outputs import (
    check_output,
    default_output,
    frame_output_names,
    output_kind,
)
from bgclean.io.reading import (
    MaskSource,
    read_frames,
    read_image,
)
from bgclean.io.staging import (
    check_writable,
    committed,
    discard,
    discard_staged,
    own_process,
    release_process,
    stage,
    staging_prefix,
    sweep_stale_partials,
    write_bytes_atomic,
)
from bgclean.io.writers import (
    FolderWriter,
    ImageWriter,
    VideoWriter,
    encode_image,
    mask_png,
    open_writer,
    write_mask_png,
)

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "FolderWriter",
    "Frame",
    "IMAGE_EXTS",
    "ImageWriter",
    "MaskSource",
    "MediaInfo",
    "VIDEO_EXTS",
    "VideoWriter",
    "WRITABLE_VIDEO_EXTS",
    "check_output",
    "check_writable",
    "committed",
    "count_video_frames",
    "default_output",
    "discard",
    "discard_staged",
    "encode_image",
    "exact_fps",
    "ffmpeg_exe",
    "frame_output_names",
    "frame_timestamps",
    "mask_png",
    "natural_key",
    "open_writer",
    "output_kind",
    "own_process",
    "probe",
    "read_frames",
    "read_image",
    "release_process",
    "stage",
    "staging_prefix",
    "sweep_stale_partials",
    "variable_rate",
    "write_bytes_atomic",
    "write_mask_png",
]
