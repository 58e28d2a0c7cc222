"""A Jetson's release, power mode and clocks: what makes or breaks a latency figure measured on it.

Read from ``/etc/nv_tegra_release`` (the L4T release), dpkg's ``nvidia-l4t-core`` and
``nvidia-jetpack`` packages, ``/proc/device-tree/model``, ``nvpmodel -q`` (the power mode) and
``jetson_clocks --show`` (whether the CPU, GPU and memory clocks are pinned at their maximum: with
DVFS on, the same engine's latency moves with the load). ``jetson_clocks --show`` needs root; without
it the GPU's devfreq limits in sysfs (readable by anyone) still tell a pinned GPU clock from a
scaling one. The parsers take the commands' text as printed (formats recorded from JetPack 6 and 7
machines in ``tests/doctor/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vitdeploy.doctor.system import System

_TEGRA_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")
_POWER_MODE = re.compile(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)")
_FREQS = re.compile(r"MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)")
# The JetPack major each L4T major belongs to (NVIDIA's Jetson Linux archive); the exact JetPack
# comes from the nvidia-jetpack package where it is installed.
_JETPACK_OF_L4T = {32: "4", 34: "5", 35: "5", 36: "6", 38: "7", 39: "7"}


@dataclass(frozen=True)
class PowerMode:
    """``nvpmodel -q``: the mode's name ("MAXN", "30W", "MAXN_SUPER") and number."""

    name: str
    id: int

    def __str__(self) -> str:
        return f"{self.name} (mode {self.id})"


@dataclass(frozen=True)
class Clocks:
    """Whether the clocks are pinned: ``locked`` None when it could not be told; ``detail`` says
    what was read (min/max MHz of the GPU and memory, or why nothing could be)."""

    locked: bool | None
    detail: str


@dataclass(frozen=True)
class JetsonFacts:
    model: str | None  # "NVIDIA Jetson AGX Orin Developer Kit"
    l4t: str | None  # "36.4.3"
    jetpack: str | None  # "6.2" (nvidia-jetpack) or "6" (from the L4T major)
    l4t_core: str | None  # the nvidia-l4t-core package's version
    power_mode: PowerMode | None
    clocks: Clocks

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "l4t": self.l4t, "jetpack": self.jetpack, "l4t_core": self.l4t_core,
                "power_mode": str(self.power_mode) if self.power_mode else None,
                "clocks_locked": self.clocks.locked, "clocks": self.clocks.detail}


def parse_tegra_release(text: str) -> str | None:
    """'# R36 (release), REVISION: 4.3, GCID: ...' -> '36.4.3'."""
    m = _TEGRA_RELEASE.search(text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def jetpack_major(l4t: str) -> str | None:
    """'36.4.3' -> '6'; None for an L4T major vitdeploy does not know."""
    return _JETPACK_OF_L4T.get(int(l4t.split(".")[0]))


def parse_nvpmodel(text: str) -> PowerMode | None:
    """``nvpmodel -q`` (plain or --verbose): 'NV Power Mode: MAXN' and the mode number on the next line."""
    m = _POWER_MODE.search(text)
    return PowerMode(m.group(1), int(m.group(2))) if m else None


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:.0f}"


def parse_jetson_clocks(text: str) -> Clocks:
    """``jetson_clocks --show``: locked when every CPU's, the GPU's and the memory controller's
    (EMC) minimum frequency equals its maximum, as ``jetson_clocks`` leaves them (CPU lines in kHz,
    GPU and EMC in Hz)."""
    cpus, units = [], {}
    for line in text.splitlines():
        m = _FREQS.search(line)
        if m is None:
            continue
        lo, hi = int(m.group(1)), int(m.group(2))
        name = line.strip().split()[0].rstrip(":")
        if re.fullmatch(r"cpu\d+", name):
            cpus.append((lo, hi))
        elif name in ("GPU", "EMC"):
            units[name] = (lo, hi)
    if "GPU" not in units:
        return Clocks(None, "jetson_clocks --show printed no GPU line")
    pinned = [lo == hi for lo, hi in cpus + list(units.values())]
    parts = [f"{name} {_mhz(lo)}-{_mhz(hi)} MHz" for name, (lo, hi) in units.items()]
    if cpus:
        parts.append(f"{sum(lo == hi for lo, hi in cpus)}/{len(cpus)} CPUs pinned")
    return Clocks(all(pinned), ", ".join(parts) + " (jetson_clocks --show)")


def gpu_devfreq(system: System) -> Clocks:
    """The GPU clock from sysfs devfreq (readable without root): pinned when min_freq = max_freq.
    Says nothing about the CPUs and memory, so only ``locked`` False is certain from it."""
    base = system.path("/sys/class/devfreq")
    names = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    for name in names:
        if not re.search(r"gpu|gv11b|gp10b|ga10b", name):
            continue
        lo, hi = (system.read(f"/sys/class/devfreq/{name}/{f}") for f in ("min_freq", "max_freq"))
        if lo and hi and lo.strip().isdigit() and hi.strip().isdigit():
            lo_hz, hi_hz = int(lo), int(hi)
            return Clocks(lo_hz == hi_hz, f"GPU {_mhz(lo_hz)}-{_mhz(hi_hz)} MHz (sysfs devfreq {name}; CPU and "
                                          "memory clocks need root: sudo jetson_clocks --show)")
    return Clocks(None, "jetson_clocks --show needs root (sudo) and no GPU devfreq node was found")


def read_clocks(system: System) -> Clocks:
    out = system.run(["jetson_clocks", "--show"])
    if out is not None and out.ok and "MinFreq=" in out.stdout:
        return parse_jetson_clocks(out.stdout)
    return gpu_devfreq(system)


def _dpkg_version(system: System, package: str) -> str | None:
    out = system.run(["dpkg-query", "-W", "-f=${Version}", package])
    if out is None or not out.ok:
        return None
    return out.stdout.strip() or None


def read_jetson(system: System) -> JetsonFacts | None:
    """The Jetson facts of this machine, or None when it is not a Jetson (no nv_tegra_release)."""
    release = system.read("/etc/nv_tegra_release")
    if release is None:
        return None
    l4t = parse_tegra_release(release)
    jetpack = _dpkg_version(system, "nvidia-jetpack")
    if jetpack is not None:
        jetpack = jetpack.split("+")[0].split("-")[0]  # "6.2+b77" -> "6.2"
    elif l4t is not None:
        jetpack = jetpack_major(l4t)
    mode = system.run(["nvpmodel", "-q"])
    model = system.read("/proc/device-tree/model")
    return JetsonFacts(model=model.strip() if model else None, l4t=l4t, jetpack=jetpack,
                       l4t_core=_dpkg_version(system, "nvidia-l4t-core"),
                       power_mode=parse_nvpmodel(mode.stdout) if mode is not None and mode.ok else None,
                       clocks=read_clocks(system))
