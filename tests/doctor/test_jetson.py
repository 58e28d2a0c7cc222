"""A Jetson's release, power mode and clocks, read from recorded outputs (this machine is no Jetson)."""

import pytest
from recorded import (
    JETSON_CLOCKS_DVFS,
    JETSON_CLOCKS_LOCKED,
    JETSON_CLOCKS_NOT_ROOT,
    NVPMODEL,
    NVPMODEL_VERBOSE,
    TEGRA_RELEASE_R36,
    TEGRA_RELEASE_R39,
    FakeSystem,
    orin,
)

from vitdeploy.doctor.jetson import (
    PowerMode,
    jetpack_major,
    parse_jetson_clocks,
    parse_nvpmodel,
    parse_tegra_release,
    read_jetson,
)


@pytest.mark.parametrize(("text", "l4t", "jetpack"), [(TEGRA_RELEASE_R36, "36.4.3", "6"), (TEGRA_RELEASE_R39, "39.2.0", "7"),
                                                       ("# R35 (release), REVISION: 5.0, GCID: 1", "35.5.0", "5")])
def test_the_l4t_release_and_its_jetpack(text, l4t, jetpack):
    assert parse_tegra_release(text) == l4t
    assert jetpack_major(l4t) == jetpack


def test_an_unreadable_release_file_is_unknown_not_a_guess():
    assert parse_tegra_release("TARGET_USERSPACE_LIB_DIR=nvidia\n") is None
    assert jetpack_major("99.1.0") is None


def test_power_mode_plain_and_verbose():
    assert parse_nvpmodel(NVPMODEL) == PowerMode("MAXN_SUPER", 2)
    assert parse_nvpmodel(NVPMODEL_VERBOSE) == PowerMode("40W", 4)
    assert str(PowerMode("MAXN", 0)) == "MAXN (mode 0)"
    assert parse_nvpmodel("nvpmodel: command failed\n") is None


def test_dvfs_clocks_are_not_locked():
    clocks = parse_jetson_clocks(JETSON_CLOCKS_DVFS)
    assert clocks.locked is False
    assert "GPU 306-625 MHz" in clocks.detail and "EMC 204-2133 MHz" in clocks.detail
    assert "0/6 CPUs pinned" in clocks.detail


def test_clocks_after_jetson_clocks_are_locked():
    """DLA and PVA lines (MinFreq=0) are not clocks jetson_clocks pins; they must not count."""
    clocks = parse_jetson_clocks(JETSON_CLOCKS_LOCKED)
    assert clocks.locked is True
    assert "GPU 1300-1300 MHz" in clocks.detail and "4/4 CPUs pinned" in clocks.detail


def test_one_cpu_left_scaling_is_not_locked():
    text = JETSON_CLOCKS_LOCKED.replace("cpu11: Governor=schedutil MinFreq=2201600", "cpu11: Governor=schedutil MinFreq=729600")
    assert parse_jetson_clocks(text).locked is False


def test_a_whole_jetson(tmp_path):
    system = orin(tmp_path)
    facts = read_jetson(system)
    assert facts.model == "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"
    assert (facts.l4t, facts.jetpack, facts.l4t_core) == ("36.4.3", "6.2", "36.4.3-20250107174145")
    assert facts.power_mode == PowerMode("MAXN_SUPER", 2)
    assert facts.clocks.locked is False
    assert facts.to_dict()["power_mode"] == "MAXN_SUPER (mode 2)"


def test_without_root_the_gpu_devfreq_still_tells(tmp_path):
    """jetson_clocks --show refuses a normal user; sysfs devfreq is readable by anyone."""
    system = orin(tmp_path, clocks=JETSON_CLOCKS_NOT_ROOT, clocks_rc=1)
    node = system.path("/sys/class/devfreq/17000000.gpu")
    node.mkdir(parents=True)
    (node / "min_freq").write_text("306000000\n")
    (node / "max_freq").write_text("1300500000\n")
    clocks = read_jetson(system).clocks
    assert clocks.locked is False and "sysfs devfreq 17000000.gpu" in clocks.detail
    (node / "min_freq").write_text("1300500000\n")
    assert read_jetson(system).clocks.locked is True


def test_without_root_or_devfreq_it_says_it_cannot_tell(tmp_path):
    clocks = read_jetson(orin(tmp_path, clocks=JETSON_CLOCKS_NOT_ROOT, clocks_rc=1)).clocks
    assert clocks.locked is None and "needs root" in clocks.detail


def test_jetpack_from_the_l4t_major_without_the_meta_package(tmp_path):
    system = FakeSystem(tmp_path, files={"/etc/nv_tegra_release": TEGRA_RELEASE_R39})
    facts = read_jetson(system)
    assert (facts.l4t, facts.jetpack, facts.power_mode, facts.model) == ("39.2.0", "7", None, None)


def test_not_a_jetson(tmp_path):
    system = FakeSystem(tmp_path)
    assert read_jetson(system) is None
    assert system.ran == []  # no Jetson commands run elsewhere
