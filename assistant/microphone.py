"""Capture from an input device as 16 kHz mono frames, reopening the device when it is lost.

A device that refuses 16 kHz is opened at a rate it supports and resampled
with soxr. Channels are averaged into one.

PortAudio reports a lost device in one of two ways, depending on how the
stream reaches it. Behind PulseAudio (16.1, through the ALSA pulse plugin of
PortAudio 19.6), a stream tied to one source stops within about 25 ms of the
source's removal: it turns inactive and its finished callback runs, with no
exception. A stream on the server's default source is moved to another
source instead and reports nothing. The watchdog also reopens a stream that
claims to be active but delivers no audio for LOST_AFTER_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import soxr

from assistant.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ, to_float32, to_int16
from assistant.devices import (
    PORTAUDIO,
    AudioDeviceError,
    DeviceUnavailableError,
    LogThrottle,
    PortAudioHost,
    RetryDelay,
    StreamFormat,
    find_device,
    negotiate_format,
)

_LOGGER = logging.getLogger(__name__)

# A stream that delivers nothing for this long is taken as lost and reopened,
# so that a stall is noticed within 2 s. A working stream delivers a block
# every 80 ms.
LOST_AFTER_SECONDS = 1.5
# How often the consumer checks the stream while no audio arrives.
CHECK_INTERVAL_SECONDS = 0.1
# 16 s of audio: a consumer that stalls longer loses the oldest blocks.
QUEUE_MAX_BLOCKS = 200
LOG_INTERVAL_SECONDS = 30.0


class _Capture:
    """One open input stream and the blocks its callback delivered.

    The callbacks run on PortAudio's thread and hand everything to the event
    loop with call_soon_threadsafe.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stream_format: StreamFormat, device_name: str,
        stream_error: type[Exception],
    ) -> None:
        self.loop = loop
        self.stream_error = stream_error
        self.stream_format = stream_format
        self.device_name = device_name
        self.stream: Any = None
        self.blocks: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=QUEUE_MAX_BLOCKS)
        self.last_callback = time.monotonic()
        self.overflows = 0
        self.dropped_blocks = 0
        self.blocks_received = 0
        self.finished = False
        self.released = False
        self.closing = False
        self._resampler = None
        if stream_format.rate_hz != SAMPLE_RATE_HZ:
            self._resampler = soxr.ResampleStream(stream_format.rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
        self._pending = np.zeros(0, dtype=np.int16)

    # PortAudio's thread

    def on_audio(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self.last_callback = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        self._call_in_loop(self._put, indata.copy())

    def on_finished(self) -> None:
        if not self.closing:
            self._call_in_loop(self._mark_finished)

    def _call_in_loop(self, function: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:
            pass  # the event loop is closed: the daemon is exiting

    # The event loop

    def _put(self, block: np.ndarray | None) -> None:
        if self.blocks.full():
            self.blocks.get_nowait()
            self.dropped_blocks += 1
        self.blocks.put_nowait(block)
        if block is not None:
            self.blocks_received += 1

    def _mark_finished(self) -> None:
        self.finished = True
        self._put(None)

    def wake_consumer(self) -> None:
        self._call_in_loop(self._put, None)

    def problem(self) -> str | None:
        """Describe why this stream must be reopened, or return None while it works."""
        if self.released:
            return "PortAudio was restarted"
        if self.finished:
            return "the stream stopped"
        try:
            active = self.stream.active
        except self.stream_error as error:
            return f"the stream failed: {error}"
        if not active:
            return "the stream stopped"
        silent = time.monotonic() - self.last_callback
        if silent >= LOST_AFTER_SECONDS:
            return f"no audio for {silent:.1f} s"
        return None

    def to_frames(self, block: np.ndarray) -> list[np.ndarray]:
        """Average the channels, resample to 16 kHz and cut into frames of FRAME_SAMPLES."""
        if block.shape[1] == 1:
            mono = block[:, 0]
        else:
            mono = to_int16(to_float32(block).mean(axis=1))
        if self._resampler is not None:
            mono = to_int16(self._resampler.resample_chunk(to_float32(mono)))
        self._pending = np.concatenate([self._pending, mono])
        count = len(self._pending) // FRAME_SAMPLES
        frames = [self._pending[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] for i in range(count)]
        self._pending = self._pending[count * FRAME_SAMPLES:]
        return frames


class MicrophoneSource:
    """Frames of 16 kHz mono int16 from an input device.

    The constructor fails with AudioDeviceError when PortAudio lists no such
    device or the device accepts no usable format, so that a daemon without
    sound fails at start. A listed device that fails to open is only logged:
    frames() opens the device, reopens it with growing delays when it is
    lost, and resumes once it is back. Meanwhile no frames arrive.
    """

    paced = True

    def __init__(self, device: str | int = "", rate_hz: int = 0, host: PortAudioHost = PORTAUDIO) -> None:
        self._spec = device
        self._forced_rate_hz = rate_hz
        self._host = host
        with host.lock:
            sd = host.sounddevice()
            found = find_device(sd, device, "input")
            try:
                negotiate_format(sd, found, "input", SAMPLE_RATE_HZ, rate_hz)
            except DeviceUnavailableError as error:
                _LOGGER.warning("%s; the daemon will keep trying to open it", error)
        self.name = found.name
        self.overflows = 0
        self.dropped_blocks = 0
        self._capture: _Capture | None = None
        # When the device was lost, until a reopened stream delivers audio again.
        self._lost_since: float | None = None
        self._reopen_attempts = 0
        self._stall_delay = RetryDelay()
        self._loss_log = LogThrottle(LOG_INTERVAL_SECONDS)
        self._overflow_log = LogThrottle(LOG_INTERVAL_SECONDS)
        self._logged_overflows = 0
        self._logged_dropped = 0
        host.register(self)

    async def frames(self) -> AsyncIterator[np.ndarray]:
        try:
            while True:
                if self._capture is None:
                    await self._open_until_available()
                capture = self._capture
                try:
                    block = await asyncio.wait_for(capture.blocks.get(), CHECK_INTERVAL_SECONDS)
                except TimeoutError:
                    block = None
                if block is not None:
                    if self._lost_since is not None:
                        self._log_return()
                    self._log_losses(capture)
                    for frame in capture.to_frames(block):
                        yield frame
                    continue
                problem = capture.problem()
                if problem is not None:
                    await self._drop_capture(capture, problem)
        finally:
            await self.close()

    # Opening and reopening

    async def _open_until_available(self) -> None:
        """Open the device, retrying with growing delays until it opens."""
        loop = asyncio.get_running_loop()
        delay = RetryDelay()
        failure_log = LogThrottle(LOG_INTERVAL_SECONDS)
        attempt = 0
        while True:
            attempt += 1
            self._reopen_attempts += 1
            try:
                # From the second attempt on, restart PortAudio so that it lists a device or
                # sound server that came back.
                await asyncio.to_thread(self._open, loop, attempt > 1)
            except AudioDeviceError as error:
                wait = delay.next()
                if failure_log.ready():
                    _LOGGER.warning(
                        "Cannot open the microphone (attempt %d): %s; retrying in %.1f s", attempt, error, wait
                    )
                await asyncio.sleep(wait)
                continue
            return

    def _open(self, loop: asyncio.AbstractEventLoop, reinitialize: bool) -> None:
        host = self._host
        with host.lock:
            if reinitialize:
                host.reinitialize(self)
            sd = host.sounddevice()
            try:
                device = find_device(sd, self._spec, "input")
                stream_format = negotiate_format(sd, device, "input", SAMPLE_RATE_HZ, self._forced_rate_hz)
                capture = _Capture(loop, stream_format, device.name, sd.PortAudioError)
                # Blocks of 80 ms at the device rate, so that each gives about one frame.
                block = round(FRAME_SAMPLES * stream_format.rate_hz / SAMPLE_RATE_HZ)
                capture.stream = sd.InputStream(
                    device=device.index, samplerate=stream_format.rate_hz, channels=stream_format.channels,
                    dtype="int16", blocksize=block, callback=capture.on_audio,
                    finished_callback=capture.on_finished,
                )
            except (sd.PortAudioError, ValueError) as error:
                raise AudioDeviceError(f"cannot open input device {self._spec or 'default'!r}: {error}") from error
            try:
                capture.stream.start()
            except sd.PortAudioError as error:
                capture.closing = True
                capture.stream.close()
                raise AudioDeviceError(f"cannot start input device {device.name!r}: {error}") from error
            self._capture = capture
            self.name = device.name
        conversion = []
        if stream_format.channels > 1:
            conversion.append(f"{stream_format.channels} channels averaged")
        if stream_format.rate_hz != SAMPLE_RATE_HZ:
            conversion.append(f"resampled to {SAMPLE_RATE_HZ} Hz")
        _LOGGER.info(
            "Capturing from %r (device %d) at %d Hz, %d channels%s",
            device.name, device.index, stream_format.rate_hz, stream_format.channels,
            f" ({', '.join(conversion)})" if conversion else "",
        )

    async def _drop_capture(self, capture: _Capture, problem: str) -> None:
        await asyncio.to_thread(self._close_capture, capture)
        if capture.released:
            _LOGGER.info("Reopening the microphone: %s", problem)
            return
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            self._reopen_attempts = 0
        # A stream that stalls again after a reopen is logged once per interval.
        level = logging.WARNING if self._loss_log.ready() else logging.DEBUG
        _LOGGER.log(level, "Microphone %r lost: %s; reopening it", capture.device_name, problem)
        if capture.blocks_received == 0:
            # The stream opened but never delivered audio, so reopening at once would only stall again.
            await asyncio.sleep(self._stall_delay.next())

    def _log_return(self) -> None:
        _LOGGER.info(
            "Microphone %r is back after %.1f s and %d reopen attempts",
            self.name, time.monotonic() - self._lost_since, self._reopen_attempts,
        )
        self._lost_since = None
        self._stall_delay.reset()
        self._loss_log.reset()

    def _close_capture(self, capture: _Capture) -> None:
        with self._host.lock:
            capture.closing = True
            if capture.stream is not None and not capture.released:
                capture.stream.abort()
                capture.stream.close()
            if self._capture is capture:
                self._capture = None
                self.overflows += capture.overflows
                self.dropped_blocks += capture.dropped_blocks

    # StreamUser, called by PortAudioHost.reinitialize with its lock held

    def release_stream(self) -> None:
        capture = self._capture
        if capture is None or capture.released:
            return
        capture.closing = True
        capture.stream.abort()
        capture.stream.close()
        capture.released = True
        capture.wake_consumer()

    def busy(self) -> bool:
        # A restart costs the microphone about 0.1 s of audio, which the pipeline tolerates.
        return False

    # Logs

    def _log_losses(self, capture: _Capture) -> None:
        """Log input overflows and dropped blocks, at most once per LOG_INTERVAL_SECONDS."""
        overflows = self.overflows + capture.overflows
        dropped = self.dropped_blocks + capture.dropped_blocks
        if (overflows, dropped) == (self._logged_overflows, self._logged_dropped):
            return
        if not self._overflow_log.ready():
            return
        _LOGGER.warning(
            "Microphone input lost audio: %d overflows (PortAudio) and %d blocks dropped (pipeline behind) "
            "since start; the CPU may be overloaded",
            overflows, dropped,
        )
        self._logged_overflows, self._logged_dropped = overflows, dropped

    async def close(self) -> None:
        capture = self._capture
        if capture is not None:
            await asyncio.to_thread(self._close_capture, capture)
