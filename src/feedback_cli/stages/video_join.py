"""Joining a storyboard's picked clips, in order, into one video (stage 5's last step).

A stream copy (packets remuxed with rebased timestamps, nothing re-encoded) when every clip has the
same codec, codec parameters, size, frame rate and pixel format; otherwise every clip is decoded and
re-encoded to the first clip's size and frame rate (H.264 when PyAV's FFmpeg has libx264, else MPEG-4
Part 2). Only the video streams are joined.

The result is checked by decoding it: its frame count must equal the sum of the clips' (each clip
counted at the output frame rate, which is its own frame count whenever the rates agree) and its
duration the sum of theirs, within one frame. Nothing is written unless the check passes, and the
clips themselves are only read.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from feedback_cli.errors import StageFailed
from feedback_cli.media_checks import MediaInvalid
from feedback_cli.runstate.models import StageRecord
from feedback_cli.runstate.runfolder import RunFolder

FINAL_VIDEO_NAME = "final.mp4"
ASSEMBLY_SCHEMA_VERSION = 1


class AssemblyError(StageFailed):
    """The clips could not be joined, or the joined file failed its check; the clips are untouched."""


class ClipFacts(BaseModel):
    path: str
    codec: str
    width: int
    height: int
    fps: float
    pix_fmt: str
    frames: int
    duration_s: float


class Assembly(BaseModel):
    """What the join did and what it checked; kept in the stage's outputs (and so in the trace)."""

    schema_version: int = ASSEMBLY_SCHEMA_VERSION
    path: str
    mode: Literal["stream_copy", "reencode"]
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    expected_frames: int
    expected_duration_s: float
    clips: list[ClipFacts]


class _Probe:
    """One clip's stream facts plus what decoding it found (frames, first and last timestamps)."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise MediaInvalid("no video stream")
                stream = container.streams.video[0]
                ctx = stream.codec_context
                self.codec = ctx.name
                self.width, self.height = ctx.width, ctx.height
                self.pix_fmt = ctx.pix_fmt or ""
                self.extradata = bytes(ctx.extradata or b"")
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                if not rate:
                    raise MediaInvalid("no frame rate")
                self.rate = Fraction(rate)
                times = [frame.time for frame in container.decode(stream) if frame.time is not None]
        except MediaInvalid as exc:
            raise AssemblyError(f"cannot join {path.name}: {exc}") from None
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise AssemblyError(f"cannot join {path.name}: video cannot be decoded ({exc})") from None
        if not times:
            raise AssemblyError(f"cannot join {path.name}: video has no frames")
        self.frames = len(times)
        self.duration = _span(times, self.rate)

    @property
    def frame_s(self) -> float:
        return float(1 / self.rate)

    def copy_key(self) -> tuple[object, ...]:
        return (self.codec, self.width, self.height, self.rate, self.pix_fmt, self.extradata)

    def facts(self, label: str) -> ClipFacts:
        return ClipFacts(
            path=label,
            codec=self.codec,
            width=self.width,
            height=self.height,
            fps=round(float(self.rate), 6),
            pix_fmt=self.pix_fmt,
            frames=self.frames,
            duration_s=round(self.duration, 6),
        )


def _span(times: list[float], rate: Fraction) -> float:
    """A clip lasts from its first frame's time to its last frame's end (one frame after it starts)."""
    return max(times) - min(times) + float(1 / rate)


def frames_at(probe: _Probe, rate: Fraction) -> int:
    """How many frames a clip contributes when it is shown at `rate` (its own count at its own rate)."""
    return probe.frames if probe.rate == rate else max(1, round(probe.duration * float(rate)))


def join_clips(clips: list[Path], labels: list[str] | None = None) -> tuple[bytes, Assembly]:
    """Join `clips` in order; return the MP4 bytes and what was done and checked. Raises AssemblyError."""
    if not clips:
        raise AssemblyError("no clips to join")
    labels = labels or [str(p) for p in clips]
    probes = [_Probe(path) for path in clips]
    first = probes[0]
    same = all(p.copy_key() == first.copy_key() for p in probes)
    import av

    try:
        data = _stream_copy(probes) if same else _reencode(probes)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AssemblyError(f"joining the clips failed: {exc}") from None
    mode: Literal["stream_copy", "reencode"] = "stream_copy" if same else "reencode"
    expected_frames = sum(frames_at(p, first.rate) for p in probes)
    expected_duration = sum(p.duration for p in probes)
    try:
        out = _decode_facts(data)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AssemblyError(f"the joined video cannot be decoded ({exc})") from None
    codec, width, height, rate, frames, duration = out
    if frames != expected_frames:
        raise AssemblyError(
            f"the joined video has {frames} frames, the clips have {expected_frames} together ({mode}); "
            "nothing written, the clips stay"
        )
    if abs(duration - expected_duration) > float(1 / rate) + 1e-6:
        raise AssemblyError(
            f"the joined video lasts {duration:.3f}s, the clips {expected_duration:.3f}s together ({mode}); "
            "nothing written, the clips stay"
        )
    assembly = Assembly(
        path="",
        mode=mode,
        codec=codec,
        width=width,
        height=height,
        fps=round(float(rate), 6),
        frames=frames,
        duration_s=round(duration, 6),
        expected_frames=expected_frames,
        expected_duration_s=round(expected_duration, 6),
        clips=[p.facts(label) for p, label in zip(probes, labels, strict=True)],
    )
    return data, assembly


def forget_final_video(record: StageRecord) -> bool:
    """Drop the record's final video (outputs and artifact) before it is rebuilt; True if there was one.

    The caller checkpoints in between when this returns True: a crash while the new file is written must
    not leave a checkpoint whose recorded sha256 no longer matches the file (resume would refuse it)."""
    relative = f"{record.folder}/{FINAL_VIDEO_NAME}"
    had = any(a.path == relative for a in record.artifacts) or "final_video" in record.outputs
    record.artifacts = [a for a in record.artifacts if a.path != relative]
    record.outputs.pop("final_video", None)
    record.outputs.pop("assembly", None)
    return had


def assemble_picks(folder: RunFolder, record: StageRecord, clip_key: str = "best_videos") -> Assembly:
    """Join the record's current per-clip picks into `{stage folder}/final.mp4` and record it.

    Called at the end of the storyboard video stage and again whenever its picks change before the run
    goes on (a human pick or a regenerated round at review): the file always shows the current picks.
    The clips are only read; a failed join leaves no final video recorded (never a stale one)."""
    paths = [p for p in record.outputs.get(clip_key) or [] if isinstance(p, str)]
    forget_final_video(record)
    data, assembly = join_clips([folder.path(p) for p in paths], labels=paths)
    relative = f"{record.folder}/{FINAL_VIDEO_NAME}"
    artifact = folder.write_bytes(relative, data, "video")
    assembly.path = relative
    record.artifacts.append(artifact)
    record.outputs["final_video"] = relative
    record.outputs["assembly"] = assembly.model_dump(mode="json")
    return assembly


def describe(assembly: Assembly) -> str:
    how = "stream copy" if assembly.mode == "stream_copy" else f"re-encoded to {assembly.codec}"
    return (
        f"{assembly.path}: {len(assembly.clips)} clips joined ({how}), {assembly.frames} frames, "
        f"{assembly.duration_s:.2f}s, {assembly.width}x{assembly.height} at {assembly.fps:g} fps"
    )


def _decode_facts(data: bytes) -> tuple[str, int, int, Fraction, int, float]:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate)
        times = [frame.time for frame in container.decode(stream) if frame.time is not None]
        if not times:
            raise ValueError("no frames")
        ctx = stream.codec_context
        return ctx.name, ctx.width, ctx.height, rate, len(times), _span(times, rate)


def _stream_copy(probes: list[_Probe]) -> bytes:
    """Remux every clip's video packets into one stream, each clip's timestamps moved to start where the
    previous clip ended (pts and dts by the same amount, so B-frame reordering is kept)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as output:
        out_stream = None
        offset = Fraction(0)  # seconds: where the next clip starts
        last_dts: int | None = None
        for probe in probes:
            with av.open(str(probe.path)) as container:
                in_stream = container.streams.video[0]
                if out_stream is None:
                    from_template = getattr(output, "add_stream_from_template", None)  # PyAV >= 13
                    out_stream = from_template(in_stream) if from_template else output.add_stream(template=in_stream)
                    out_stream.time_base = in_stream.time_base
                in_tb = Fraction(in_stream.time_base)
                packets = [p for p in container.demux(in_stream) if p.size > 0 and p.pts is not None]
                if not packets:
                    raise ValueError(f"{probe.path.name} has no packets")
                start = min(p.pts for p in packets)
                for packet in packets:
                    out_tb = Fraction(out_stream.time_base)
                    shift = offset - start * in_tb
                    pts = round((packet.pts * in_tb + shift) / out_tb)
                    dts = round(((packet.dts if packet.dts is not None else packet.pts) * in_tb + shift) / out_tb)
                    if last_dts is not None and dts <= last_dts:
                        dts = last_dts + 1  # the muxer needs strictly rising dts across the seam
                    pts = max(pts, dts)
                    packet.pts, packet.dts = pts, dts
                    if packet.duration:
                        packet.duration = round(packet.duration * in_tb / out_tb)
                    packet.stream = out_stream
                    output.mux(packet)
                    last_dts = dts
            offset += Fraction(probe.frames) / probe.rate
    return buf.getvalue()


def _encoder_name() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _reencode(probes: list[_Probe]) -> bytes:
    """Decode every clip and encode one stream at the first clip's size and frame rate; a clip at another
    rate is resampled in time (each output frame shows the clip's latest frame at that moment), so its
    duration is kept."""
    import av

    first = probes[0]
    rate = first.rate
    width, height = first.width - first.width % 2, first.height - first.height % 2  # 4:2:0 needs even sizes
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as output:
        stream = output.add_stream(_encoder_name(), rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        frame_tb = 1 / rate
        stream.time_base = frame_tb
        if stream.codec_context.name == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = 8_000_000
        stream.codec_context.options = {"threads": "1"}
        index = 0

        def emit(frame: av.VideoFrame) -> None:
            nonlocal index
            out = frame.reformat(width=width, height=height, format="yuv420p")
            out.pts = index
            out.time_base = frame_tb
            index += 1
            for packet in stream.encode(out):
                output.mux(packet)

        for probe in probes:
            wanted = frames_at(probe, rate)
            made = 0
            with av.open(str(probe.path)) as container:
                held = None
                start: float | None = None
                for frame in container.decode(container.streams.video[0]):
                    if frame.time is None:
                        continue
                    start = frame.time if start is None else start
                    t = frame.time - start
                    # every output moment before this frame shows the frame held until now
                    while held is not None and made < wanted and made / float(rate) < t - 1e-9:
                        emit(held)
                        made += 1
                    held = frame
                while held is not None and made < wanted:
                    emit(held)
                    made += 1
        for packet in stream.encode():
            output.mux(packet)
    return buf.getvalue()
