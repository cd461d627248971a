"""The WireGuard tunnel: validation, 501 without wg, fake wg/ip for the steps, no key leaks."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path

import aiohttp
import pytest

from sandbox_api.network.tunnel_config import parse_config

PEER_KEY = base64.b64encode(bytes(range(32))).decode()
PRIVATE_KEY = base64.b64encode(bytes(range(128, 160))).decode()


def valid(**changes) -> dict:
    return {
        "local_ip": "10.99.0.1/32",
        "peer_endpoint": "1.2.3.4:51820",
        "peer_public_key": PEER_KEY,
        "private_key": PRIVATE_KEY,
        **changes,
    }


def encode(config) -> str:
    return base64.b64encode(json.dumps(config).encode()).decode()


async def put(client, body) -> tuple[int, dict]:
    resp = await client.put("/network/tunnel/config", json=body)
    return resp.status, await resp.json()


# --- request body --------------------------------------------------------------------


async def test_missing_body_is_400(client):
    resp = await client.put("/network/tunnel/config")
    assert resp.status == 400 and await resp.json() == {"error": "invalid request body: EOF"}


@pytest.mark.parametrize("body", [{}, {"config": ""}, {"config": None}])
async def test_missing_or_empty_config_is_400(client, body):
    assert await put(client, body) == (400, {"error": "invalid request body: config is required"})


async def test_config_that_is_not_a_string_is_400(client):
    status, body = await put(client, {"config": 12})
    assert status == 400 and body["error"] == "invalid request body: field config must be a string, got a number"


# --- the configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("not-valid-base64!!!", "failed to decode base64 configuration: "),
        (base64.b64encode(b"not json").decode(), "failed to parse JSON configuration: "),
        (encode(["a list"]), "failed to parse JSON configuration: expected a JSON object"),
        (encode(valid(mtu="1400")), "failed to parse JSON configuration: field mtu must be an integer"),
        (encode(valid(mtu=1400.5)), "failed to parse JSON configuration: field mtu must be an integer"),
        (encode(valid(route_all="yes")), "failed to parse JSON configuration: field route_all must be a boolean"),
        (
            encode(valid(allowed_ips=[1])),
            "failed to parse JSON configuration: field allowed_ips must be an array of strings",
        ),
        (encode(valid(local_ip=None)), "invalid configuration: local_ip is required"),
        (encode(valid(peer_endpoint="")), "invalid configuration: peer_endpoint is required"),
        (encode(valid(peer_public_key=None)), "invalid configuration: peer_public_key is required"),
        (encode(valid(private_key="")), "invalid configuration: private_key is required"),
        (encode(valid(local_ip="10.0.0.1")), "invalid configuration: local_ip must be in CIDR notation"),
        (encode(valid(local_ip="10.0.0.1/255.0.0.0")), "invalid configuration: local_ip must be in CIDR notation"),
        (encode(valid(local_ip="10.0.0.300/32")), "invalid configuration: local_ip must be in CIDR notation"),
        (encode(valid(peer_endpoint="1.2.3.4")), "invalid configuration: peer_endpoint must be in host:port format"),
        (
            encode(valid(peer_endpoint="1.2.3.4:port")),
            "invalid configuration: peer_endpoint must be in host:port format",
        ),
        (
            encode(valid(peer_endpoint="2001:db8::1:51820")),
            "invalid configuration: peer_endpoint must be in host:port format",
        ),
        (encode(valid(peer_endpoint=":51820")), "invalid configuration: peer_endpoint must be in host:port format"),
        (
            encode(valid(peer_public_key="not-a-valid-key")),
            "invalid configuration: invalid peer_public_key: not valid base64",
        ),
        (encode(valid(private_key="not-a-valid-key")), "invalid configuration: invalid private_key: not valid base64"),
        (
            encode(valid(private_key=base64.b64encode(bytes(31)).decode())),
            "invalid configuration: invalid private_key: expected 32 bytes, got 31",
        ),
        (encode(valid(allowed_ips=["not-a-cidr"])), 'invalid configuration: invalid allowed_ip "not-a-cidr"'),
        (encode(valid(mtu=10)), "invalid configuration: mtu must be between 68 and 65535, got 10"),
        (encode(valid(mtu=99999)), "invalid configuration: mtu must be between 68 and 65535, got 99999"),
        (encode(valid(listen_port=70000)), "invalid configuration: listen_port must be between 1 and 65535"),
        (
            encode(valid(persistent_keepalive=-1)),
            "invalid configuration: persistent_keepalive must be between 0 and 65535",
        ),
        (encode(valid(interface_name="a-very-long-interface")), "invalid configuration: interface_name must be"),
        (encode(valid(interface_name="wg/0")), "invalid configuration: interface_name must be"),
    ],
)
async def test_invalid_config_is_422(client, config, error):
    status, body = await put(client, {"config": config})
    assert status == 422, body
    assert body["error"].startswith("invalid tunnel config: " + error)
    assert PRIVATE_KEY not in body["error"]


def test_defaults():
    config = parse_config(encode(valid(unknown_field="ignored", mtu=0, listen_port=None)))
    assert (config.mtu, config.listen_port, config.interface_name) == (1420, 51820, "wg0")
    assert config.allowed_ips == ("0.0.0.0/0",)
    assert (config.persistent_keepalive, config.route_all) == (25, False)
    assert parse_config(encode(valid(persistent_keepalive=0))).persistent_keepalive == 0  # 0 disables
    assert PRIVATE_KEY not in repr(config)


def test_ipv6_endpoints_and_addresses_are_valid():
    config = parse_config(
        encode(valid(peer_endpoint="[2001:db8::1]:51820", local_ip="fd00::2/128", allowed_ips=["::/0"]))
    )
    assert config.peer_endpoint == "[2001:db8::1]:51820"


def test_routes_take_the_default_only_with_route_all():
    assert parse_config(encode(valid())).routes() == []
    assert parse_config(encode(valid(allowed_ips=["10.0.0.1/8", "0.0.0.0/0"]))).routes() == ["10.0.0.0/8"]
    assert parse_config(encode(valid(route_all=True))).routes() == ["0.0.0.0/1", "128.0.0.0/1"]
    both = parse_config(encode(valid(route_all=True, allowed_ips=["0.0.0.0/0", "::/0"])))
    assert both.routes() == ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]


# --- applying it ---------------------------------------------------------------------


async def test_valid_config_without_wg_is_501(client):
    if shutil.which("wg"):
        pytest.skip("wg is installed here")
    status, body = await put(client, {"config": encode(valid())})
    assert status == 501
    assert body["error"].startswith("WireGuard tunnels need the wg and ip programs; not installed in this sandbox: wg")


async def test_delete_with_no_tunnel_is_400(client):
    resp = await client.delete("/network/tunnel")
    assert resp.status == 400 and await resp.json() == {"error": "no WireGuard client is running"}


async def test_there_is_no_get(client):
    resp = await client.get("/network/tunnel/config")
    assert resp.status == 404


def fake_tools(bin_dir: Path, calls: Path, fail: str = "") -> None:
    """`wg` and `ip` that record their arguments (and `wg` the file it is given);
    the `ip` subcommand matching `fail` fails and prints the private key."""
    bin_dir.mkdir()
    scripts = {
        "wg": f'echo "wg $*" >> {calls}\nstat -c "mode %a" "$3" >> {calls}\ncat "$3" >> {calls}\n',
        "ip": f'echo "ip $*" >> {calls}\n'
        f'case "$*" in\n'
        f'  "route get "*) echo "1.2.3.4 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0" ;;\n'
        f'  "{fail}"*) echo "bad key {PRIVATE_KEY}" >&2; exit 2 ;;\n'
        f"esac\n",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


async def test_tunnel_is_brought_up_and_down_with_wg_and_ip(client, tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    fake_tools(tmp_path / "bin", calls, fail="never")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    config = valid(interface_name="wgtest0", route_all=True, allowed_ips=["0.0.0.0/0", "10.8.0.0/16"], mtu=1380)
    status, body = await put(client, {"config": encode(config)})
    assert (status, body) == (200, {"path": "", "message": "Tunnel configuration updated successfully"})
    lines = calls.read_text().splitlines()
    key_file = Path(lines[1].removeprefix("wg setconf wgtest0 "))
    assert lines == [
        "ip link add dev wgtest0 type wireguard",
        f"wg setconf wgtest0 {key_file}",
        "mode 600",
        "[Interface]",
        f"PrivateKey = {PRIVATE_KEY}",
        "ListenPort = 51820",
        "",
        "[Peer]",
        f"PublicKey = {PEER_KEY}",
        "Endpoint = 1.2.3.4:51820",
        "AllowedIPs = 0.0.0.0/0, 10.8.0.0/16",
        "PersistentKeepalive = 25",
        "ip address add 10.99.0.1/32 dev wgtest0",
        "ip link set dev wgtest0 mtu 1380 up",
        "ip route get 1.2.3.4",
        "ip route replace 1.2.3.4/32 via 10.0.0.1 dev eth0",
        "ip route replace 10.8.0.0/16 dev wgtest0",
        "ip route replace 0.0.0.0/1 dev wgtest0",
        "ip route replace 128.0.0.0/1 dev wgtest0",
    ]
    assert not key_file.exists()  # removed once read

    calls.write_text("")
    resp = await client.delete("/network/tunnel")
    assert resp.status == 200 and await resp.json() == {"path": "", "message": "Tunnel disconnected"}
    assert calls.read_text().splitlines() == ["ip link del dev wgtest0", "ip route del 1.2.3.4/32"]
    resp = await client.delete("/network/tunnel")
    assert resp.status == 400


async def test_a_failed_step_is_500_cleans_up_and_hides_the_key(client, tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    fake_tools(tmp_path / "bin", calls, fail="address add")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    status, body = await put(client, {"config": encode(valid(interface_name="wgtest0"))})
    assert status == 500
    assert body == {"error": "failed to apply tunnel config: ip address add: bad key [REDACTED]"}
    assert calls.read_text().splitlines()[-1] == "ip link del dev wgtest0"
    resp = await client.delete("/network/tunnel")
    assert resp.status == 400  # nothing is running


async def test_keys_never_reach_the_log_or_a_reply(daemon_factory):
    secret = base64.b64encode(os.urandom(32)).decode()
    short_secret = base64.b64encode(os.urandom(31)).decode()
    daemon = daemon_factory(env={"BL_NETWORKING_CONFIG": encode(valid(private_key=secret, mtu=1))})
    daemon.start()
    configs = [
        encode(valid(private_key=secret)),
        encode(valid(private_key=secret, mtu=10)),
        encode(valid(private_key=secret, peer_endpoint="nowhere")),
        encode(valid(private_key=short_secret)),
        encode(valid(private_key=secret + "x")),
        encode(valid(peer_public_key=secret, private_key="")),
        base64.b64encode(f'{{"private_key": "{secret}", '.encode()).decode(),  # broken JSON
        base64.b64encode(json.dumps(valid(private_key=secret)).encode())[:-3].decode() + "!",  # broken base64
    ]
    replies = []
    async with aiohttp.ClientSession() as session:
        for config in configs:
            async with session.put(f"{daemon.url}/network/tunnel/config", json={"config": config}) as resp:
                assert resp.status in (422, 501)
                replies.append(await resp.text())
        async with session.delete(f"{daemon.url}/network/tunnel") as resp:
            replies.append(await resp.text())
    daemon.stop()
    log = daemon.log()
    assert "not started: invalid tunnel config: invalid configuration: mtu must be between 68 and 65535" in log
    assert "/network/tunnel/config 422" in log  # requests are logged, bodies are not
    for text in [log, *replies]:
        assert secret not in text and short_secret not in text
