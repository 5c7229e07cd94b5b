"""What a benchmark ran on: machine, Python and package versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

#: Distributions whose versions a report records.
PACKAGES = ("flinq", "lmdb", "faster-fifo", "persist-queue", "redis", "matplotlib")


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo if present, else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                model = value.strip()
                if model and key.strip() in ("model name", "Model", "Hardware", "cpu model", "cpu"):
                    return model
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cores() -> int | None:
    """Cores this process may run on, where the OS says."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return None


def _filesystem(path: str) -> str | None:
    """Type of the file system holding path, from /proc/mounts (Linux)."""
    try:
        with open("/proc/mounts", encoding="utf-8") as file:
            mounts = [line.split()[1:3] for line in file if len(line.split()) > 2]
    except OSError:
        return None
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for mount_point, fs_type in mounts:
        prefix = mount_point.rstrip("/") + "/"
        if (real + "/").startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), fs_type)
    return best[1] if best else None


def machine_info(tempdir: str | None = None) -> dict[str, Any]:
    """Platform, CPU model, core counts and load average now."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if tempdir is not None:
        info["tempdir"] = tempdir
        info["tempdir_filesystem"] = _filesystem(tempdir)
    return info


def python_info() -> dict[str, str]:
    """Python implementation, version and build."""
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "build": " ".join(platform.python_build()),
        "compiler": platform.python_compiler(),
        "executable": sys.executable,
    }


def package_versions() -> dict[str, str | None]:
    """Installed version of each of PACKAGES (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_info(package_dir: str) -> dict[str, Any] | None:
    """The git commit of the checkout package_dir is in, and whether tracked
    files differ from it; None when it is not in a git work tree."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", package_dir, *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "modified_files": changed.splitlines() if changed else [],
    }
