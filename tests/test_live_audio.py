"""The daemon on live sound devices: a private PulseAudio server, never a mocked sounddevice.

The daemon runs as `assistant run` with no --input or --output, in the
server's environment (tests/soundserver.py), so it captures from a virtual
microphone and plays to a null sink whose monitor the test records. The
probes that use assistant.speaker or assistant.microphone directly run in
child processes too. PortAudio reads the PULSE_* variables once, when it
initializes, so the pytest process never imports sounddevice.

Every wait polls with a deadline. Run pytest with -s to see the measured
figures.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import json
import logging
import os
import queue
import re
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

from conftest import AUDIO_DIR, PROJECT_DIR, events_named, load_clip, silence, write_wav
from soundserver import SoundServer, missing_programs

WAKE_CLIP = "wyoming_oww_hey_jarvis.16k.wav"
COMMAND_CLIP = "stereo_diarization.left.16k.wav"
COMMAND_WORDS = "a confused complaint against the wizard"
VOICE_RATE_HZ = 22_050

DAEMON_TEST_TIMEOUT_S = 300
PROBE_TEST_TIMEOUT_S = 90
# Loading the three models takes about 3 s alone; other processes share the CPU.
READY_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.05
# Time for the last audio to pass through the server before the recording stops.
TAIL_S = 0.5

# A stop() must silence the speaker within this time.
MAX_STOP_SECONDS = 0.1
# A daemon with no sound server must exit within this time.
MAX_NO_SERVER_EXIT_SECONDS = 5.0
# A lost or stalled microphone must be noticed within this time.
MAX_LOSS_NOTICE_SECONDS = 2.0

# Normalized cross-correlation of an earcon with the recording: a played
# earcon matches above PRESENT, speech alone stays below ABSENT.
EARCON_PRESENT = 0.9
EARCON_ABSENT = 0.6
# RMS of 10 ms windows, relative to full scale, above which a window is not silence.
SOUND_RMS = 0.01

pytestmark = [
    pytest.mark.skipif(
        bool(missing_programs()),
        reason=f"PulseAudio programs not found on PATH: {missing_programs()}; "
        "install the Debian packages pulseaudio and pulseaudio-utils (scripts/setup.sh --test)",
    ),
    pytest.mark.skipif(
        ctypes.util.find_library("portaudio") is None,
        reason="PortAudio library not found: install the Debian package libportaudio2",
    ),
]


# The daemon


def write_config(path: Path, **audio: object) -> Path:
    """Write a configuration file with only an [audio] table; every other key keeps its default."""
    lines = ["[audio]", *(f"{key} = {json.dumps(value)}" for key, value in audio.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """`assistant run` as a child process, with its events file and log."""

    def __init__(self, tmp_path: Path, env: dict[str, str], config: Path) -> None:
        self.events_path = tmp_path / "events.jsonl"
        self.log_path = tmp_path / "daemon.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "--log-level", "INFO", "run",
             "--config", str(config), "--events", str(self.events_path)],
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=PROJECT_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        events = []
        for line in self.events_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                break  # a line still being written
        return events

    def wait_for(self, condition, description: str, timeout: float):
        """Poll `condition()` until it returns a true value, which is returned."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited with status {self.process.returncode} before {description}; "
                    f"its log ends with:\n{self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{description} did not happen within {timeout} s; the daemon log ends with:\n{self.log()[-3000:]}"
                )
            time.sleep(POLL_INTERVAL_S)

    def wait_for_event(self, name: str, timeout: float, after: int = 0) -> dict:
        """Wait for event `name` at or after position `after` in the events file."""

        def find() -> dict | None:
            matches = [event for event in self.events()[after:] if event["event"] == name]
            return matches[0] if matches else None

        return self.wait_for(find, f"the {name!r} event", timeout)

    def wait_for_log(self, text: str, timeout: float) -> str:
        return self.wait_for(lambda: text in self.log() and text, f"the log line {text!r}", timeout)

    def stop(self) -> int:
        """Send SIGTERM and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
                raise AssertionError(f"the daemon did not stop within {STOP_TIMEOUT_S} s after SIGTERM") from None
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()


@pytest.fixture
def start_daemon(tmp_path):
    """Return a function that starts the daemon, and kill it after the test if it still runs."""
    daemons: list[Daemon] = []

    def start(env: dict[str, str], config: Path) -> Daemon:
        daemon = Daemon(tmp_path, env, config)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.kill()


def wait_until(condition, description: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{description} did not happen within {timeout} s")
        time.sleep(POLL_INTERVAL_S)


def wait_for_capture(server: SoundServer, daemon: Daemon, source: str) -> None:
    """Wait until the daemon's input stream records from `source` on the server."""
    daemon.wait_for(
        lambda: server.recording_sources().get(daemon.pid) == source,
        f"the daemon's input stream on {source!r}",
        STEP_TIMEOUT_S,
    )


def write_wake_and_command(path: Path) -> Path:
    """Hey Jarvis, a pause, then a spoken sentence that ends the command."""
    return write_wav(path, load_clip(WAKE_CLIP), silence(0.3), load_clip(COMMAND_CLIP), silence(0.5))


def run_one_turn(server: SoundServer, daemon: Daemon, clip: Path, source: str = "mic") -> list[dict]:
    """Play the clip into the microphone once the daemon listens, and wait for the turn to end."""
    daemon.wait_for_event("ready", READY_TIMEOUT_S)
    wait_for_capture(server, daemon, source)
    start = len(daemon.events())
    server.play_into_microphone(clip, source)
    reply = daemon.wait_for_event("reply", REPLY_TIMEOUT_S, after=start)
    # After the reply, a follow-up window opens and then the daemon is idle again.
    daemon.wait_for(
        lambda: any(event["event"] == "idle" and event["time"] > reply["time"] for event in daemon.events()),
        "the idle event after the reply",
        STEP_TIMEOUT_S,
    )
    time.sleep(TAIL_S)
    return daemon.events()[start:]


# Audio analysis


def read_mono(path: Path, rate_hz: int) -> np.ndarray:
    """Read a sound file as float64 mono (channels averaged) at `rate_hz`."""
    samples, file_rate_hz = soundfile.read(str(path), dtype="float64", always_2d=True)
    mono = samples.mean(axis=1)
    return mono if file_rate_hz == rate_hz else soxr.resample(mono, file_rate_hz, rate_hz)


def best_correlation(recording: np.ndarray, reference: np.ndarray) -> float:
    """Return the highest normalized cross-correlation of `reference` at any offset in `recording`."""
    size = 1 << (len(recording) + len(reference)).bit_length()
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)[: len(recording) - len(reference) + 1]
    # Energy of each recording segment of the reference's length.
    cumulative = np.concatenate([[0.0], np.cumsum(recording**2)])
    energy = cumulative[len(reference):] - cumulative[: len(recording) - len(reference) + 1]
    norm = np.sqrt(np.maximum(energy, 1e-12) * np.dot(reference, reference))
    return float(np.max(correlation / norm))


def sound_segments(samples: np.ndarray, rate_hz: int, window_s: float = 0.005, max_gap_s: float = 0.05):
    """Return (start, end) seconds of the stretches whose RMS is above SOUND_RMS."""
    window = int(window_s * rate_hz)
    count = len(samples) // window
    rms = np.sqrt(np.mean(samples[: count * window].reshape(count, window) ** 2, axis=1))
    loud = np.flatnonzero(rms > SOUND_RMS)
    segments: list[list[float]] = []
    for index in loud:
        start, end = index * window_s, (index + 1) * window_s
        if segments and start - segments[-1][1] <= max_gap_s:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return [tuple(segment) for segment in segments]


def dominant_frequency(samples: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate_hz)[np.argmax(spectrum)])


def words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z']+", text.lower()) if len(word) > 2}


def earcon(name: str) -> np.ndarray:
    from assistant.earcons import TONES, tone_sequence

    return tone_sequence(TONES[name], VOICE_RATE_HZ).astype(np.float64) / 32767


def assert_reply_spoken(recording: np.ndarray, reply: str, transcriber) -> str:
    """Check that the recording at VOICE_RATE_HZ contains speech whose words overlap the reply text."""
    speech_seconds = sum(end - start for start, end in sound_segments(recording, VOICE_RATE_HZ))
    assert speech_seconds > 0.5, f"only {speech_seconds:.2f} s of sound reached the speaker"
    transcript = transcriber.transcribe(
        np.clip(soxr.resample(recording, VOICE_RATE_HZ, 16_000) * 32767, -32767, 32767).astype(np.int16)
    ).text
    common = words(transcript) & words(reply)
    assert len(common) >= max(1, len(words(reply)) // 2), (transcript, reply)
    return transcript


# Daemon tests


@pytest.mark.models
@pytest.mark.timeout(DAEMON_TEST_TIMEOUT_S)
def test_microphone_turn_reaches_speaker(tmp_path, start_daemon, transcriber):
    """The default devices: a wake word and a command spoken into the microphone get a spoken reply.

    The earcons are on by default, so the wake and done tones reach the speaker too.
    """
    clip = write_wake_and_command(tmp_path / "input.wav")
    recording_path = tmp_path / "speaker.wav"
    with SoundServer() as server:
        server.add_speaker()
        server.add_microphone()
        with server.record_speaker(recording_path):
            daemon = start_daemon(server.env, write_config(tmp_path / "config.toml"))
            events = run_one_turn(server, daemon, clip)
            status = daemon.stop()

    log = daemon.log()
    recording = read_mono(recording_path, VOICE_RATE_HZ)
    reply = events_named(events, "reply")[0]["text"]
    assert status == 0, log[-3000:]
    assert [event["model"] for event in events_named(events, "wake")] == ["hey_jarvis"]
    assert COMMAND_WORDS in events_named(events, "transcript")[0]["text"].lower()
    assert reply.strip()
    assert "at 16000 Hz" in log
    assert f"at {VOICE_RATE_HZ} Hz" in log
    transcript = assert_reply_spoken(recording, reply, transcriber)
    wake_match = best_correlation(recording, earcon("wake"))
    done_match = best_correlation(recording, earcon("done"))
    print(f"reply {reply!r}, speaker transcript {transcript!r}; earcon correlation: wake {wake_match:.3f}, done {done_match:.3f}")
    assert wake_match > EARCON_PRESENT
    assert done_match > EARCON_PRESENT


@pytest.mark.models
@pytest.mark.timeout(DAEMON_TEST_TIMEOUT_S)
def test_fixed_rate_devices_are_resampled(tmp_path, start_daemon, transcriber):
    """A 48 kHz stereo microphone and a 44.1 kHz stereo speaker, opened at their own rates.

    Through the ALSA pulse plugin every rate opens, so the configuration
    forces the devices' rates: the server then converts nothing and the
    daemon averages the channels and resamples with soxr. Earcons are off.
    """
    clip = write_wake_and_command(tmp_path / "input.wav")
    recording_path = tmp_path / "speaker.wav"
    config = write_config(
        tmp_path / "config.toml",
        input_device="pulse", output_device="pulse", input_rate_hz=48_000, output_rate_hz=44_100, earcons=False,
    )
    with SoundServer() as server:
        server.add_speaker(rate=44_100, channels=2)
        server.add_microphone(rate=48_000, channels=2)
        with server.record_speaker(recording_path):
            daemon = start_daemon(server.env, config)
            events = run_one_turn(server, daemon, clip)
            status = daemon.stop()

    log = daemon.log()
    recording_info = soundfile.info(str(recording_path))
    recording = read_mono(recording_path, VOICE_RATE_HZ)
    reply = events_named(events, "reply")[0]["text"]
    assert status == 0, log[-3000:]
    assert re.search(r"Capturing from 'pulse' \(device \d+\) at 48000 Hz, 2 channels", log), log[-3000:]
    assert re.search(r"Playing to 'pulse' \(device \d+\) at 44100 Hz", log), log[-3000:]
    assert (recording_info.samplerate, recording_info.channels) == (44_100, 2)
    assert COMMAND_WORDS in events_named(events, "transcript")[0]["text"].lower()
    assert_reply_spoken(recording, reply, transcriber)
    wake_match = best_correlation(recording, earcon("wake"))
    print(f"wake earcon correlation with earcons off: {wake_match:.3f}")
    assert wake_match < EARCON_ABSENT


@pytest.mark.models
@pytest.mark.timeout(DAEMON_TEST_TIMEOUT_S)
def test_removed_microphone_comes_back(tmp_path, start_daemon):
    """Unplugging the microphone mid-run: the daemon logs it, reopens it, and replies once it is back.

    The stream is tied to the microphone by PULSE_SOURCE and the server does
    not rescue streams, so the removal ends the stream, as unplugging a USB
    microphone opened through ALSA does.
    """
    clip = write_wake_and_command(tmp_path / "input.wav")
    with SoundServer(rescue_streams=False) as server:
        server.add_speaker()
        server.add_microphone("mic", make_default=False)
        server.add_microphone("other", make_default=True)
        daemon = start_daemon(dict(server.env, PULSE_SOURCE="mic"), write_config(tmp_path / "config.toml"))
        daemon.wait_for_event("ready", READY_TIMEOUT_S)
        wait_for_capture(server, daemon, "mic")

        removed_at = time.monotonic()
        server.remove_microphone("mic")
        daemon.wait_for_log("Microphone 'default' lost", STEP_TIMEOUT_S)
        notice_seconds = time.monotonic() - removed_at
        # A few reopen attempts fail while the microphone is away.
        time.sleep(3.0)
        assert daemon.process.poll() is None

        added_at = time.monotonic()
        server.add_microphone("mic", make_default=False)
        wait_for_capture(server, daemon, "mic")
        recovery_seconds = time.monotonic() - added_at
        daemon.wait_for_log("is back after", STEP_TIMEOUT_S)
        events = run_one_turn(server, daemon, clip)
        status = daemon.stop()

    log = daemon.log()
    print(f"loss noticed after {notice_seconds:.3f} s; capturing again {recovery_seconds:.3f} s after the return")
    assert status == 0, log[-3000:]
    assert notice_seconds < MAX_LOSS_NOTICE_SECONDS
    assert "Cannot open the microphone" in log
    assert [event["model"] for event in events_named(events, "wake")] == ["hey_jarvis"]
    assert COMMAND_WORDS in events_named(events, "transcript")[0]["text"].lower()
    assert events_named(events, "reply")[0]["text"].strip()


# Without a sound server


def no_server_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a process whose PulseAudio socket does not exist, with autospawn off."""
    client_config = tmp_path / "client.conf"
    client_config.write_text("autospawn = no\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULSE_")}
    env.update(
        PULSE_SERVER=f"unix:{tmp_path / 'absent' / 'native'}",
        PULSE_CLIENTCONFIG=str(client_config),
        PYTHONUNBUFFERED="1",
    )
    return env


def has_sound_card() -> bool:
    cards = Path("/proc/asound/cards")
    return cards.exists() and "no soundcards" not in cards.read_text()


@pytest.mark.skipif(has_sound_card(), reason="this machine has a sound card, which ALSA lists without a server")
@pytest.mark.timeout(PROBE_TEST_TIMEOUT_S)
def test_no_sound_server_fails_fast(tmp_path):
    env = no_server_env(tmp_path)
    command = [sys.executable, "-m", "assistant", "run", "--events", str(tmp_path / "events.jsonl")]
    started = time.monotonic()
    process = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=30)
    seconds = time.monotonic() - started

    print(f"exit status {process.returncode} after {seconds:.2f} s: {process.stderr.strip()[-500:]}")
    assert process.returncode == 1
    assert seconds < MAX_NO_SERVER_EXIT_SECONDS
    assert "no input device: PortAudio lists no sound devices" in process.stderr
    assert "PulseAudio or PipeWire" in process.stderr
    assert "[audio] input_device" in process.stderr


@pytest.mark.skipif(has_sound_card(), reason="this machine has a sound card, which ALSA lists without a server")
@pytest.mark.timeout(PROBE_TEST_TIMEOUT_S)
def test_devices_without_server_explains(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "assistant", "devices"], env=no_server_env(tmp_path), cwd=PROJECT_DIR,
        capture_output=True, text=True, timeout=30,
    )
    assert process.returncode == 1
    assert "PortAudio lists no sound devices" in process.stderr


@pytest.mark.timeout(PROBE_TEST_TIMEOUT_S)
def test_devices_marks_configured_ones(tmp_path):
    config = write_config(tmp_path / "config.toml", input_device="pulse")
    with SoundServer() as server:
        server.add_speaker()
        server.add_microphone()
        process = subprocess.run(
            [sys.executable, "-m", "assistant", "devices", "--config", str(config)], env=server.env,
            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=30,
        )

    rows = {}
    for line in process.stdout.splitlines()[1:]:
        match = re.fullmatch(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.+?)(?:\s+<\s+(.+))?", line)
        assert match, f"unexpected line {line!r}"
        index, inputs, outputs, rate, name, mark = match.groups()
        rows[name] = (int(inputs), int(outputs), int(rate), mark)
    print(process.stdout)
    assert process.returncode == 0, process.stderr
    # The ALSA pulse plugin lists these two, with 32 channels and 44100 Hz whatever the server has.
    assert rows["pulse"] == (32, 32, 44_100, "input")
    assert rows["default"] == (32, 32, 44_100, "output")


# Probes: assistant.speaker and assistant.microphone in a child process

PROBE_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); import test_live_audio; test_live_audio.{}()"


def run_probe(function: str, env: dict[str, str], stderr_path: Path, *args: str) -> subprocess.Popen:
    """Start `function` of this module in a child process; its stderr goes to `stderr_path`."""
    with open(stderr_path, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", PROBE_BOOTSTRAP.format(function), str(Path(__file__).parent), *args],
            env={**env, "PYTHONPATH": str(PROJECT_DIR), "PYTHONUNBUFFERED": "1"},
            cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )


def tone(frequency_hz: float, seconds: float, rate_hz: int = VOICE_RATE_HZ) -> np.ndarray:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return (0.3 * 32767 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.int16)


# Tones of the speaker probe: (frequency in Hz, duration in seconds).
DRAINED_TONE = (660.0, 0.5)
STOPPED_TONE = (440.0, 3.0)
STOPPED_AFTER_S = 1.0
LAST_TONE = (880.0, 0.4)
PAUSE_S = 0.5


def speaker_probe() -> None:
    """Play a tone and drain, play a long tone and stop it, play a last tone and close; print timings."""
    from assistant.speaker import SpeakerSink

    async def main() -> dict:
        sink = SpeakerSink()
        await sink.play(tone(*DRAINED_TONE), VOICE_RATE_HZ)
        await sink.drain()
        await asyncio.sleep(PAUSE_S)

        latency = sink.latency_seconds
        played_at = time.monotonic()
        await sink.play(tone(*STOPPED_TONE), VOICE_RATE_HZ)
        await asyncio.sleep(STOPPED_AFTER_S)
        stop_called = time.monotonic()
        await sink.stop()
        stop_returned = time.monotonic()
        await asyncio.sleep(PAUSE_S)

        await sink.play(tone(*LAST_TONE), VOICE_RATE_HZ)
        await sink.drain()
        await sink.close()
        return {
            "stop_seconds": stop_returned - stop_called,
            "played_before_stop": stop_called - played_at,
            "latency": latency,
        }

    print(json.dumps(asyncio.run(main())), flush=True)


@pytest.mark.timeout(PROBE_TEST_TIMEOUT_S)
def test_speaker_stop_and_drain(tmp_path):
    """stop() silences the speaker within 100 ms; drain() lets the last tone play to its end.

    Each tone has its own frequency, so its stretch in the recording is
    identified by its spectrum.
    """
    recording_path = tmp_path / "speaker.wav"
    with SoundServer() as server:
        server.add_microphone()
        server.add_speaker()
        with server.record_speaker(recording_path):
            probe = run_probe("speaker_probe", server.env, tmp_path / "probe.stderr")
            stdout, _ = probe.communicate(timeout=60)
            time.sleep(TAIL_S)

    assert probe.returncode == 0, (tmp_path / "probe.stderr").read_text()[-3000:]
    timings = json.loads(stdout.strip().splitlines()[-1])
    recording = read_mono(recording_path, VOICE_RATE_HZ)
    segments = sound_segments(recording, VOICE_RATE_HZ)
    frequencies = [
        dominant_frequency(recording[int(start * VOICE_RATE_HZ):int(end * VOICE_RATE_HZ)], VOICE_RATE_HZ)
        for start, end in segments
    ]
    durations = [end - start for start, end in segments]
    print(f"segments {[(round(f), round(d, 3)) for f, d in zip(frequencies, durations)]}, timings {timings}")
    assert len(segments) == 3, segments
    assert [round(f / 10) * 10 for f in frequencies] == [660, 440, 880]
    # drain() waited until the whole tone was heard, also right before close().
    assert durations[0] == pytest.approx(DRAINED_TONE[1], abs=0.02)
    assert durations[2] == pytest.approx(LAST_TONE[1], abs=0.02)
    # The stopped tone starts to be heard about one stream latency after play(). If stop()
    # silenced it at once, it is heard for the time before stop() less that latency, so
    # anything longer was heard after stop().
    heard_after_stop = durations[1] - (timings["played_before_stop"] - timings["latency"])
    print(
        f"stop() returned after {timings['stop_seconds'] * 1000:.1f} ms; stream latency "
        f"{timings['latency'] * 1000:.1f} ms; about {heard_after_stop * 1000:.0f} ms heard after stop()"
    )
    assert timings["stop_seconds"] < MAX_STOP_SECONDS
    assert heard_after_stop < MAX_STOP_SECONDS


def microphone_probe() -> None:
    """Read frames from the default microphone and print, every 0.25 s, the frame count and peak."""
    from assistant.microphone import MicrophoneSource

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    seconds = float(sys.argv[2])

    async def main() -> None:
        source = MicrophoneSource()
        started = last_report = time.monotonic()
        frames = peak = 0
        async for frame in source.frames():
            frames += 1
            peak = max(peak, int(np.abs(frame).max()))
            now = time.monotonic()
            if now - last_report >= 0.25:
                print(json.dumps({"frames": frames, "peak": peak}), flush=True)
                last_report, peak = now, 0
            if now - started > seconds:
                break

    asyncio.run(main())


class ProbeOutput:
    """The JSON lines a probe prints, read by a thread so that waits can time out."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: queue.Queue = queue.Queue()
        self.last: dict = {"frames": 0, "peak": 0}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def drain(self) -> dict:
        """Read the reports already printed and return the last one."""
        while True:
            try:
                self.last = self.lines.get_nowait()
            except queue.Empty:
                return self.last

    def wait_for(self, condition, description: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.last = self.lines.get(timeout=POLL_INTERVAL_S)
            except queue.Empty:
                continue
            if condition(self.last):
                return self.last
        raise AssertionError(f"{description} did not happen within {timeout} s; last report {self.last}")


@pytest.mark.timeout(PROBE_TEST_TIMEOUT_S)
def test_microphone_survives_server_restart(tmp_path):
    """The sound server stops and another one starts: capture resumes from the new server.

    The probe reaches the server through a symbolic link to its socket,
    which the test points at the second server once the first has gone.
    PortAudio lists the new server's devices only after it is restarted,
    which the microphone does from its second reopen attempt on.
    """
    socket_link = tmp_path / "native"
    stderr_path = tmp_path / "probe.stderr"
    env = no_server_env(tmp_path)
    env["PULSE_SERVER"] = f"unix:{socket_link}"
    clip = AUDIO_DIR / WAKE_CLIP
    with SoundServer() as first:
        first.add_speaker()
        first.add_microphone()
        socket_link.symlink_to(first.socket_path)
        probe = run_probe("microphone_probe", env, stderr_path, "60")
        output = ProbeOutput(probe)
        output.wait_for(lambda report: report["frames"] > 0, "the first frames", STEP_TIMEOUT_S)
        first.play_into_microphone(clip)
        output.wait_for(lambda report: report["peak"] > 0, "the clip from the first server", STEP_TIMEOUT_S)
        stopped_at = time.monotonic()
    try:
        wait_until(lambda: "Microphone 'default' lost" in stderr_path.read_text(), "the loss in the log", STEP_TIMEOUT_S)
        notice_seconds = time.monotonic() - stopped_at
        # A few reopen attempts fail while no server runs.
        time.sleep(2.0)
        frames_before = output.drain()["frames"]
        with SoundServer() as second:
            second.add_speaker()
            second.add_microphone()
            socket_link.unlink()
            socket_link.symlink_to(second.socket_path)
            linked_at = time.monotonic()
            output.wait_for(
                lambda report: report["frames"] > frames_before, "frames from the second server", 3 * STEP_TIMEOUT_S
            )
            recovery_seconds = time.monotonic() - linked_at
            second.play_into_microphone(clip)
            output.wait_for(lambda report: report["peak"] > 0, "the clip from the second server", STEP_TIMEOUT_S)
    finally:
        probe.kill()
        probe.wait(timeout=STOP_TIMEOUT_S)

    stderr = stderr_path.read_text(errors="replace")
    print(
        f"loss noticed after {notice_seconds:.3f} s; server down for {linked_at - stopped_at:.1f} s; "
        f"frames again {recovery_seconds:.2f} s after the new one started"
    )
    assert notice_seconds < MAX_LOSS_NOTICE_SECONDS
    assert "Cannot open the microphone" in stderr
    assert "is back after" in stderr


@pytest.mark.timeout(PROBE_TEST_TIMEOUT_S)
def test_microphone_watchdog_reopens_stalled_stream(tmp_path):
    """A stream that stays active but delivers nothing is reopened, and capture resumes.

    Suspending the source on the server stops its audio while PortAudio's
    stream still reports itself active, as a stalled driver would.
    """
    stderr_path = tmp_path / "probe.stderr"
    with SoundServer() as server:
        server.add_speaker()
        server.add_microphone()
        probe = run_probe("microphone_probe", server.env, stderr_path, "60")
        try:
            output = ProbeOutput(probe)
            output.wait_for(lambda report: report["frames"] > 0, "the first frames", STEP_TIMEOUT_S)

            suspended_at = time.monotonic()
            server.pactl("suspend-source", "mic", "1")
            wait_until(lambda: "no audio for" in stderr_path.read_text(), "the stall in the log", STEP_TIMEOUT_S)
            notice_seconds = time.monotonic() - suspended_at
            frames_before = output.drain()["frames"]

            server.pactl("suspend-source", "mic", "0")
            output.wait_for(lambda report: report["frames"] > frames_before, "frames after the resume", STEP_TIMEOUT_S)
            server.play_into_microphone(AUDIO_DIR / WAKE_CLIP)
            output.wait_for(lambda report: report["peak"] > 0, "the clip after the resume", STEP_TIMEOUT_S)
        finally:
            probe.kill()
            probe.wait(timeout=STOP_TIMEOUT_S)

    stderr = stderr_path.read_text(errors="replace")
    print(f"stall noticed after {notice_seconds:.3f} s")
    assert notice_seconds < MAX_LOSS_NOTICE_SECONDS
    assert "is back after" in stderr
