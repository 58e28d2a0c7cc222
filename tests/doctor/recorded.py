"""Outputs of the files and commands the doctor reads, in the formats real machines print them
(public logs of Jetson AGX Orin / Orin NX machines on JetPack 6 (L4T R36) and 7 (L4T R39), and an
OpenCV built for aarch64 with GStreamer); serial numbers and dates changed. A fake ``System`` serves
them to the doctor on a machine that is not a Jetson."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vitdeploy.doctor.system import CommandOutput, System

TEGRA_RELEASE_R36 = """\
# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025
# KERNEL_VARIANT: oot
TARGET_USERSPACE_LIB_DIR=nvidia
TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia
"""

TEGRA_RELEASE_R39 = """\
# R39 (release), REVISION: 2.0, GCID: 45755727, BOARD: generic, EABI: aarch64, DATE: Mon Jun  1 09:28:48 PM UTC 2026
# KERNEL_VARIANT: oot
"""

NVPMODEL = "NV Power Mode: MAXN_SUPER\n2\n"

NVPMODEL_VERBOSE = """\
NVPM VERB: Config file: /etc/nvpmodel.conf
NVPM VERB: parsing done for /etc/nvpmodel.conf
NVPM VERB: Current mode: NV Power Mode: 40W
4
NVPM VERB: PARAM CPU_ONLINE: ARG CORE_0: PATH /sys/devices/system/cpu/cpu0/online: REAL_VAL: 1 CONF_VAL: 1
NVPM VERB: PARAM GPU: ARG MAX_FREQ: PATH /sys/devices/platform/17000000.gpu/devfreq_dev/max_freq: REAL_VAL: 1173000000 CONF_VAL: 1173000000
"""

# Orin NX 16 GB, JetPack 6.2, MAXN_SUPER, DVFS on (the default after boot).
JETSON_CLOCKS_DVFS = """\
SOC family:tegra234  Machine:NVIDIA Jetson Orin NX Engineering Reference Developer Kit
Online CPUs: 0-5
cpu0:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=1510400 IdleStates: WFI=1 c7=1
cpu1:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=1497600 IdleStates: WFI=1 c7=1
cpu2:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=1190400 IdleStates: WFI=1 c7=1
cpu3:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=1113600 IdleStates: WFI=1 c7=1
cpu4:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=729600 IdleStates: WFI=1 c7=1
cpu5:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=883200 IdleStates: WFI=1 c7=1
GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000
Active GPU TPCs: 2
EMC MinFreq=204000000 MaxFreq=2133000000 CurrentFreq=2133000000 FreqOverride=0
FAN Dynamic Speed Control=nvfancontrol hwmon0_pwm1=65
NV Power Mode: MAXN_SUPER
"""

# AGX Orin 64 GB on L4T R39 after `sudo jetson_clocks` (the JetPack 7 layout: no Online= per CPU).
JETSON_CLOCKS_LOCKED = """\
SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11, Offline CPUs:
cpu0:  Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1:  Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu10: Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu11: Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
Active GPU TPCs: 8
EMC MinFreq=3199000000 MaxFreq=3199000000 CurrentFreq=3199000000
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA0_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
PVA0_VPS0: Online=1 MinFreq=0 MaxFreq=1369600000 CurrentFreq=1369600000
FAN Dynamic Speed Control=nvfancontrol hwmon2_pwm1=66
NV Power Mode: MAXN
"""

JETSON_CLOCKS_NOT_ROOT = "Error: Run this script(/usr/bin/jetson_clocks) as a root user\n"

# nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader,nounits
NVIDIA_SMI_TWO_GPUS = "NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15\nNVIDIA RTX 4000 Ada Generation, 8.9, 20480, 550.54.15\n"

# cv2.getBuildInformation(), Video I/O of an aarch64 OpenCV built with GStreamer (as JetPack's is)
BUILD_INFO_GSTREAMER = """\
    PFM:                         YES

  Video I/O:
    DC1394:                      NO
    FFMPEG:                      NO
      avcodec:                   NO
      avformat:                  NO
      avutil:                    NO
      swscale:                   NO
      avresample:                NO
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)

  Parallel framework:            pthreads
"""

# ... and of pip's opencv-python-headless 5.0 (FFmpeg, no GStreamer)
BUILD_INFO_WHEEL = """\
  Video I/O:
    FFMPEG:                      YES
      avcodec:                   YES (62.28.101)
      avformat:                  YES (62.12.101)
      avutil:                    YES (60.26.101)
      swscale:                   YES (9.5.101)
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
    Orbbec:                      NO

  Parallel framework:            pthreads
"""


class FakeSystem(System):
    """Files under ``root`` (a test's temporary folder) and commands answered from ``commands``
    (program name -> (returncode, stdout) or (returncode, stdout, stderr)); a program not listed
    is not on the machine."""

    def __init__(self, root: Path, *, files: dict[str, str] | None = None, commands: dict | None = None):
        super().__init__(root=root)
        for name, text in (files or {}).items():
            path = self.path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.commands = commands or {}
        self.ran: list[list[str]] = []

    def run(self, argv: Sequence[str]) -> CommandOutput | None:
        self.ran.append(list(argv))
        answer = self.commands.get(argv[0])
        if answer is None:
            return None
        if callable(answer):
            answer = answer(list(argv))
        return CommandOutput(answer[0], answer[1], answer[2] if len(answer) > 2 else "")


def orin(root: Path, *, clocks: str = JETSON_CLOCKS_DVFS, clocks_rc: int = 0) -> FakeSystem:
    """A JetPack 6.2 Orin NX, as the doctor sees it."""
    packages = {"nvidia-jetpack": "6.2+b77", "nvidia-l4t-core": "36.4.3-20250107174145"}
    return FakeSystem(root, files={"/etc/nv_tegra_release": TEGRA_RELEASE_R36,
                                   "/proc/device-tree/model": "NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00"},
                      commands={"nvpmodel": (0, NVPMODEL), "jetson_clocks": (clocks_rc, clocks),
                                "dpkg-query": lambda argv: (0, packages[argv[-1]]) if argv[-1] in packages else (1, "")})
