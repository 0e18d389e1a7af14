"""Sound devices through sounddevice (PortAudio): lookup, stream formats and listing.

The microphone (assistant.microphone) and the speaker (assistant.speaker) open
their streams through `PORTAUDIO`. PortAudio enumerates devices only when it
initializes, so a device or a sound server that appears later is seen only
after `PortAudioHost.reinitialize()`.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from assistant.config import AudioSettings

# Rates tried, in this order, when a device rejects the pipeline's own rate and
# its own default rate.
COMMON_RATES_HZ = (48_000, 44_100, 32_000, 22_050, 16_000, 96_000, 8_000)
SAMPLE_FORMAT = "int16"
# PortAudio error codes (portaudio.h) that mean "not this format", after which
# another rate or channel count may work: paInvalidChannelCount,
# paInvalidSampleRate and paSampleFormatNotSupported.
FORMAT_ERROR_CODES = frozenset({-9998, -9997, -9994})

NO_DEVICES_HINT = (
    "is PulseAudio or PipeWire running for this user (a system service has no user session, "
    "so it needs direct ALSA access), or is the user in the 'audio' group?"
)


class AudioDeviceError(Exception):
    """No usable sound device, or no sound server to reach."""


class DeviceUnavailableError(AudioDeviceError):
    """A listed device that cannot be opened now: gone, busy, or its sound server failed."""


class StreamUser(Protocol):
    """An object that owns a PortAudio stream and can release it on request."""

    def release_stream(self) -> None:
        """Abort and close the stream (called with `PortAudioHost.lock` held)."""

    def busy(self) -> bool:
        """Return True while releasing the stream would cut audio that matters."""


class PortAudioHost:
    """The process's one PortAudio library, shared by every stream.

    Pa_Terminate closes every open stream and leaves sounddevice's stream
    objects pointing at freed memory, so reinitialize() first calls
    release_stream() on each registered user. Open, start, stop and close streams
    with `lock` held, so that no stream is used while PortAudio restarts.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._users: weakref.WeakSet[StreamUser] = weakref.WeakSet()
        self._sounddevice: Any = None

    def sounddevice(self) -> Any:
        """Import sounddevice, which loads the PortAudio library."""
        if self._sounddevice is None:
            try:
                import sounddevice
            except OSError as error:
                raise AudioDeviceError(
                    f"PortAudio is not available ({error}); install it with `apt-get install libportaudio2`"
                ) from error
            self._sounddevice = sounddevice
        return self._sounddevice

    def register(self, user: StreamUser) -> None:
        self._users.add(user)

    def reinitialize(self, requester: StreamUser) -> bool:
        """Restart PortAudio so that it lists the devices present now.

        Returns False without restarting while another user is busy (a reply
        is playing), because every stream is closed by the restart.
        """
        sd = self.sounddevice()
        with self.lock:
            others = [user for user in list(self._users) if user is not requester]
            if any(user.busy() for user in others):
                return False
            for user in [requester, *others]:
                user.release_stream()
            sd._terminate()
            sd._initialize()
        return True


PORTAUDIO = PortAudioHost()


@dataclass(frozen=True)
class Device:
    """A PortAudio device picked for input or output."""

    index: int
    name: str
    max_channels: int
    default_rate_hz: int


@dataclass(frozen=True)
class StreamFormat:
    rate_hz: int
    channels: int


def _channels_key(kind: str) -> str:
    return "max_input_channels" if kind == "input" else "max_output_channels"


def find_device(sd: Any, spec: str | int, kind: str) -> Device:
    """Return the `kind` ("input" or "output") device that `spec` names.

    `spec` is an index, a case-insensitive name substring (an exact name wins
    over a substring) or "" for PortAudio's default device. Raises
    AudioDeviceError saying what is missing and what to set.
    """
    key = _channels_key(kind)
    setting = f"[audio] {kind}_device"
    devices = sd.query_devices()
    if len(devices) == 0:
        raise AudioDeviceError(
            f"no {kind} device: PortAudio lists no sound devices; {NO_DEVICES_HINT} "
            f"Then run `assistant devices` and set {setting}"
        )
    usable = [index for index, device in enumerate(devices) if device[key] > 0]
    if not usable:
        raise AudioDeviceError(
            f"no {kind} device: PortAudio lists {len(devices)} devices, none with {kind} channels; "
            f"connect one, then run `assistant devices` and set {setting}"
        )

    if spec == "" or spec is None:
        index = _default_index(sd, kind)
        if index < 0 or index not in usable:
            raise AudioDeviceError(
                f"no default {kind} device: PortAudio has none; "
                f"set {setting} to a name or index listed by `assistant devices`"
            )
    elif isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        if index not in usable:
            raise AudioDeviceError(
                f"no {kind} device with index {index}; run `assistant devices` and fix {setting}"
            )
    else:
        query = str(spec).lower()
        exact = [index for index in usable if devices[index]["name"].lower() == query]
        partial = [index for index in usable if query in devices[index]["name"].lower()]
        if not exact and not partial:
            raise AudioDeviceError(
                f"no {kind} device whose name contains {spec!r}; run `assistant devices` and fix {setting}"
            )
        index = (exact or partial)[0]

    device = devices[index]
    return Device(index, device["name"], int(device[key]), int(device["default_samplerate"]))


def _default_index(sd: Any, kind: str) -> int:
    default = sd.default.device
    return int(default[0] if kind == "input" else default[1])


def channel_counts(max_channels: int, kind: str) -> list[int]:
    """List the channel counts to try, best first.

    Input prefers two channels, averaged into one, so that a stereo microphone
    is heard on both sides. Output prefers mono, copied to every channel when a
    device refuses mono.
    """
    preferred = [min(max_channels, 2), 1] if kind == "input" else [1, min(max_channels, 2)]
    return list(dict.fromkeys(count for count in [*preferred, max_channels] if count >= 1))


def candidate_rates(preferred_rate_hz: int, device_rate_hz: int, forced_rate_hz: int = 0) -> list[int]:
    """List the sample rates to try: `forced_rate_hz` alone, or the preferred, the device's, then common ones."""
    if forced_rate_hz:
        return [forced_rate_hz]
    return list(dict.fromkeys(rate for rate in (preferred_rate_hz, device_rate_hz, *COMMON_RATES_HZ) if rate > 0))


def choose_format(
    rates_hz: list[int], channels: list[int], accepts: Callable[[int, int], bool]
) -> StreamFormat | None:
    """Return the first (rate, channel count) that `accepts` takes, trying every channel count per rate."""
    for rate in rates_hz:
        for count in channels:
            if accepts(rate, count):
                return StreamFormat(rate, count)
    return None


def negotiate_format(
    sd: Any, device: Device, kind: str, preferred_rate_hz: int, forced_rate_hz: int = 0
) -> StreamFormat:
    """Pick the rate and channel count to open `device` with, asking PortAudio what it accepts."""
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    errors: list[str] = []

    def accepts(rate_hz: int, channels: int) -> bool:
        try:
            check(device=device.index, samplerate=rate_hz, channels=channels, dtype=SAMPLE_FORMAT)
        except sd.PortAudioError as error:
            code = error.args[1] if len(error.args) > 1 else None
            if code not in FORMAT_ERROR_CODES:
                # The device itself failed (gone, busy, server unreachable): no other format helps.
                raise DeviceUnavailableError(f"cannot open {kind} device {device.name!r}: {error}") from error
            errors.append(str(error))
            return False
        except ValueError as error:
            errors.append(str(error))
            return False
        return True

    rates = candidate_rates(preferred_rate_hz, device.default_rate_hz, forced_rate_hz)
    counts = channel_counts(device.max_channels, kind)
    chosen = choose_format(rates, counts, accepts)
    if chosen is None:
        fix = f"set [audio] {kind}_rate_hz to a rate it supports" if forced_rate_hz else "choose another device"
        raise AudioDeviceError(
            f"{kind} device {device.name!r} accepts none of the rates {rates} Hz with {counts} channels "
            f"as 16-bit samples (last error: {errors[-1] if errors else 'none'}); {fix}"
        )
    return chosen


class RetryDelay:
    """Delays between attempts to reopen a device: `initial` seconds, doubling up to `maximum`."""

    def __init__(self, initial: float = 0.5, maximum: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class LogThrottle:
    """Allow one log line per `interval_seconds`, so that a repeated problem does not flood the log."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._last = -float("inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval_seconds:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        self._last = -float("inf")


def list_devices(settings: AudioSettings) -> str:
    """Describe every sound device, marking with '<' the ones the configuration selects.

    Raises AudioDeviceError when PortAudio lists no device at all.
    """
    sd = PORTAUDIO.sounddevice()
    devices = sd.query_devices()
    if len(devices) == 0:
        raise AudioDeviceError(f"PortAudio lists no sound devices; {NO_DEVICES_HINT}")

    marks: dict[int, list[str]] = {}
    problems = []
    for kind, spec in (("input", settings.input_device), ("output", settings.output_device)):
        try:
            index = find_device(sd, spec, kind).index
        except AudioDeviceError as error:
            problems.append(str(error))
            continue
        marks.setdefault(index, []).append(kind)

    lines = [f"{'index':>5}  {'in':>3} {'out':>3}  {'rate Hz':>8}  name"]
    for index, device in enumerate(devices):
        mark = f"  < {' and '.join(marks[index])}" if index in marks else ""
        lines.append(
            f"{index:>5}  {device['max_input_channels']:>3} {device['max_output_channels']:>3}  "
            f"{int(device['default_samplerate']):>8}  {device['name']}{mark}"
        )
    lines.extend(problems)
    return "\n".join(lines)
