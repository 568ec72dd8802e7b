"""Loading settings: every wrong value is refused with the key that is wrong.

A bad configuration must stop fleetd before it touches anything, name each offending key
the way it is written in the TOML file, and (from the CLI) exit with status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dispatcher.config import ConfigError, Environment, Settings, load_settings

WriteConfig = Callable[[str], Path]


@pytest.fixture(autouse=True)
def _no_fleetd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from a clean environment: no FLEETD_* variable of the developer's."""
    for name in list(os.environ):
        if name.startswith("FLEETD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write TOML text to a file and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "fleetd.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def problems_of(path: Path | None = None) -> dict[str, str]:
    """The ``{key: message}`` of the ConfigError that loading ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return dict(info.value.problems)


MAP_WITHOUT_ORIGIN = """
[[facilities]]
key = "north"
name = "North Site"

[[facilities.maps]]
map_id = "north-1"
"""


class TestDefaults:
    def test_no_file_and_no_environment_gives_the_defaults(self) -> None:
        """With nothing configured, fleetd runs against the local services."""
        settings = load_settings()
        assert settings == Settings()
        assert settings.database.dsn == "postgresql://postgres@127.0.0.1:5432/fleetd"
        assert settings.daemon.environment is Environment.DEVELOPMENT

    def test_an_empty_file_gives_the_defaults(self, write_config: WriteConfig) -> None:
        """An empty file is valid and changes nothing."""
        assert load_settings(write_config("")) == Settings()


class TestRefusedValues:
    def test_wrong_type_names_the_key(self, write_config: WriteConfig) -> None:
        """A string where a number belongs is refused under its dotted key."""
        problems = problems_of(write_config('[database]\npool_min = "two"\n'))
        assert list(problems) == ["database.pool_min"]
        assert "'two'" in problems["database.pool_min"]

    def test_misspelt_key_is_refused_not_ignored(self, write_config: WriteConfig) -> None:
        """A typo must not silently fall back to the default."""
        problems = problems_of(write_config('[database]\ndns = "postgresql://x@y/z"\n'))
        assert list(problems) == ["database.dns"]
        assert "unknown key" in problems["database.dns"]

    def test_misspelt_section_is_refused(self, write_config: WriteConfig) -> None:
        """A whole section under a wrong name is refused too."""
        problems = problems_of(write_config("[databse]\npool_min = 2\n"))
        assert list(problems) == ["databse"]
        assert "unknown key" in problems["databse"]

    @pytest.mark.parametrize(
        ("toml", "key"),
        [
            ("[api]\nport = 70000\n", "api.port"),
            ("[mqtt]\nport = 0\n", "mqtt.port"),
            ("[fleet]\nheartbeat_timeout_s = 0\n", "fleet.heartbeat_timeout_s"),
            ("[daemon]\nshutdown_grace_s = -1.0\n", "daemon.shutdown_grace_s"),
            ("[database]\ntelemetry_buffer_rows = 10\n", "database.telemetry_buffer_rows"),
            ('[daemon]\nlog_level = "verbose"\n', "daemon.log_level"),
            ('[daemon]\ninstance_id = "has space"\n', "daemon.instance_id"),
            ('[database]\ndsn = "mysql://localhost/fleetd"\n', "database.dsn"),
            ('[redis]\nurl = "localhost:6379"\n', "redis.url"),
            ('[mqtt]\nvda_interface = "uagv/x"\n', "mqtt.vda_interface"),
            ('[fleet]\nunknown_vehicles = "maybe"\n', "fleet.unknown_vehicles"),
        ],
    )
    def test_out_of_range_value_names_the_key(
        self, write_config: WriteConfig, toml: str, key: str
    ) -> None:
        """Values outside their documented range are refused under their own key."""
        assert list(problems_of(write_config(toml))) == [key]

    def test_inconsistent_pool_bounds_are_refused(self, write_config: WriteConfig) -> None:
        """pool_min above pool_max is refused, naming the section and both keys."""
        problems = problems_of(write_config("[database]\npool_min = 20\npool_max = 10\n"))
        assert list(problems) == ["database"]
        assert "pool_min" in problems["database"]

    def test_every_wrong_key_is_reported_at_once(self, write_config: WriteConfig) -> None:
        """One run shows all problems, not the first one only."""
        problems = problems_of(write_config("[api]\nport = 0\n[mqtt]\nkeepalive_s = 1\nhots = 1\n"))
        assert set(problems) == {"api.port", "mqtt.keepalive_s", "mqtt.hots"}

    def test_the_message_lists_each_key_on_its_own_line(self, write_config: WriteConfig) -> None:
        """str(ConfigError) names the file and one 'key: message' line per problem."""
        path = write_config("[api]\nport = 0\n[fleet]\nheartbeat_timeout_s = 0\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        text = str(info.value)
        assert str(path) in text
        assert "\n  api.port: " in text
        assert "\n  fleet.heartbeat_timeout_s: " in text


class TestFacilities:
    def test_map_without_origin_names_each_missing_field(self, write_config: WriteConfig) -> None:
        """A map missing required fields is refused with the path to each field."""
        problems = problems_of(write_config(MAP_WITHOUT_ORIGIN))
        assert set(problems) == {
            "facilities[0].maps[0].origin_lat",
            "facilities[0].maps[0].origin_lon",
        }
        assert all("required" in msg.lower() for msg in problems.values())

    def test_facility_without_key_or_name_is_refused(self, write_config: WriteConfig) -> None:
        """key and name are required for a facility."""
        problems = problems_of(write_config('[[facilities]]\ntimezone = "UTC"\n'))
        assert set(problems) == {"facilities[0].key", "facilities[0].name"}

    def test_place_outside_the_globe_is_refused(self, write_config: WriteConfig) -> None:
        """Coordinates are range-checked."""
        text = (
            '[[facilities]]\nkey = "a"\nname = "A"\n'
            '[[facilities.places]]\nname = "Gate"\nlat = 91.0\nlon = 0.0\n'
        )
        assert list(problems_of(write_config(text))) == ["facilities[0].places[0].lat"]

    def test_duplicate_place_names_are_refused(self, write_config: WriteConfig) -> None:
        """Operators pick places by name, so names are unique within a facility."""
        text = '[[facilities]]\nkey = "a"\nname = "A"\n' + (
            '[[facilities.places]]\nname = "Gate"\nlat = 1.0\nlon = 1.0\n' * 2
        )
        problems = problems_of(write_config(text))
        assert list(problems) == ["facilities[0].places"]
        assert "Gate" in problems["facilities[0].places"]

    def test_duplicate_facility_keys_are_refused(self, write_config: WriteConfig) -> None:
        """Facility ids derive from keys, so keys are unique."""
        text = '[[facilities]]\nkey = "a"\nname = "A"\n[[facilities]]\nkey = "a"\nname = "B"\n'
        assert "facility keys must be unique" in str(problems_of(write_config(text)))

    def test_default_facility_must_exist(self, write_config: WriteConfig) -> None:
        """fleet.default_facility must name a configured facility."""
        text = '[fleet]\ndefault_facility = "b"\n[[facilities]]\nkey = "a"\nname = "A"\n'
        assert "default_facility" in str(problems_of(write_config(text)))


class TestVehicles:
    """[[fleet.vehicles]]: configured vehicles, pinned to a facility (issue 13 items 7, 8)."""

    def test_unknown_vehicles_are_refused_by_default(self) -> None:
        """Outside the demo (which sets "register"), a stray vehicle cannot join."""
        assert Settings().fleet.unknown_vehicles.value == "reject"

    def test_vehicles_load_with_their_facility(self, write_config: WriteConfig) -> None:
        text = (
            '[[fleet.vehicles]]\nkind = "robot"\nmanufacturer = "acme"\nserial = "WR-1"\n'
            'facility = "demo-campus"\n'
            '[[fleet.vehicles]]\nkind = "driver"\nserial = "d-7"\n'
        )
        vehicles = load_settings(write_config(text)).fleet.vehicles
        assert [(v.kind, v.serial, v.facility) for v in vehicles] == [
            ("robot", "WR-1", "demo-campus"),
            ("driver", "d-7", ""),
        ]

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ('kind = "robot"\nmanufacturer = "acme"\nserial = "WR 1"\n', "serialNumber"),
            ('kind = "robot"\nserial = "WR-1"\n', "manufacturer"),
            ('kind = "driver"\nmanufacturer = "acme"\nserial = "d1"\n', "manufacturer"),
            (
                'kind = "robot"\nmanufacturer = "acme"\nserial = "WR-1"\nfacility = "nowhere"\n',
                "nowhere",
            ),
        ],
    )
    def test_bad_vehicles_are_refused(
        self, write_config: WriteConfig, body: str, expected: str
    ) -> None:
        assert expected in str(problems_of(write_config("[[fleet.vehicles]]\n" + body)))

    def test_a_vehicle_listed_twice_is_refused(self, write_config: WriteConfig) -> None:
        one = '[[fleet.vehicles]]\nkind = "driver"\nserial = "d1"\n'
        assert "twice" in str(problems_of(write_config(one * 2)))

    def test_legacy_serials_need_strict_identities_off(self, write_config: WriteConfig) -> None:
        body = '[[fleet.vehicles]]\nkind = "robot"\nmanufacturer = "acme"\nserial = "WR@1"\n'
        assert "serialNumber" in str(problems_of(write_config(body)))
        legacy = load_settings(write_config("[fleet]\nstrict_identities = false\n" + body))
        assert legacy.fleet.vehicles[0].serial == "WR@1"


class TestUnreadableFiles:
    def test_bad_toml_is_refused(self, write_config: WriteConfig) -> None:
        """A syntax error is reported as such, with TOML's own position information."""
        problems = problems_of(write_config("[database\npool_min = 2\n"))
        assert list(problems) == ["(file)"]
        assert "not valid TOML" in problems["(file)"]
        assert "line 1" in problems["(file)"]

    def test_missing_file_is_refused(self, tmp_path: Path) -> None:
        """A configuration file that was asked for must exist; no silent defaults."""
        problems = problems_of(tmp_path / "absent.toml")
        assert problems == {"(file)": "configuration file not found"}

    def test_a_directory_is_not_a_configuration_file(self, tmp_path: Path) -> None:
        """Other read errors are refused too, with the reason."""
        problems = problems_of(tmp_path)
        assert list(problems) == ["(file)"]
        assert problems["(file)"].startswith("cannot read")

    def test_fleetd_config_names_the_file_when_no_path_is_given(
        self, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """$FLEETD_CONFIG is read when the caller passes no path."""
        monkeypatch.setenv("FLEETD_CONFIG", str(write_config("[api]\nport = 9000\n")))
        assert load_settings().api.port == 9000


class TestEnvironmentOverrides:
    def test_environment_wins_over_the_file(
        self, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """FLEETD_SECTION__KEY overrides that key and leaves the file's other keys alone."""
        path = write_config(
            '[database]\ndsn = "postgresql://file@127.0.0.1/fleetd"\npool_max = 7\n'
            "[fleet]\nheartbeat_timeout_s = 5.0\n"
        )
        monkeypatch.setenv("FLEETD_DATABASE__DSN", "postgresql://env@db.example/fleetd")
        monkeypatch.setenv("FLEETD_FLEET__HEARTBEAT_TIMEOUT_S", "12.5")
        settings = load_settings(path)
        assert settings.database.dsn == "postgresql://env@db.example/fleetd"
        assert settings.database.pool_max == 7
        assert settings.fleet.heartbeat_timeout_s == 12.5

    def test_environment_alone_overrides_the_defaults(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a file, the environment still applies."""
        monkeypatch.setenv("FLEETD_MQTT__USERNAME", "fleetd")
        monkeypatch.setenv("FLEETD_MQTT__PERSISTENT_SESSION", "false")
        settings = load_settings()
        assert settings.mqtt.username == "fleetd"
        assert settings.mqtt.persistent_session is False

    def test_a_bad_environment_value_names_the_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Environment values are validated exactly like the file's."""
        monkeypatch.setenv("FLEETD_API__PORT", "eighty")
        assert list(problems_of()) == ["api.port"]

    def test_a_misspelt_key_in_a_section_variable_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """FLEETD_DATABASE__DNS is a typo of a key in a known section: refused like the file's."""
        monkeypatch.setenv("FLEETD_DATABASE__DNS", "postgresql://x@y/z")
        assert list(problems_of()) == ["database.dns"]

    def test_variables_that_name_no_section_are_ignored(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """FLEETD_TOKEN (the CLI's) and FLEETD_TEST_* (the tests') are not settings."""
        monkeypatch.setenv("FLEETD_TOKEN", "abc")
        monkeypatch.setenv("FLEETD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1/postgres")
        assert load_settings() == Settings()


class TestProduction:
    def test_production_without_mqtt_username_is_refused(self, write_config: WriteConfig) -> None:
        """A production daemon must log in to the broker (the broker enforces ACLs per user)."""
        problems = problems_of(write_config('[daemon]\nenvironment = "production"\n'))
        assert "mqtt.username" in " ".join(f"{k} {m}" for k, m in problems.items())

    def test_production_with_mqtt_username_is_accepted(
        self, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The username may come from the environment, as the password should."""
        monkeypatch.setenv("FLEETD_MQTT__USERNAME", "fleetd")
        monkeypatch.setenv("FLEETD_MQTT__PASSWORD", "s3cret")
        settings = load_settings(write_config('[daemon]\nenvironment = "production"\n'))
        assert settings.daemon.environment is Environment.PRODUCTION

    def test_a_refusal_does_not_echo_secrets(
        self, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Error text goes to terminals and journals: it must not carry passwords."""
        monkeypatch.setenv("FLEETD_MQTT__PASSWORD", "s3cret-mqtt")
        monkeypatch.setenv("FLEETD_DATABASE__DSN", "postgresql://fleetd:s3cret-db@db/fleetd")
        with pytest.raises(ConfigError) as info:
            load_settings(write_config('[daemon]\nenvironment = "production"\n'))
        assert "s3cret" not in str(info.value)

    def test_a_malformed_dsn_is_named_but_not_quoted(
        self, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A DSN of the wrong form carries its password: the key is named, the value is not."""
        monkeypatch.setenv("FLEETD_DATABASE__DSN", "mysql://fleetd:s3cret-db@db/fleetd")
        with pytest.raises(ConfigError) as info:
            load_settings(write_config(""))
        assert "database.dsn" in str(info.value)
        assert "s3cret" not in str(info.value)


class TestSecrets:
    @pytest.mark.parametrize(
        ("variable", "key"),
        [
            ("FLEETD_MQTT__PASSWORD", ("mqtt", "password")),
            ("FLEETD_DATABASE__PASSWORD", ("database", "password")),
            ("FLEETD_DATABASE__MIGRATION_PASSWORD", ("database", "migration_password")),
            ("FLEETD_REDIS__PASSWORD", ("redis", "password")),
            ("FLEETD_API__TOKEN", ("api", "token")),
        ],
    )
    def test_secrets_never_show_in_a_dump_of_the_settings(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, key: tuple[str, str]
    ) -> None:
        """A password or token is a SecretStr: repr, str and model dumps show stars."""
        monkeypatch.setenv(variable, "s3cret-value")
        settings = load_settings(None)
        for text in (repr(settings), str(settings), str(settings.model_dump())):
            assert "s3cret-value" not in text
        section = getattr(settings, key[0])
        assert getattr(section, key[1]).get_secret_value() == "s3cret-value"


class TestProductionExposure:
    BASE = '[daemon]\nenvironment = "production"\n[mqtt]\nusername = "fleetd"\n'

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.20.0.5", "fleetd.example"])
    def test_public_api_bind_without_tls_is_refused(
        self, write_config: WriteConfig, host: str
    ) -> None:
        """Binding the API beyond loopback in production needs TLS in the process: any
        address, the wildcard of either family, and a name (it may resolve off the host)."""
        problems = problems_of(write_config(self.BASE + f'[api]\nhost = "{host}"\n'))
        assert "api.host" in " ".join(problems.values())

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
    def test_loopback_api_binds_need_no_tls(self, write_config: WriteConfig, host: str) -> None:
        assert load_settings(write_config(self.BASE + f'[api]\nhost = "{host}"\n')).api.host == host

    def test_public_api_bind_with_tls_is_accepted(
        self, write_config: WriteConfig, tmp_path: Path
    ) -> None:
        """With a certificate and key the same bind is fine."""
        text = (
            self.BASE
            + '[api]\nhost = "0.0.0.0"\n'
            + f'tls_cert_file = "{tmp_path / "c.pem"}"\ntls_key_file = "{tmp_path / "k.pem"}"\n'
        )
        assert load_settings(write_config(text)).api.tls

    def test_remote_broker_without_tls_is_refused(self, write_config: WriteConfig) -> None:
        """The broker password must not cross the network in clear in production."""
        problems = problems_of(write_config(self.BASE + 'host = "mqtt.example"\n'))
        assert "mqtt.tls" in " ".join(problems.values())

    def test_loopback_binds_need_no_tls(self, write_config: WriteConfig) -> None:
        """The defaults (everything on 127.0.0.1) stay valid in production."""
        load_settings(write_config(self.BASE))

    def test_docs_off_in_production_unless_asked(self, write_config: WriteConfig) -> None:
        """/docs follows the profile unless api.docs says otherwise."""
        assert not load_settings(write_config(self.BASE)).docs_enabled
        assert load_settings(write_config(self.BASE + "[api]\ndocs = true\n")).docs_enabled
        assert load_settings(None).docs_enabled

    def test_trusted_proxies_must_be_addresses(self, write_config: WriteConfig) -> None:
        """A typo in a proxy address is refused rather than silently trusting nothing."""
        problems = problems_of(write_config('[api]\ntrusted_proxies = ["10.0.0.300"]\n'))
        assert "api.trusted_proxies" in problems


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real ``fleetd`` entry point in a child process with no FLEETD_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
    code = "import sys; from dispatcher.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestCommandLine:
    def test_bad_config_exits_2_and_names_the_key(
        self, write_config: WriteConfig, tmp_path: Path
    ) -> None:
        """`fleetd --config bad.toml migrate` stops before connecting: status 2, key on stderr."""
        path = write_config("[database]\npool_min = 0\n[mqtt]\nprot = 1883\n")
        result = run_cli("--config", str(path), "migrate", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "database.pool_min" in result.stderr
        assert "mqtt.prot" in result.stderr
        assert "Traceback" not in result.stderr

    def test_missing_config_file_exits_2(self, tmp_path: Path) -> None:
        """Asking for a file that is not there is a configuration error, not a crash."""
        result = run_cli("--config", str(tmp_path / "nope.toml"), "migrate", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "configuration file not found" in result.stderr
