"""Play reply audio on an output device, and stop it at once for barge-in.

The stream runs in callback mode and reads from a buffer that play() fills.
play() returns once the audio is queued, and drain() waits until the audio
has been heard. stop() empties the buffer and aborts the stream. The abort
drops the audio that PortAudio and the sound server still buffer, about one
stream latency, which would otherwise still be heard.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any

import numpy as np
import soxr

from assistant.audio import to_float32, to_int16
from assistant.devices import (
    PORTAUDIO,
    AudioDeviceError,
    LogThrottle,
    PortAudioHost,
    RetryDelay,
    StreamFormat,
    find_device,
    negotiate_format,
)

_LOGGER = logging.getLogger(__name__)

# With nothing to play for this long, the stream stops itself so that the
# sound server can suspend the device. The next play() starts it again.
IDLE_STOP_SECONDS = 2.0
# Output latency asked of PortAudio. The callback needs the GIL, which the model
# stages hold for short stretches; a larger buffer rides over them. stop()
# aborts the stream, which drops this buffer, so it does not delay barge-in.
OUTPUT_LATENCY_SECONDS = 0.1
# Time drain() waits beyond the stream latency for the last buffer to be heard.
DRAIN_MARGIN_SECONDS = 0.05
# A running stream with queued audio and no callback for this long is lost.
LOST_AFTER_SECONDS = 2.0
DRAIN_POLL_SECONDS = 0.01
LOG_INTERVAL_SECONDS = 30.0


class SpeakerSink:
    """Reply audio played on an output device.

    The constructor fails with AudioDeviceError when the device cannot be
    found. The stream opens at the first play(), at that audio's rate if the
    device accepts it. A lost device is reopened at a later play(), with
    growing delays between attempts; the audio played meanwhile is dropped.
    """

    def __init__(self, device: str | int = "", rate_hz: int = 0, host: PortAudioHost = PORTAUDIO) -> None:
        self._spec = device
        self._forced_rate_hz = rate_hz
        self._host = host
        with host.lock:
            found = find_device(host.sounddevice(), device, "output")
        self.name = found.name
        self.underflows = 0

        # Shared with PortAudio's callback thread; guarded by _lock.
        self._lock = threading.Lock()
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0
        self._queued = 0
        self._last_callback = 0.0
        self._idle_since: float | None = None
        self._idle_stopping = False
        self._expect_finish = False

        # Used with host.lock held.
        self._stream: Any = None
        self._format: StreamFormat | None = None
        self._callback_stop: type[Exception] = Exception
        self._running = False
        self._lost: str | None = None
        self._failures = 0
        self._retry = RetryDelay()
        self._next_attempt = 0.0

        # Used in the event loop: play() and stop() take turns, and each stop()
        # starts a new generation, so that audio queued for an older one is dropped.
        self._control = asyncio.Lock()
        self._generation = 0

        self._failure_log = LogThrottle(LOG_INTERVAL_SECONDS)
        self._underflow_log = LogThrottle(LOG_INTERVAL_SECONDS)
        self._logged_underflows = 0
        self._dropped_seconds = 0.0
        host.register(self)

    @property
    def latency_seconds(self) -> float:
        """Output latency of the open stream: how long a sample takes from the callback to the device."""
        stream = self._stream
        return stream.latency if stream is not None else 0.0

    # The pipeline's side

    async def play(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        """Queue `samples` (int16 mono) for playback and return without waiting for them to be heard.

        Audio of a play() that was called before a stop() is dropped, even if
        it is queued after the stop() began.
        """
        if len(samples) == 0:
            return
        generation = self._generation
        async with self._control:
            if generation != self._generation:
                return
            if self._stream is None or self._lost is not None or not self._running:
                if not await asyncio.to_thread(self._ensure_running, sample_rate_hz):
                    self._dropped_seconds += len(samples) / sample_rate_hz
                    return
            stream_rate_hz = self._format.rate_hz
            if sample_rate_hz != stream_rate_hz:
                samples = to_int16(soxr.resample(to_float32(samples), sample_rate_hz, stream_rate_hz))
            with self._lock:
                self._chunks.append(np.ascontiguousarray(samples, dtype=np.int16))
                self._queued += len(samples)
                # The callback may have stopped the idle stream since the check above.
                restart = self._idle_stopping
            if restart:
                await asyncio.to_thread(self._ensure_running, sample_rate_hz)

    async def drain(self) -> None:
        """Wait until the queued audio has been heard, so that the end of a reply is not cut."""
        started = time.monotonic()
        while True:
            with self._lock:
                queued = self._queued
                last_callback = self._last_callback
            if queued == 0:
                break
            silent = time.monotonic() - max(last_callback, started)
            if self._lost is None and self._running and silent >= LOST_AFTER_SECONDS:
                self._mark_lost(f"no audio requested for {silent:.1f} s")
            if self._lost is not None or not self._running:
                self._clear()
                return
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        self._log_underflows()
        if self._stream is not None and self._running:
            # The callback has handed over the last samples; they are heard one stream latency later.
            await asyncio.sleep(self.latency_seconds + DRAIN_MARGIN_SECONDS)

    async def stop(self) -> None:
        """Silence the speaker now: drop the queued audio and what the stream still holds."""
        self._generation += 1
        async with self._control:
            self._clear()
            if self._stream is not None and self._running:
                await asyncio.to_thread(self._abort)

    async def close(self) -> None:
        self._generation += 1
        async with self._control:
            self._clear()
            if self._stream is not None:
                await asyncio.to_thread(self._close_stream)
        if self._dropped_seconds:
            _LOGGER.warning("%.1f s of reply audio were dropped while the speaker was unavailable", self._dropped_seconds)

    # PortAudio's callback thread

    def _on_output(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self.underflows += 1
        now = time.monotonic()
        with self._lock:
            self._last_callback = now
            filled = 0
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                count = min(frames - filled, len(chunk) - self._offset)
                # A mono chunk fills every channel of the stream.
                outdata[filled:filled + count] = chunk[self._offset:self._offset + count, np.newaxis]
                filled += count
                self._offset += count
                if self._offset == len(chunk):
                    self._chunks.popleft()
                    self._offset = 0
            self._queued -= filled
            if filled:
                self._idle_since = None
            elif self._idle_since is None:
                self._idle_since = now
            stop_now = not filled and now - self._idle_since >= IDLE_STOP_SECONDS
            if stop_now:
                self._idle_stopping = True
        outdata[filled:] = 0
        if stop_now:
            raise self._callback_stop

    def _on_finished(self) -> None:
        with self._lock:
            expected = self._expect_finish or self._idle_stopping
        if not expected:
            self._mark_lost("the stream stopped")

    # Stream lifecycle, in worker threads

    def _ensure_running(self, sample_rate_hz: int) -> bool:
        """Open and start the stream if needed; return False while the device is unavailable."""
        with self._host.lock:
            if self._stream is not None and self._lost is not None:
                self._close_stream()
            if self._stream is None and not self._open(sample_rate_hz):
                return False
            with self._lock:
                restart = self._idle_stopping or not self._running
            if not restart:
                return True
            return self._start()

    def _open(self, sample_rate_hz: int) -> bool:
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        sd = self._host.sounddevice()

        try:
            if self._failures:
                # Restart PortAudio so that it lists a device or sound server that came back.
                self._host.reinitialize(self)
            device = find_device(sd, self._spec, "output")
            stream_format = negotiate_format(sd, device, "output", sample_rate_hz, self._forced_rate_hz)
            stream = sd.OutputStream(
                device=device.index, samplerate=stream_format.rate_hz, channels=stream_format.channels,
                dtype="int16", latency=OUTPUT_LATENCY_SECONDS, callback=self._on_output,
                finished_callback=self._on_finished,
            )
        except (AudioDeviceError, sd.PortAudioError, ValueError) as error:
            self._failures += 1
            wait = self._retry.next()
            self._next_attempt = now + wait
            if self._failure_log.ready():
                _LOGGER.warning(
                    "Cannot open the speaker (attempt %d): %s; dropping audio, next attempt in %.1f s",
                    self._failures, error, wait,
                )
            return False

        if self._failures:
            _LOGGER.info("Speaker %r is back after %d failed attempts", device.name, self._failures)
        self._failures = 0
        self._retry.reset()
        self._failure_log.reset()
        self._stream = stream
        self._format = stream_format
        self._callback_stop = sd.CallbackStop
        self._running = False
        self._lost = None
        self.name = device.name
        _LOGGER.info(
            "Playing to %r (device %d) at %d Hz, %d channels, latency %.3f s",
            device.name, device.index, stream_format.rate_hz, stream_format.channels, stream.latency,
        )
        return True

    def _start(self) -> bool:
        stream = self._stream
        sd = self._host.sounddevice()
        with self._lock:
            idle_stopping = self._idle_stopping
            self._expect_finish = True
        try:
            if idle_stopping:
                # A stream ended by its callback must be stopped before it can start again.
                stream.stop()
            with self._lock:
                self._idle_stopping = False
                self._idle_since = None
                self._expect_finish = False
                self._last_callback = time.monotonic()
            stream.start()
        except sd.PortAudioError as error:
            self._mark_lost(f"the stream did not start: {error}")
            self._close_stream()
            return False
        self._running = True
        return True

    def _abort(self) -> None:
        with self._host.lock:
            if self._stream is None:
                return
            with self._lock:
                self._expect_finish = True
            self._stream.abort()
            self._running = False

    def _close_stream(self) -> None:
        with self._host.lock:
            stream, self._stream = self._stream, None
            self._running = False
            if stream is None:
                return
            with self._lock:
                self._expect_finish = True
            stream.abort()
            stream.close()
            with self._lock:
                self._expect_finish = False
                self._idle_stopping = False
                self._idle_since = None

    # StreamUser, called by PortAudioHost.reinitialize with its lock held

    def release_stream(self) -> None:
        self._clear()
        self._close_stream()

    def busy(self) -> bool:
        with self._lock:
            return self._queued > 0

    # Helpers

    def _clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._offset = 0
            self._queued = 0

    def _mark_lost(self, reason: str) -> None:
        if self._lost is None:
            _LOGGER.warning("Speaker %r lost: %s; reopening it at the next playback", self.name, reason)
        self._lost = reason
        self._running = False

    def _log_underflows(self) -> None:
        if self.underflows != self._logged_underflows and self._underflow_log.ready():
            _LOGGER.warning(
                "Speaker output underflowed %d times since start: gaps were heard; the CPU may be overloaded",
                self.underflows,
            )
            self._logged_underflows = self.underflows
