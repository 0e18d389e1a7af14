#!/usr/bin/env bash
# Install everything the assistant needs on a fresh Debian or Raspberry Pi OS machine:
# system packages (apt) and a virtual environment in .venv with the daemon, its
# models and, with --test, the test tools. Safe to run again.
set -euo pipefail

cd "$(dirname "$0")/.."

with_tests=0
if [[ "${1:-}" == "--test" ]]; then
    with_tests=1
fi

sudo_cmd=()
if [[ "$(id -u)" != 0 ]]; then
    sudo_cmd=(sudo)
fi

# PortAudio and libsndfile for audio I/O; a C/C++ toolchain and CMake to build llama.cpp.
packages=(python3-venv python3-dev build-essential cmake libportaudio2 libsndfile1)
if (( with_tests )); then
    # A real sound server for the device tests, strace to prove the daemon opens no
    # network socket, and systemd's tools to check the unit files.
    packages+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils strace systemd)
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} )); then
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip

# llama.cpp built for the host CPU (GGML_NATIVE=ON) crashes on CPUs with AMX in its
# first decode; the portable build uses AVX2 kernels and works everywhere.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
if (( with_tests )); then
    .venv/bin/python -m pip install -q -e ".[test]"
else
    .venv/bin/python -m pip install -q -e .
fi
echo "setup done: run .venv/bin/assistant --help"
