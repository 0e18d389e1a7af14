"""Run a private PulseAudio server for tests that use real audio devices.

`SoundServer` starts `pulseaudio` as a child process with its own runtime,
state and configuration directories under a temporary directory, so it never
touches a system or user server. Tests create virtual devices on it:

* a microphone is a null sink (the "feed") whose monitor is remapped into a
  normal source. Playing a file into the feed sink makes the microphone hear
  it, and between clips the microphone delivers silence instead of ending;
* a speaker is a null sink whose monitor can be recorded to a WAV file.

A program started with `env=server.env` reaches the server through libpulse.
python-sounddevice on Debian reaches it through PortAudio's ALSA host API and
the ALSA `pulse` plugin from libasound2-plugins. On a machine without a sound
card it lists two devices, "pulse" and "default", that both map to the
server's default source and sink. ALSA maps "default" to the plugin only if
the server was reachable when PortAudio initialized. Setting PULSE_SOURCE or
PULSE_SINK in that environment ties the streams of those devices to one named
source or sink instead.

NOTE: untested where pipewire-alsa is installed. Its ALSA configuration also
redefines "default", so only "pulse" is sure to reach this server there.

Debian packages: pulseaudio, pulseaudio-utils (pactl, paplay, parecord),
libportaudio2 and libasound2-plugins.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile

# Every device below gets its sample rate from the caller, so the server
# default applies only where a module or a client gives none. Setting the
# alternate rate to the same value stops PulseAudio from switching a device to
# another rate when a stream of another rate starts.
SERVER_SAMPLE_RATE = 48000
SAMPLE_FORMAT = "s16le"
# Default device formats: the input rate of Whisper and openWakeWord, and the
# output rate of Piper's medium-quality voices.
MICROPHONE_RATE = 16000
MICROPHONE_CHANNELS = 1
SPEAKER_RATE = 22050
SPEAKER_CHANNELS = 1

# Null sinks rewind when a new stream starts, and the audio already sent to
# their monitor is then not replaced. Disabling rewinds keeps the monitor, and
# so the microphone and the speaker recording, identical to what was played.
NULL_SINK_OPTIONS = "norewinds=1"

# Requested latency of the recorder. A small value makes the server send audio
# to parecord in small pieces, so that little is still buffered when it stops.
RECORD_LATENCY_MS = 50

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
PACTL_TIMEOUT_S = 5.0
# Time allowed for paplay beyond the clip duration: connecting, the playback
# buffer and draining it at the end.
PLAYBACK_MARGIN_S = 5.0
POLL_INTERVAL_S = 0.05

REQUIRED_PROGRAMS = ("pulseaudio", "pactl", "paplay", "parecord")
INSTALL_HINT = (
    "install the Debian packages pulseaudio, pulseaudio-utils, libportaudio2 "
    "and libasound2-plugins"
)

FEED_SINK_SUFFIX = "_feed"
LOG_TAIL_CHARS = 2000
PR_SET_PDEATHSIG = 1


class SoundServerError(RuntimeError):
    """A PulseAudio program or command used by `SoundServer` failed."""


def missing_programs() -> list[str]:
    """Return the names of the required PulseAudio programs not on PATH."""
    return [name for name in REQUIRED_PROGRAMS if shutil.which(name) is None]


@dataclass(frozen=True)
class Microphone:
    """A virtual microphone: a source fed by the monitor of a null sink."""

    name: str
    rate: int
    channels: int
    feed_sink: str
    feed_module: int
    source_module: int


@dataclass(frozen=True)
class Speaker:
    """A virtual speaker: a null sink whose monitor can be recorded."""

    name: str
    rate: int
    channels: int
    module: int

    @property
    def monitor(self) -> str:
        return f"{self.name}.monitor"


# Looked up once here, because the function that runs in the forked child
# should not load libraries while other threads of the parent may hold locks.
# It is None outside Linux.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when its parent exits.

    NOTE: Linux sends it when the thread that started the child exits, so
    start the server from a thread that outlives it, such as the main thread.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise SoundServerError(f"audio file not found: {path}; pass the path of a WAV or other libsndfile file")
    return path


def _stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send `sig`, wait up to STOP_TIMEOUT_S, then kill the process."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


class SoundServer:
    """A private PulseAudio server with virtual microphones and speakers.

    Use it as a context manager. `rescue_streams` sets the daemon option of
    that name. When it is false, removing a device kills the streams that
    were tied to it by name, and when it is true, they move to the default
    device. Streams that follow the default device move either way.
    """

    def __init__(self, *, rescue_streams: bool = True) -> None:
        self.rescue_streams = rescue_streams
        self._directory: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self._helpers: list[subprocess.Popen] = []
        self.microphones: dict[str, Microphone] = {}
        self.speakers: dict[str, Speaker] = {}

    # Lifecycle

    def __enter__(self) -> SoundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise SoundServerError("the sound server is not started: call start() or use it in a with block")
        return self._directory

    @property
    def socket_path(self) -> Path:
        return self.directory / "runtime" / "native"

    @property
    def log_path(self) -> Path:
        return self.directory / "pulseaudio.log"

    @property
    def client_env(self) -> dict[str, str]:
        """Environment variables that point a libpulse client at this server.

        PULSE_CLIENTCONFIG turns off autospawn and PULSE_COOKIE keeps the
        client from creating a cookie file in the user's home directory.
        """
        return {
            "PULSE_SERVER": f"unix:{self.socket_path}",
            "PULSE_RUNTIME_PATH": str(self.directory / "runtime"),
            "PULSE_CLIENTCONFIG": str(self.directory / "client.conf"),
            "PULSE_COOKIE": str(self.directory / "cookie"),
        }

    @property
    def env(self) -> dict[str, str]:
        """The current environment plus `client_env`, for subprocess calls.

        PULSE_SINK and PULSE_SOURCE are removed so that streams that name no
        device use the server's default sink and source.
        """
        env = {key: value for key, value in os.environ.items() if key not in ("PULSE_SINK", "PULSE_SOURCE")}
        env.update(self.client_env)
        return env

    @property
    def pid(self) -> int:
        if self._process is None:
            raise SoundServerError("the sound server is not started: call start() or use it in a with block")
        return self._process.pid

    def start(self) -> None:
        """Start pulseaudio and wait until pactl can reach it."""
        if self._process is not None:
            raise SoundServerError(f"the sound server is already running as process {self._process.pid}")
        missing = missing_programs()
        if missing:
            raise SoundServerError(f"programs not found on PATH: {', '.join(missing)}: {INSTALL_HINT}")
        self._directory = Path(tempfile.mkdtemp(prefix="soundserver-"))
        self._write_config_files()
        self._log_file = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            self._server_command(),
            env=self._server_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the helper programs and the server, and delete its files."""
        for helper in self._helpers:
            _stop_process(helper)
        self._helpers.clear()
        if self._process is not None:
            _stop_process(self._process)
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self.microphones.clear()
        self.speakers.clear()

    def _write_config_files(self) -> None:
        for name in ("runtime", "state", "home"):
            (self.directory / name).mkdir(mode=0o700)
        rescue = "yes" if self.rescue_streams else "no"
        (self.directory / "daemon.conf").write_text(
            f"default-sample-rate = {SERVER_SAMPLE_RATE}\n"
            f"alternate-sample-rate = {SERVER_SAMPLE_RATE}\n"
            f"rescue-streams = {rescue}\n"
        )
        (self.directory / "client.conf").write_text("autospawn = no\n")
        (self.directory / "server.pa").write_text(
            f"load-module module-native-protocol-unix socket={self.socket_path} auth-anonymous=1\n"
        )

    def _server_command(self) -> list[str]:
        # -n skips the system default.pa, so no hardware, D-Bus or X11 modules
        # are loaded. The server stays up until stop(), whatever its clients do.
        return [
            "pulseaudio",
            "-n",
            f"--file={self.directory / 'server.pa'}",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--log-target=stderr",
        ]

    def _server_env(self) -> dict[str, str]:
        # Without a session bus address, a display and the user's
        # XDG_RUNTIME_DIR, the server cannot reach a desktop session's D-Bus.
        dropped = ("PULSE_SERVER", "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")
        env = {key: value for key, value in os.environ.items() if key not in dropped}
        env.update(
            HOME=str(self.directory / "home"),
            XDG_CONFIG_HOME=str(self.directory / "home" / ".config"),
            XDG_RUNTIME_DIR=str(self.directory / "runtime"),
            PULSE_RUNTIME_PATH=str(self.directory / "runtime"),
            PULSE_STATE_PATH=str(self.directory / "state"),
            PULSE_CONFIG=str(self.directory / "daemon.conf"),
        )
        return env

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SoundServerError(
                    f"pulseaudio exited with status {self._process.returncode} during startup; "
                    f"its log ends with:\n{self.log_tail()}"
                )
            if self.socket_path.exists() and self._pactl_succeeds("info"):
                return
            time.sleep(POLL_INTERVAL_S)
        raise SoundServerError(
            f"pulseaudio did not accept connections on {self.socket_path} within "
            f"{START_TIMEOUT_S} s; its log ends with:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        """Return the end of the server log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError as error:
            return f"(log not readable: {error})"

    # Commands

    def pactl(self, *args: str) -> str:
        """Run pactl against this server and return its standard output."""
        command = ["pactl", *args]
        try:
            result = subprocess.run(
                command, env=self.env, capture_output=True, text=True, timeout=PACTL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise SoundServerError(
                f"{' '.join(command)} timed out after {PACTL_TIMEOUT_S} s; "
                f"check that the server is running, its log ends with:\n{self.log_tail()}"
            ) from error
        if result.returncode != 0:
            raise SoundServerError(
                f"{' '.join(command)} failed with status {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def _pactl_succeeds(self, *args: str) -> bool:
        try:
            self.pactl(*args)
        except SoundServerError:
            return False
        return True

    def load_module(self, name: str, *arguments: str) -> int:
        """Load a PulseAudio module and return its index."""
        return int(self.pactl("load-module", name, *arguments).strip())

    def unload_module(self, index: int) -> None:
        self.pactl("unload-module", str(index))

    def source_names(self) -> list[str]:
        """Return the names of all sources, including sink monitors."""
        return self._short_list_names("sources")

    def sink_names(self) -> list[str]:
        return self._short_list_names("sinks")

    def _short_list_names(self, kind: str) -> list[str]:
        lines = self.pactl("list", "short", kind).splitlines()
        return [line.split("\t")[1] for line in lines if line.strip()]

    def default_source(self) -> str:
        return self.pactl("get-default-source").strip()

    def default_sink(self) -> str:
        return self.pactl("get-default-sink").strip()

    def set_default_source(self, name: str) -> None:
        self.pactl("set-default-source", name)

    def set_default_sink(self, name: str) -> None:
        self.pactl("set-default-sink", name)

    # Microphones

    def add_microphone(
        self,
        name: str = "mic",
        *,
        rate: int = MICROPHONE_RATE,
        channels: int = MICROPHONE_CHANNELS,
        make_default: bool = True,
    ) -> Microphone:
        """Create a virtual microphone with a fixed sample rate and channel count.

        The microphone delivers silence until a clip is played into it. Its
        feed sink is a sink too, so the caller should create a speaker and
        make it the default sink before programs play audio.
        """
        if name in self.microphones:
            raise SoundServerError(f"microphone {name!r} already exists: remove it first or pick another name")
        feed_sink = name + FEED_SINK_SUFFIX
        spec = (f"rate={rate}", f"channels={channels}", f"format={SAMPLE_FORMAT}")
        feed_module = self.load_module("module-null-sink", f"sink_name={feed_sink}", *spec, NULL_SINK_OPTIONS)
        try:
            source_module = self.load_module(
                "module-remap-source", f"source_name={name}", f"master={feed_sink}.monitor", *spec
            )
        except SoundServerError:
            self.unload_module(feed_module)
            raise
        microphone = Microphone(name, rate, channels, feed_sink, feed_module, source_module)
        self.microphones[name] = microphone
        if make_default:
            self.set_default_source(name)
        return microphone

    def remove_microphone(self, name: str = "mic") -> None:
        """Remove the microphone's source and its feed sink, like an unplug."""
        microphone = self._microphone(name)
        self.unload_module(microphone.source_module)
        self.unload_module(microphone.feed_module)
        del self.microphones[name]

    def _microphone(self, name: str) -> Microphone:
        try:
            return self.microphones[name]
        except KeyError:
            raise SoundServerError(
                f"microphone {name!r} not found; existing microphones: {sorted(self.microphones)}"
            ) from None

    def start_playing_into_microphone(self, path: str | os.PathLike, name: str = "mic") -> subprocess.Popen:
        """Start paplay on `path` into the microphone and return the process.

        The file can have any rate and channel count that libsndfile reads,
        because the server converts it to the microphone's format.
        """
        microphone = self._microphone(name)
        path = _existing_file(path)
        process = subprocess.Popen(
            ["paplay", f"--device={microphone.feed_sink}", str(path)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._helpers.append(process)
        return process

    def play_into_microphone(self, path: str | os.PathLike, name: str = "mic") -> None:
        """Play `path` into the microphone and return when it has been played."""
        timeout = soundfile.info(str(_existing_file(path))).duration + PLAYBACK_MARGIN_S
        process = self.start_playing_into_microphone(path, name)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as error:
            _stop_process(process)
            raise SoundServerError(
                f"paplay of {path} into microphone {name!r} did not finish within {timeout:.1f} s; "
                "check the server log and the machine's load"
            ) from error
        finally:
            self._helpers.remove(process)
        if process.returncode != 0:
            raise SoundServerError(
                f"paplay of {path} into microphone {name!r} failed with status "
                f"{process.returncode}: {stderr.decode(errors='replace').strip()}"
            )

    # Speakers

    def add_speaker(
        self,
        name: str = "speaker",
        *,
        rate: int = SPEAKER_RATE,
        channels: int = SPEAKER_CHANNELS,
        make_default: bool = True,
    ) -> Speaker:
        """Create a null sink with a fixed sample rate and channel count."""
        if name in self.speakers:
            raise SoundServerError(f"speaker {name!r} already exists: remove it first or pick another name")
        module = self.load_module(
            "module-null-sink",
            f"sink_name={name}",
            f"rate={rate}",
            f"channels={channels}",
            f"format={SAMPLE_FORMAT}",
            NULL_SINK_OPTIONS,
        )
        speaker = Speaker(name, rate, channels, module)
        self.speakers[name] = speaker
        if make_default:
            self.set_default_sink(name)
        return speaker

    def remove_speaker(self, name: str = "speaker") -> None:
        speaker = self._speaker(name)
        self.unload_module(speaker.module)
        del self.speakers[name]

    def _speaker(self, name: str) -> Speaker:
        try:
            return self.speakers[name]
        except KeyError:
            raise SoundServerError(f"speaker {name!r} not found; existing speakers: {sorted(self.speakers)}") from None

    @contextlib.contextmanager
    def record_speaker(self, path: str | os.PathLike, name: str = "speaker") -> Iterator[Path]:
        """Record the speaker's monitor to a WAV file while the block runs.

        The file has the speaker's rate and channel count and 16-bit samples.
        The recording stops when the block exits, so let the block wait until
        the audio under test has been played.
        """
        speaker = self._speaker(name)
        path = Path(path)
        process = subprocess.Popen(
            [
                "parecord",
                f"--device={speaker.monitor}",
                f"--rate={speaker.rate}",
                f"--channels={speaker.channels}",
                f"--format={SAMPLE_FORMAT}",
                "--file-format=wav",
                f"--latency-msec={RECORD_LATENCY_MS}",
                str(path),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._helpers.append(process)
        try:
            self._wait_for_recorder(process, speaker)
            yield path
        finally:
            # parecord writes the final WAV header when it gets SIGINT.
            _stop_process(process, signal.SIGINT)
            self._helpers.remove(process)
        if not path.is_file():
            stderr = process.stderr.read().decode(errors="replace").strip()
            raise SoundServerError(f"parecord wrote no file {path} for speaker {name!r}: {stderr}")

    def _wait_for_recorder(self, process: subprocess.Popen, speaker: Speaker) -> None:
        """Wait until the recording stream of `process` exists on the server."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace").strip()
                raise SoundServerError(
                    f"parecord on {speaker.monitor} exited with status {process.returncode}: {stderr}"
                )
            if process.pid in self.recording_sources():
                return
            time.sleep(POLL_INTERVAL_S)
        raise SoundServerError(
            f"parecord on {speaker.monitor} did not connect within {START_TIMEOUT_S} s; "
            f"the server log ends with:\n{self.log_tail()}"
        )

    def recording_sources(self) -> dict[int, str]:
        """Map the process id of each recording client to its source's name.

        Streams that a module owns, such as a microphone's remap stream, have
        no client process and are left out. The name is empty for a source
        removed between the two queries.
        """
        sources = json.loads(self.pactl("--format=json", "list", "sources"))
        source_names = {source["index"]: source["name"] for source in sources}
        outputs = json.loads(self.pactl("--format=json", "list", "source-outputs"))
        return {
            int(output["properties"]["application.process.id"]): source_names.get(output["source"], "")
            for output in outputs
            if "application.process.id" in output["properties"]
        }
