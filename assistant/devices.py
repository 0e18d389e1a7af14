"""Microphone and speaker through sounddevice (PortAudio).

Devices that refuse 16 kHz capture or the voice's playback rate are opened at a
rate they support, and audio is resampled with soxr.
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
from assistant.config import AudioSettings

_LOGGER = logging.getLogger(__name__)

_QUEUE_MAX_FRAMES = 200  # 16 s of audio: a consumer that stalls longer loses frames
_OVERFLOW_LOG_INTERVAL_SECONDS = 30.0


class AudioDeviceError(Exception):
    """No usable sound device, or no sound server to reach."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as error:
        raise AudioDeviceError(
            f"PortAudio is not available ({error}); install it with `apt-get install libportaudio2`"
        ) from error
    return sounddevice


def find_device(spec: str | int, kind: str) -> int | None:
    """Return the index of the device matching `spec` (index or name substring), or None for the default."""
    sd = _sounddevice()
    if spec == "" or spec is None:
        return None
    channels_key = "max_input_channels" if kind == "input" else "max_output_channels"
    devices = sd.query_devices()
    if isinstance(spec, int) or str(spec).isdigit():
        index = int(spec)
        if index >= len(devices) or devices[index][channels_key] < 1:
            raise AudioDeviceError(f"no {kind} device with index {index}; run `assistant devices` to list them")
        return index
    for index, device in enumerate(devices):
        if str(spec).lower() in device["name"].lower() and device[channels_key] > 0:
            return index
    raise AudioDeviceError(f"no {kind} device whose name contains {spec!r}; run `assistant devices` to list them")


def _supported_rate(sd: Any, device: int | None, kind: str, wanted_hz: int, channels: int) -> int:
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device, samplerate=wanted_hz, channels=channels, dtype="int16")
        return wanted_hz
    except sd.PortAudioError:
        info = sd.query_devices(device, kind)
        return int(info["default_samplerate"])


class MicrophoneSource:
    """Frames of 16 kHz mono int16 from an input device."""

    paced = True

    def __init__(self, device: str | int = "") -> None:
        sd = _sounddevice()
        try:
            self.device = find_device(device, "input")
            info = sd.query_devices(self.device, "input")
        except sd.PortAudioError as error:
            raise AudioDeviceError(f"no input device available: {error}; check the sound server and [audio] input_device") from error
        self.channels = 1 if info["max_input_channels"] >= 1 else int(info["max_input_channels"])
        self.rate_hz = _supported_rate(sd, self.device, "input", SAMPLE_RATE_HZ, self.channels)
        self.name = info["name"]
        self.overflows = 0
        self._last_overflow_log = 0.0
        self._resampler = None
        if self.rate_hz != SAMPLE_RATE_HZ:
            self._resampler = soxr.ResampleStream(self.rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
        self._stream: Any = None

    async def frames(self) -> AsyncIterator[np.ndarray]:
        sd = _sounddevice()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=_QUEUE_MAX_FRAMES)

        def on_audio(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            loop.call_soon_threadsafe(_put_dropping_oldest, queue, indata[:, 0].copy())

        block = round(FRAME_SAMPLES * self.rate_hz / SAMPLE_RATE_HZ)
        self._stream = sd.InputStream(
            device=self.device, samplerate=self.rate_hz, channels=self.channels,
            dtype="int16", blocksize=block, callback=on_audio,
        )
        self._stream.start()
        _LOGGER.info("Capturing from %r at %d Hz", self.name, self.rate_hz)
        pending = np.zeros(0, dtype=np.int16)
        try:
            while True:
                chunk = await queue.get()
                self._log_overflows()
                if self._resampler is not None:
                    chunk = to_int16(self._resampler.resample_chunk(to_float32(chunk)))
                pending = np.concatenate([pending, chunk])
                while len(pending) >= FRAME_SAMPLES:
                    yield pending[:FRAME_SAMPLES]
                    pending = pending[FRAME_SAMPLES:]
        finally:
            await self.close()

    def _log_overflows(self) -> None:
        now = time.monotonic()
        if self.overflows and now - self._last_overflow_log >= _OVERFLOW_LOG_INTERVAL_SECONDS:
            _LOGGER.warning("Input overflowed %d times so far: audio was lost; the CPU may be overloaded", self.overflows)
            self._last_overflow_log = now

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
            self._stream = None


def _put_dropping_oldest(queue: asyncio.Queue[np.ndarray], item: np.ndarray) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class SpeakerSink:
    """Reply audio played on an output device; stop() silences it at once."""

    def __init__(self, device: str | int = "") -> None:
        sd = _sounddevice()
        try:
            self.device = find_device(device, "output")
            info = sd.query_devices(self.device, "output")
        except sd.PortAudioError as error:
            raise AudioDeviceError(f"no output device available: {error}; check the sound server and [audio] output_device") from error
        self.name = info["name"]
        self._stream: Any = None
        self._stream_rate_hz = 0
        self._stopped = False

    def _open(self, sample_rate_hz: int) -> None:
        sd = _sounddevice()
        rate = _supported_rate(sd, self.device, "output", sample_rate_hz, 1)
        self._stream = sd.OutputStream(device=self.device, samplerate=rate, channels=1, dtype="int16")
        self._stream.start()
        self._stream_rate_hz = rate
        _LOGGER.info("Playing to %r at %d Hz", self.name, rate)

    async def play(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        if self._stream is None:
            await asyncio.to_thread(self._open, sample_rate_hz)
        self._stopped = False
        if self._stream_rate_hz != sample_rate_hz:
            samples = to_int16(soxr.resample(to_float32(samples), sample_rate_hz, self._stream_rate_hz))
        await asyncio.to_thread(self._write, samples)

    def _write(self, samples: np.ndarray) -> None:
        block = self._stream_rate_hz // 20  # 50 ms, so that stop() takes effect quickly
        for start in range(0, len(samples), block):
            if self._stopped or self._stream is None:
                return
            self._stream.write(np.ascontiguousarray(samples[start:start + block]))

    async def drain(self) -> None:
        return None

    async def stop(self) -> None:
        self._stopped = True

    async def close(self) -> None:
        self._stopped = True
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await asyncio.to_thread(stream.close)


def list_devices(settings: AudioSettings) -> str:
    """Describe every sound device, marking with '<' the ones the configuration selects."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        selected_input = find_device(settings.input_device, "input")
        selected_output = find_device(settings.output_device, "output")
        default_input, default_output = sd.default.device
    except sd.PortAudioError as error:
        raise AudioDeviceError(f"cannot list sound devices: {error}") from error

    selected_input = default_input if selected_input is None else selected_input
    selected_output = default_output if selected_output is None else selected_output
    lines = [f"{'index':>5}  {'in':>3} {'out':>3}  {'rate Hz':>8}  name"]
    for index, device in enumerate(devices):
        marks = []
        if index == selected_input:
            marks.append("input")
        if index == selected_output:
            marks.append("output")
        mark = f"  < {' and '.join(marks)}" if marks else ""
        lines.append(
            f"{index:>5}  {device['max_input_channels']:>3} {device['max_output_channels']:>3}  "
            f"{int(device['default_samplerate']):>8}  {device['name']}{mark}"
        )
    return "\n".join(lines)
