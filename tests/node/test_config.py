"""node.toml: defaults that never drift, strict parsing, command-line overrides."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from node.config import (
    AgentConfig,
    ConfigError,
    FederationSettings,
    NodeConfig,
    default_toml,
    load,
    loads,
)

REPO = Path(__file__).resolve().parents[2]
REPO_TOML = REPO / "node.toml"
PACKAGED_TOML = REPO / "node" / "defaults.toml"
NPUB = "npub12l773759g35tzfe6gnvvenreqrlr8dk0fe9rfvwyemmy02yd6cps3mc7lu"
NPUB_HEX = "57fde8fa854468b1273a44d8cccc7900fe33b6cf4e4a34b1c4cef647a88dd603"


def test_repo_node_toml_is_the_packaged_default_byte_for_byte():
    assert REPO_TOML.read_bytes() == PACKAGED_TOML.read_bytes()
    assert default_toml() == PACKAGED_TOML.read_text(encoding="utf-8")


def test_repo_node_toml_equals_the_built_in_defaults():
    assert load(REPO_TOML) == NodeConfig()


def test_repo_node_toml_spells_out_every_setting():
    table = tomllib.loads(REPO_TOML.read_text(encoding="utf-8"))

    def check_shows_every_field(cls, section, where):
        defaults = cls()
        for f in dataclasses.fields(cls):
            assert f.name in section, f"node.toml does not show {where}{f.name}"
            value = getattr(defaults, f.name)
            if dataclasses.is_dataclass(value):
                check_shows_every_field(type(value), section[f.name], f"{where}{f.name}.")

    check_shows_every_field(NodeConfig, table, "")
    for agent in table["agents"]:
        assert set(agent) == {f.name for f in dataclasses.fields(AgentConfig)}


def test_empty_file_gives_the_defaults():
    assert loads("") == NodeConfig()


def test_a_partial_section_keeps_the_other_defaults():
    config = loads("[relay]\nport = 9000\n[relay.limits]\nmax_filters = 4\n")
    assert config.relay.port == 9000
    assert config.relay.limits.max_filters == 4
    assert config.relay.host == NodeConfig().relay.host
    assert config.relay.limits.max_limit == NodeConfig().relay.limits.max_limit


def test_lists_become_frozen_collections():
    config = loads('[relay.auth]\nprivate_kinds = [4]\n[federation]\nrelays = ["wss://a.example"]')
    assert config.relay.auth.private_kinds == frozenset({4})
    assert config.federation.relays == ("wss://a.example",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.relay.port = 1  # type: ignore[misc]


def test_agents_replace_the_default_list():
    config = loads('[[agents]]\nname = "echo"\nkinds = [5050]\n')
    assert config.agents == (AgentConfig("echo", kinds=(5050,)),)
    assert loads("agents = []\n").agents == ()


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text("[relay\nport = 1\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid TOML"):
        load(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "node.toml")


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text("[relay.limits]\nmax_subscriptons = 3\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message
    assert "relay.limits.max_subscriptons" in message
    assert "did you mean 'max_subscriptions'" in message


def test_unknown_section_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'relays'.*'relay'"):
        loads("[relays]\nport = 1\n")


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ('[relay]\nport = "7777"', "relay.port", "an integer, got string '7777'"),
        ("[relay]\nport = true", "relay.port", "an integer, got boolean true"),
        ("[relay]\nhost = 127", "relay.host", "a string, got integer 127"),
        ("[relay.auth]\nauth_required_for_reads = 1", "auth_required_for_reads", "a boolean"),
        ("[relay.auth]\nprivate_kinds = 4", "relay.auth.private_kinds", "an array"),
        ('[relay.auth]\nprivate_kinds = [4, "x"]', "relay.auth.private_kinds[1]", "an integer"),
        ("relay = 3", "relay", "a table, got integer 3"),
        ('agents = ["pow"]', "agents[0]", "a table, got string 'pow'"),
    ],
)
def test_wrong_type_names_the_key(text, where, expected):
    with pytest.raises(ConfigError) as info:
        loads(text, source="my.toml")
    assert str(info.value).startswith("my.toml: ")
    assert where in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[relay]\nport = 70000", "relay.port: 70000 is not a port number"),
        ("[web]\nport = -1", "web.port"),
        ("[relay.limits]\nmax_filters = -1", "relay.limits.max_filters: must not be negative"),
        ('[relay]\nsqlite_synchronous = "OFF"', "relay.sqlite_synchronous"),
        ('[relay]\npublic_url = "http://x"', "relay.public_url"),
        ('[federation]\nrelays = ["relay.example"]', r"federation.relays\[0\]"),
        ('[relay.auth]\nwrite_pubkeys = ["abc"]', "not a public key"),
        ('[relay.auth]\nread_pubkeys = ["npub1qqqq"]', "not a valid npub"),
        ('[logging]\nlevel = "LOUD"', "logging.level"),
        ("[[agents]]\nabout = 'x'", r"agents\[0\].name: required key is missing"),
        ("[[agents]]\nname = 'Bad/Name'", "names the agent's key file"),
        ("[[agents]]\nname = 'a'\n[[agents]]\nname = 'a'", "used twice"),
        ("[[agents]]\nname = 'a'\nkinds = [1]", "not a NIP-90 job request kind"),
        ("[blobs]\nmax_bytes = 0", "blobs.max_bytes: must be at least 1"),
        ('[blobs]\nupload_pubkeys = ["abc"]', r"blobs.upload_pubkeys\[0\]"),
        ("[memory]\nkinds = [1, 70000]", r"memory.kinds\[1\]: 70000 is not an event kind"),
        ("[models]\ndir = 3", "models.dir"),
    ],
)
def test_bad_values_are_refused(text, match):
    with pytest.raises(ConfigError, match=match):
        loads(text)


def test_pubkeys_may_be_npub_and_are_stored_as_hex():
    config = loads(f'[relay]\noperator_pubkey = "{NPUB}"\n[relay.auth]\nwrite_pubkeys = ["{NPUB}"]')
    assert loads(f'[blobs]\nupload_pubkeys = ["{NPUB}"]').blobs.upload_pubkeys == (config.relay.operator_pubkey,)
    assert config.relay.operator_pubkey == NPUB_HEX
    assert config.relay.auth.write_pubkeys == frozenset({NPUB_HEX})


def test_log_level_is_case_insensitive():
    assert loads('[logging]\nlevel = "debug"').logging.level == "DEBUG"


def test_overrides_replace_only_what_is_given():
    base = NodeConfig()
    config = base.with_overrides(relay_port=0, web_port=9090, federate=["ws://127.0.0.1:1"])
    assert config.relay.port == 0
    assert config.web.port == 9090
    assert config.federation == FederationSettings(("ws://127.0.0.1:1",))
    assert config.relay.limits == base.relay.limits
    assert base.with_overrides() == base


def test_federate_override_replaces_the_configured_list():
    config = loads('[federation]\nrelays = ["wss://a.example"]')
    assert config.with_overrides(federate=["wss://b.example"]).federation.relays == (
        "wss://b.example",
    )


def test_bad_override_says_it_came_from_the_command_line():
    with pytest.raises(ConfigError, match=r"command line: relay\.port"):
        NodeConfig().with_overrides(relay_port=99999)
    with pytest.raises(ConfigError, match=r"command line: federation\.relays"):
        NodeConfig().with_overrides(federate=["http://x"])


def test_agent_handler_settings_are_tables_of_scalars():
    config = loads(
        '[[agents]]\nname = "w"\nkinds = [5050]\n'
        'settings.textgen = { endpoint = "http://127.0.0.1:11434/v1", max_tokens = 64 }\n'
    )
    assert config.agents[0].settings == {
        "textgen": {"endpoint": "http://127.0.0.1:11434/v1", "max_tokens": 64}
    }
    with pytest.raises(ConfigError, match=r"agents\[0\].settings.textgen.x: expected a string"):
        loads('[[agents]]\nname = "w"\nsettings.textgen = { x = [1] }\n')
    with pytest.raises(ConfigError, match=r"agents\[0\].settings.textgen: expected a table"):
        loads('[[agents]]\nname = "w"\nsettings.textgen = 3\n')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[agents]]\nname = 'a'\nconcurrency = 0", "concurrency: must be at least 1"),
        ("[[agents]]\nname = 'a'\ntime_limit_seconds = 0", "time_limit_seconds: must be positive"),
        ("[[agents]]\nname = 'a'\nprice_msat = -1", "prices must not be negative"),
        ("[engine]\nheartbeat_seconds = 0", "heartbeat_seconds: must be at least 1"),
        ("[engine]\nmax_input_bytes = -5", "must not be negative"),
    ],
)
def test_bad_agent_and_engine_values_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        loads(text)
