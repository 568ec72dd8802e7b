"""scripts/setup.sh: what it hands to other programs (run with fake clients, no services)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: A fake MQTT client: records its command line and the options file it would read.
_FAKE_CLIENT = """#!/bin/sh
name="$(basename "$0")"
printf '%s\\n' "$*" >>"$LOG/argv"
cat "${XDG_CONFIG_HOME:-/nonexistent}/$name" >>"$LOG/options" 2>/dev/null
[ "$name" = mosquitto_sub ] && echo ping
exit 0
"""


class TestMqttProbe:
    def test_password_never_on_a_command_line(self, tmp_path: Path) -> None:
        """The broker password reaches mosquitto_pub/sub through a private options file:
        a command line is readable by every local user (ps, /proc/PID/cmdline)."""
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("mosquitto_pub", "mosquitto_sub"):
            fake = bin_dir / name
            fake.write_text(_FAKE_CLIENT)
            fake.chmod(0o755)
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "LOG": str(tmp_path),
            "FLEETD_MQTT__USERNAME": "fleetd",
            "FLEETD_MQTT__PASSWORD": "pw-s3cret-42",
        }
        done = subprocess.run(
            ["bash", "-c", f"source {REPO / 'scripts/setup.sh'} && mqtt_probe"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        argv = (tmp_path / "argv").read_text()
        assert argv.count("-t fleetd/setup/probe/") == 3
        assert "pw-s3cret-42" not in argv
        assert "-P pw-s3cret-42" in (tmp_path / "options").read_text()


class TestUnitChecker:
    def test_installs_systemd_only_when_systemd_analyze_is_missing(self, tmp_path: Path) -> None:
        """Present: nothing is installed (re-runs stay quick). Missing: apt-get installs the
        `systemd` package, non-interactively."""
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "systemd-analyze"
        script = (
            f"source {REPO / 'scripts/setup.sh'}\n"
            # Stand-ins for the package tools: record what would be installed.
            "pkg_installed() { return 1; }\n"
            "apt_update_once() { :; }\n"
            f'as_root() {{ echo "$*" >>{tmp_path}/installed; '
            f'printf "#!/bin/sh\\n" >{fake}; chmod +x {fake}; }}\n'
            "install_unit_checker\n"
        )
        # A PATH of only what setup.sh needs here: /usr/bin holds the real systemd-analyze.
        for tool in ("dirname", "chmod", "cat"):
            (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
        env = {**os.environ, "PATH": str(bin_dir)}
        done = subprocess.run(
            ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        installed = (tmp_path / "installed").read_text()
        assert "DEBIAN_FRONTEND=noninteractive apt-get install" in installed
        assert installed.rstrip().endswith(" systemd")
        # Now present: a second run installs nothing.
        (tmp_path / "installed").unlink()
        done = subprocess.run(
            ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "installed").exists()
