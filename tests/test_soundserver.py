"""End-to-end checks of tests/soundserver.py with PulseAudio and python-sounddevice.

Every sounddevice call runs in a child process, the probe, because PortAudio
lists devices once, when sounddevice is imported, and reads the PULSE_*
variables of the process that imports it. The pytest process never imports
sounddevice. The test drives the probe over a line-based JSON protocol on its
standard input and output, and every reply has a timeout.

The behaviour recorded in the test docstrings was observed with Debian 12
packages (pulseaudio 16.1, libportaudio2 19.6.0, libasound2-plugins 1.2.7.1)
and sounddevice 0.5.6 on a shared 2-core machine. Run pytest with -s to see
the measured numbers.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from soundserver import (
    MICROPHONE_CHANNELS,
    MICROPHONE_RATE,
    SPEAKER_RATE,
    SoundServer,
    SoundServerError,
    missing_programs,
)

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared/data/audio"
CLIP_PATH = AUDIO_DIR / "wyoming_oww_hey_jarvis.16k.wav"

# The rate and channel count that sounddevice reports for the "pulse" and
# "default" devices of the ALSA pulse plugin, whatever the server's devices are.
PLUGIN_DEFAULT_RATE = 44100.0
PLUGIN_MAX_CHANNELS = 32

MIN_CORRELATION = 0.9
# Time to let audio pass through the server after the last sample was played.
PIPELINE_TAIL_S = 0.5
# Time an OutputStream waits beyond its latency before stop(), so that the
# server has played its last buffer.
OUTPUT_DRAIN_MARGIN_S = 0.1
PROBE_REPLY_TIMEOUT_S = 15.0
# The probe kills itself after this long, in case the test process is gone.
PROBE_LIFETIME_S = 120
WAIT_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.05
TEST_TIMEOUT_S = 90

# Imports this module in the child from the tests directory, given as argv[1].
PROBE_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "import test_soundserver; test_soundserver.serve_probe()"
)
ALSA_CARDS_PATH = Path("/proc/asound/cards")

pytestmark = [
    pytest.mark.timeout(TEST_TIMEOUT_S),
    pytest.mark.skipif(
        bool(missing_programs()),
        reason=f"PulseAudio programs not found on PATH: {missing_programs()}; "
        "install the Debian packages pulseaudio and pulseaudio-utils",
    ),
    pytest.mark.skipif(
        ctypes.util.find_library("portaudio") is None,
        reason="PortAudio library not found: install the Debian package libportaudio2",
    ),
    pytest.mark.skipif(not CLIP_PATH.is_file(), reason=f"test recording not found: {CLIP_PATH}"),
]


def has_sound_card() -> bool:
    """Return whether the kernel lists an ALSA sound card on this machine."""
    if not ALSA_CARDS_PATH.exists():
        return False
    return "no soundcards" not in ALSA_CARDS_PATH.read_text()


# Probe: the child process side


class InputProbe:
    """sounddevice calls that the test process requests by name."""

    def __init__(self) -> None:
        started = time.monotonic()
        import sounddevice

        self.sd = sounddevice
        self.import_seconds = time.monotonic() - started
        self.stream = None
        self.lock = threading.Lock()
        self.blocks: list[np.ndarray] = []
        self.frames = 0
        self.statuses: list[str] = []
        self.finished = False
        self.last_callback = 0.0
        self.max_gap = 0.0
        self.peak = 0

    def devices(self) -> dict:
        """Return the device list, the default device ids and timings."""
        started = time.monotonic()
        devices = [dict(device) for device in self.sd.query_devices()]
        return {
            "devices": devices,
            "default": list(self.sd.default.device),
            "query_seconds": time.monotonic() - started,
            "import_seconds": self.import_seconds,
        }

    def rescan(self) -> float:
        """Terminate and initialize PortAudio so that it lists devices again."""
        started = time.monotonic()
        self.sd._terminate()
        self.sd._initialize()
        return time.monotonic() - started

    def open_input(self, device: str | None, samplerate: int, channels: int) -> float:
        """Open and start an int16 input stream, and return the seconds it took."""
        self.blocks, self.frames, self.statuses, self.finished, self.peak = [], 0, [], False, 0
        started = time.monotonic()
        self.stream = self.sd.InputStream(
            device=device,
            samplerate=samplerate,
            channels=channels,
            dtype="int16",
            callback=self._on_input,
            finished_callback=self._on_finished,
        )
        self.last_callback = time.monotonic()
        self.max_gap = 0.0
        self.stream.start()
        return time.monotonic() - started

    def _on_input(self, indata, frames, time_info, status) -> None:
        now = time.monotonic()
        with self.lock:
            self.blocks.append(indata.copy())
            self.frames += frames
            self.max_gap = max(self.max_gap, now - self.last_callback)
            self.last_callback = now
            self.peak = max(self.peak, int(np.abs(indata).max(initial=0)))
            if status:
                self.statuses.append(str(status))

    def _on_finished(self) -> None:
        self.finished = True

    def input_state(self) -> dict:
        """Return the stream counters and reset the peak and the maximum gap."""
        with self.lock:
            state = {
                "frames": self.frames,
                "active": bool(self.stream.active),
                "finished": self.finished,
                "statuses": list(self.statuses),
                "peak": self.peak,
                "max_gap_seconds": self.max_gap,
                "seconds_since_callback": time.monotonic() - self.last_callback,
            }
            self.peak = 0
            self.max_gap = 0.0
        return state

    def close_input(self) -> dict:
        """Stop and close the stream, and return the time and any error."""
        started = time.monotonic()
        error = None
        try:
            self.stream.stop()
            self.stream.close()
        except Exception as exception:  # noqa: BLE001 - reported to the test as data
            error = repr(exception)
        self.stream = None
        return {"seconds": time.monotonic() - started, "error": error}

    def save_input(self, path: str) -> int:
        """Write the captured audio to a WAV file and return its frame count."""
        with self.lock:
            audio = np.concatenate(self.blocks)
        soundfile.write(path, audio, int(self.stream.samplerate))
        return len(audio)

    def play(self, path: str, device: str | None, wait_for_latency: bool) -> dict:
        """Play a WAV file with blocking writes at the file's rate, then stop.

        With `wait_for_latency`, sleep for the stream latency plus a margin
        before stop(), which otherwise drops the audio still buffered.
        """
        audio, rate = soundfile.read(path, dtype="int16", always_2d=True)
        stream = self.sd.OutputStream(device=device, samplerate=rate, channels=audio.shape[1], dtype="int16")
        stream.start()
        stream.write(audio)
        if wait_for_latency:
            time.sleep(stream.latency + OUTPUT_DRAIN_MARGIN_S)
        stop_started = time.monotonic()
        stream.stop()
        stop_seconds = time.monotonic() - stop_started
        stream.close()
        return {"stop_seconds": stop_seconds, "latency": stream.latency}


def serve_probe() -> None:
    """Run requests from standard input until it closes or an "exit" request arrives."""
    signal.alarm(PROBE_LIFETIME_S)
    probe = InputProbe()
    print(json.dumps({"result": "ready"}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["method"] == "exit":
            break
        try:
            reply = {"result": getattr(probe, request["method"])(**request["args"])}
        except Exception as exception:  # noqa: BLE001 - sent to the test process
            reply = {"error": {"type": type(exception).__name__, "message": str(exception)}}
        print(json.dumps(reply), flush=True)


# Probe: the test process side


class ProbeError(Exception):
    """An exception raised by a sounddevice call in the probe."""

    def __init__(self, error: dict) -> None:
        super().__init__(f"{error['type']}: {error['message']}")
        self.type = error["type"]
        self.message = error["message"]


class Probe:
    """A child Python process that runs sounddevice calls on request."""

    def __init__(self, env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE_BOOTSTRAP, str(Path(__file__).parent)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read_replies, daemon=True).start()
        assert self._next_reply() == {"result": "ready"}

    def _read_replies(self) -> None:
        for line in self.process.stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                message = f"probe printed a line that is not JSON on stdout: {line!r}"
                self._replies.put({"error": {"type": "ProtocolError", "message": message}})
        self._replies.put(None)

    def _next_reply(self) -> dict:
        try:
            reply = self._replies.get(timeout=PROBE_REPLY_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(
                f"probe sent no reply within {PROBE_REPLY_TIMEOUT_S} s; its stderr:\n{self.stderr()}"
            ) from None
        if reply is None:
            raise AssertionError(f"probe exited with status {self.process.wait()}; its stderr:\n{self.stderr()}")
        return reply

    def call(self, method: str, **args):
        """Run `InputProbe.method(**args)` in the child and return its result."""
        self.process.stdin.write(json.dumps({"method": method, "args": args}) + "\n")
        self.process.stdin.flush()
        reply = self._next_reply()
        if "error" in reply:
            raise ProbeError(reply["error"])
        return reply["result"]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"method": "exit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=WAIT_TIMEOUT_S)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=WAIT_TIMEOUT_S)
        self._stderr.close()


# Fixtures and helpers


@pytest.fixture
def server():
    with SoundServer() as sound_server:
        yield sound_server


@pytest.fixture
def start_probe(tmp_path):
    """Return a function that starts a probe, and close every probe after the test."""
    probes: list[Probe] = []

    def start(env: dict[str, str]) -> Probe:
        probe = Probe(env, tmp_path / f"probe-{len(probes)}.stderr")
        probes.append(probe)
        return probe

    yield start
    for probe in probes:
        probe.close()


def wait_for_state(probe: Probe, condition, description: str) -> dict:
    """Poll the probe's input state until `condition(state)` is true."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        state = probe.call("input_state")
        if condition(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{description} did not happen within {WAIT_TIMEOUT_S} s; last state: {state}")
        time.sleep(POLL_INTERVAL_S)


def read_mono(path: Path, rate: int) -> np.ndarray:
    """Read the first channel of a sound file as float64, resampled to `rate`."""
    audio, file_rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    mono = audio[:, 0]
    if file_rate != rate:
        mono = soxr.resample(mono, file_rate, rate)
    return mono


def align(captured: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Find where `reference` best matches inside `captured`.

    Returns the offset in samples and the normalized cross-correlation there.
    """
    assert len(captured) >= len(reference), (
        f"captured {len(captured)} samples, fewer than the {len(reference)} of the reference"
    )
    size = 1 << (len(captured) + len(reference)).bit_length()
    spectrum = np.fft.rfft(captured, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)[: len(captured) - len(reference) + 1]
    offset = int(np.argmax(correlation))
    segment = captured[offset : offset + len(reference)]
    energy = np.sqrt(np.dot(segment, segment) * np.dot(reference, reference))
    return offset, float(np.dot(segment, reference) / energy) if energy else 0.0


def capture_clip(server: SoundServer, probe: Probe, tmp_path: Path, device: str) -> tuple[Path, dict]:
    """Play the test clip into the microphone while the probe records it at 16 kHz mono.

    Returns the path of the captured WAV file and the last input state.
    """
    probe.call("open_input", device=device, samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
    wait_for_state(probe, lambda state: state["frames"] > 0, "the first input callback")
    server.play_into_microphone(CLIP_PATH)
    time.sleep(PIPELINE_TAIL_S)
    captured_path = tmp_path / "captured.wav"
    probe.call("save_input", path=str(captured_path))
    state = probe.call("input_state")
    assert probe.call("close_input")["error"] is None
    return captured_path, state


# Server lifecycle


def test_server_stop_ends_processes(tmp_path):
    sound_server = SoundServer()
    with sound_server:
        sound_server.add_speaker()
        sound_server.add_microphone()
        server_pid = sound_server.pid
        player = sound_server.start_playing_into_microphone(CLIP_PATH)
        directory = sound_server.directory
        assert sound_server.default_source() == "mic"
        assert sound_server.default_sink() == "speaker"

    assert player.poll() is not None
    assert not Path(f"/proc/{server_pid}").exists()
    assert not directory.exists()


def test_server_rejects_invalid_requests(server):
    server.add_microphone()

    with pytest.raises(SoundServerError, match="already exists"):
        server.add_microphone()
    with pytest.raises(SoundServerError, match="not found"):
        server.remove_microphone("absent")
    with pytest.raises(SoundServerError, match="audio file not found"):
        server.play_into_microphone(Path("/nonexistent.wav"))
    with pytest.raises(SoundServerError, match="set-default-sink absent failed"):
        server.set_default_sink("absent")


# Microphone


@pytest.mark.parametrize("device", ["default", "pulse"])
def test_microphone_clip_reaches_input_stream(server, start_probe, tmp_path, device):
    """The clip arrives unchanged, and the microphone is silent around it.

    Observed: the captured samples equal the file's (correlation 1.0, largest
    difference 0), and the samples before and after the clip are exactly zero.
    """
    server.add_speaker()
    server.add_microphone(rate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
    probe = start_probe(server.env)

    captured_path, state = capture_clip(server, probe, tmp_path, device)

    captured = read_mono(captured_path, MICROPHONE_RATE)
    reference = read_mono(CLIP_PATH, MICROPHONE_RATE)
    offset, correlation = align(captured, reference)
    max_difference = np.abs(captured[offset : offset + len(reference)] - reference).max()
    print(f"correlation {correlation:.4f}, max difference {max_difference}")
    assert correlation > MIN_CORRELATION
    assert not np.any(captured[:offset]), "the microphone was not silent before the clip"
    assert not np.any(captured[offset + len(reference) :]), "the microphone was not silent after the clip"
    assert state["statuses"] == []


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (44100, 1)])
def test_microphone_rate_is_hidden_by_plugin(server, start_probe, tmp_path, rate, channels):
    """A microphone with a single rate still opens at 16 kHz mono.

    Observed: sounddevice lists only the "pulse" and "default" devices of the
    ALSA pulse plugin, with 32 input channels and a default rate of 44100 Hz
    whatever the source offers. Opening at 16 kHz mono works because
    PulseAudio resamples and downmixes, and the captured clip matches the file
    with a correlation of 0.989 to 0.9999 in six runs. It varies because
    resampling leaves a fractional-sample offset that the alignment to whole
    samples does not remove. In a manual run every rate
    from 1 Hz to 384 kHz opened, and 33 channels raised PortAudioError
    "Invalid number of channels".

    NOTE: a hardware ALSA device opened directly (for example "hw:1,0")
    accepts only the rates its hardware supports, so opening it at 16 kHz
    can fail. No such device exists here, so the daemon's fallback (open at
    the device rate and resample with soxr) cannot be tested on this server.
    """
    server.add_speaker()
    server.add_microphone(rate=rate, channels=channels)
    probe = start_probe(server.env)

    listing = probe.call("devices")
    names = [device["name"] for device in listing["devices"]]
    default_input = listing["devices"][listing["default"][0]]
    captured_path, _ = capture_clip(server, probe, tmp_path, "default")

    assert "pulse" in names
    assert "default" in names
    assert default_input["name"] == "default"
    assert default_input["default_samplerate"] == PLUGIN_DEFAULT_RATE
    assert default_input["max_input_channels"] == PLUGIN_MAX_CHANNELS
    _, correlation = align(read_mono(captured_path, MICROPHONE_RATE), read_mono(CLIP_PATH, MICROPHONE_RATE))
    print(f"correlation {correlation:.4f}")
    assert correlation > MIN_CORRELATION


# Speaker


def write_played_clip(tmp_path: Path) -> Path:
    """Write the test clip resampled to the speaker rate, as 16-bit PCM."""
    played_path = tmp_path / "played.wav"
    played = soxr.resample(read_mono(CLIP_PATH, MICROPHONE_RATE), MICROPHONE_RATE, SPEAKER_RATE)
    soundfile.write(str(played_path), played, SPEAKER_RATE, subtype="PCM_16")
    return played_path


@pytest.mark.parametrize(("rate", "channels"), [(SPEAKER_RATE, 1), (48000, 2)])
def test_output_stream_reaches_speaker(server, start_probe, tmp_path, rate, channels):
    """Audio written at 22050 Hz mono ends up in the recorded speaker monitor.

    The probe waits for the stream latency before stop(), see the next test.
    Observed: with a 22050 Hz mono speaker the recording equals what was
    written (correlation 1.0). With a 48 kHz stereo speaker, PulseAudio
    resamples and copies the channel, and the correlation is 0.990 to 1.0 in
    three runs, because of the fractional-sample offset left by resampling.
    """
    server.add_microphone()
    speaker = server.add_speaker(rate=rate, channels=channels)
    probe = start_probe(server.env)
    played_path = write_played_clip(tmp_path)
    recording_path = tmp_path / "speaker.wav"

    with server.record_speaker(recording_path):
        probe.call("play", path=str(played_path), device="default", wait_for_latency=True)
        time.sleep(PIPELINE_TAIL_S)

    info = soundfile.info(str(recording_path))
    recorded = read_mono(recording_path, SPEAKER_RATE)
    played = read_mono(played_path, SPEAKER_RATE)
    offset, correlation = align(recorded, played)
    max_difference = np.abs(recorded[offset : offset + len(played)] - played).max()
    print(f"correlation {correlation:.4f}, max difference {max_difference}")
    assert info.samplerate == speaker.rate
    assert info.channels == speaker.channels
    assert correlation > MIN_CORRELATION


def test_output_stream_stop_drops_tail(server, start_probe, tmp_path):
    """stop() right after the last blocking write() drops the end of the audio.

    Observed through the ALSA pulse plugin: stop() returns in under 1 ms and
    the last 568 to 937 samples at 22050 Hz (26 to 42 ms, about one stream
    latency of 0.035 s) never reach the speaker, in nine runs. Sleeping for
    the latency plus 0.1 s before stop(), or writing 0.1 s of silence after
    the audio, delivered every sample. The daemon must do one of them after
    speech.
    """
    server.add_microphone()
    server.add_speaker()
    probe = start_probe(server.env)
    played_path = write_played_clip(tmp_path)
    recording_path = tmp_path / "speaker.wav"

    with server.record_speaker(recording_path):
        playback = probe.call("play", path=str(played_path), device="default", wait_for_latency=False)
        time.sleep(PIPELINE_TAIL_S)

    recorded = read_mono(recording_path, SPEAKER_RATE)
    played = read_mono(played_path, SPEAKER_RATE)
    offset, correlation = align(recorded, played)
    mismatched = np.flatnonzero(recorded[offset : offset + len(played)] != played)
    print(f"latency {playback['latency']:.4f} s, {len(mismatched)} samples lost, stop() took {playback['stop_seconds']:.4f} s")
    assert correlation > MIN_CORRELATION
    assert len(mismatched) > 0, "stop() delivered every sample: the daemon may no longer need to wait"
    assert mismatched[0] >= len(played) - 2 * playback["latency"] * SPEAKER_RATE, "audio was lost before the tail"


# Microphone removal


def test_removed_default_microphone_moves_stream(server, start_probe, tmp_path):
    """With PulseAudio's default policy, removing the microphone raises nothing.

    Observed on a stream opened on "default": no exception, no callback
    status, the stream stays active and its callbacks do not pause (largest
    gap 0.017 to 0.020 s in six runs). PulseAudio moves the stream to the new
    default source, the speaker's monitor, so the daemon then hears its own
    output. When the microphone comes back as the default source, the same
    stream is moved back and hears it, so no reopen is needed. A daemon
    behind PulseAudio cannot detect the removal from the stream alone.
    """
    speaker = server.add_speaker()
    server.add_microphone()
    probe = start_probe(server.env)
    probe.call("open_input", device="default", samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
    before = wait_for_state(probe, lambda state: state["frames"] > 0, "the first input callback")
    source_before = server.recording_sources()[probe.process.pid]

    server.remove_microphone()
    default_after_removal = server.default_source()
    after_removal = wait_for_state(
        probe,
        lambda state: state["frames"] > before["frames"] + MICROPHONE_RATE,
        "one second of input after the removal",
    )
    source_after_removal = server.recording_sources()[probe.process.pid]
    server.add_microphone()
    server.play_into_microphone(CLIP_PATH)
    time.sleep(PIPELINE_TAIL_S)
    after_return = probe.call("input_state")
    source_after_return = server.recording_sources()[probe.process.pid]
    closed = probe.call("close_input")

    print(f"largest callback gap after the removal {after_removal['max_gap_seconds']:.3f} s")
    assert source_before == "mic"
    assert default_after_removal == speaker.monitor
    assert source_after_removal == speaker.monitor
    assert after_removal["active"]
    assert not after_removal["finished"]
    assert after_removal["statuses"] == []
    assert source_after_return == "mic"
    assert after_return["peak"] > 0, "the open stream did not hear the microphone after it came back"
    assert closed["error"] is None


def test_removed_microphone_stops_stream(start_probe, tmp_path):
    """Without stream rescue, removing the microphone ends the stream.

    The probe opens "default" with PULSE_SOURCE=mic while another microphone
    is the default source, so the stream is tied to "mic" and is not moved.
    Observed: the stream is inactive at the first poll after pactl returns
    (0.012 to 0.025 s in six runs) and its finished_callback has run, but
    the callback got no status flag and no exception is raised. PortAudio
    prints "Expression ... failed in src/hostapi/alsa/pa_linux_alsa.c" lines
    on stderr. stop() and close() succeed at once. While "mic" is missing,
    opening a new stream on it raises PortAudioError "Error opening
    InputStream: Unanticipated host error [PaErrorCode -9999]: 'Input/output
    error' [ALSA error -5]". Once "mic" is back, a new stream opens and
    hears it. A daemon can detect this case by polling `stream.active` or by
    the finished_callback, and should then retry opening.
    """
    with SoundServer(rescue_streams=False) as server:
        server.add_speaker()
        server.add_microphone("mic", make_default=False)
        server.add_microphone("other", make_default=True)
        probe = start_probe(dict(server.env, PULSE_SOURCE="mic"))
        probe.call("open_input", device="default", samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
        wait_for_state(probe, lambda state: state["frames"] > 0, "the first input callback")

        removed_at = time.monotonic()
        server.remove_microphone("mic")
        stopped = wait_for_state(probe, lambda state: not state["active"], "the end of the stream")
        seconds_to_stop = time.monotonic() - removed_at
        closed = probe.call("close_input")
        with pytest.raises(ProbeError) as reopen_error:
            probe.call("open_input", device="default", samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)

        server.add_microphone("mic", make_default=False)
        probe.call("open_input", device="default", samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
        wait_for_state(probe, lambda state: state["frames"] > 0, "the first callback after the return")
        server.play_into_microphone(CLIP_PATH, "mic")
        time.sleep(PIPELINE_TAIL_S)
        after_return = probe.call("input_state")
        reclosed = probe.call("close_input")

    print(f"stream stopped {seconds_to_stop:.3f} s after the removal; reopen error: {reopen_error.value}")
    assert stopped["finished"]
    assert stopped["statuses"] == []
    assert seconds_to_stop < WAIT_TIMEOUT_S
    assert closed["error"] is None
    assert reopen_error.value.type == "PortAudioError"
    assert "Error opening InputStream" in reopen_error.value.message
    assert after_return["peak"] > 0, "the new stream did not hear the microphone after it came back"
    assert reclosed["error"] is None


# No server


@pytest.mark.skipif(has_sound_card(), reason="this machine has a sound card, which ALSA lists without a server")
def test_unreachable_server_lists_no_devices(start_probe, tmp_path):
    """Without a reachable server, sounddevice lists no device at all.

    Observed with PULSE_SERVER set to a socket path that does not exist, on a
    machine with no sound card: importing sounddevice takes 0.04 to 0.20 s
    and raises nothing, query_devices() returns an empty list and the default
    devices are -1. InputStream(device="default") raises ValueError
    "No input device matching 'default'" and device=None raises
    PortAudioError "Error querying device -1", both without waiting. PortAudio
    does not notice a server that starts later until the probe calls
    sounddevice._terminate() and sounddevice._initialize(), which take 0.04
    to 0.10 s. After that, "pulse" and "default" are listed and open.
    """
    socket_link = tmp_path / "native"
    client_config = tmp_path / "client.conf"
    client_config.write_text("autospawn = no\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
    env.update(PULSE_SERVER=f"unix:{socket_link}", PULSE_CLIENTCONFIG=str(client_config))
    probe = start_probe(env)

    listing = probe.call("devices")
    open_started = time.monotonic()
    with pytest.raises(ProbeError) as default_error:
        probe.call("open_input", device="default", samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
    with pytest.raises(ProbeError) as none_error:
        probe.call("open_input", device=None, samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
    open_seconds = time.monotonic() - open_started
    with SoundServer() as server:
        server.add_speaker()
        server.add_microphone()
        socket_link.symlink_to(server.socket_path)
        listing_before_rescan = probe.call("devices")
        rescan_seconds = probe.call("rescan")
        listing_after_rescan = probe.call("devices")
        probe.call("open_input", device="default", samplerate=MICROPHONE_RATE, channels=MICROPHONE_CHANNELS)
        opened = wait_for_state(probe, lambda state: state["frames"] > 0, "the first input callback")
        probe.call("close_input")

    print(
        f"import {listing['import_seconds']:.3f} s, query {listing['query_seconds']:.4f} s, "
        f"two failed opens {open_seconds:.3f} s, rescan {rescan_seconds:.3f} s"
    )
    assert listing["devices"] == []
    assert listing["default"] == [-1, -1]
    assert listing["import_seconds"] < WAIT_TIMEOUT_S
    assert open_seconds < WAIT_TIMEOUT_S
    assert default_error.value.type == "ValueError"
    assert "No input device matching 'default'" in default_error.value.message
    assert none_error.value.type == "PortAudioError"
    assert listing_before_rescan["devices"] == []
    assert rescan_seconds < WAIT_TIMEOUT_S
    assert "pulse" in [device["name"] for device in listing_after_rescan["devices"]]
    assert "default" in [device["name"] for device in listing_after_rescan["devices"]]
    assert opened["frames"] > 0
