"""The shipped broker layer (systemd/mosquitto/microseis.conf + microseis.acl) on a real
Mosquitto with TLS (a throw-away CA), a password file and the ACL: a station account can
neither command another station nor itself, nor read another station's requests; the operator
can command and push to every station; anonymous clients and wrong passwords are refused.

Denied publishes are acknowledged and dropped by Mosquitto, and denied reads are filtered at
delivery, so each check is ordered against a marker that must get through: the same client
publishes (or receives) the marker after the forbidden message, and MQTT keeps one client's
messages in order -- had the forbidden one passed, it would have arrived first.
"""
from __future__ import annotations

import os

import pytest

from tests.broker import Broker, Subscriber, find_mosquitto, make_password_file, make_test_pki, shipped_broker_conf

pytestmark = pytest.mark.skipif(
    find_mosquitto() is None or os.environ.get("MICROSEIS_TEST_BROKER") == "amqtt",
    reason="needs mosquitto (TLS listener, password file, ACL); not installed")

USERS = {"XX.S1": "pw-s1", "XX.S2": "pw-s2", "operator": "pw-op", "monitor": "pw-mon"}


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    pytest.importorskip("cryptography")
    d = tmp_path_factory.mktemp("acl")
    pki = make_test_pki(d / "pki")
    # the $7$ hash written here, not by mosquitto_passwd: Mosquitto must accept it
    pw = make_password_file(d / "passwd", USERS, use_tool=False)
    with Broker(workdir=d / "broker", conf_extra=shipped_broker_conf(pki, pw)) as b:
        b.pki = pki
        yield b


def client(b: Broker, user: str | None, topic: str, password: str | None = None) -> Subscriber:
    return Subscriber("localhost", b.port, topic, username=user,
                      password=password if password is not None else USERS.get(user or ""),
                      tls_ca=b.pki["ca"])


def test_station_cannot_command_itself_or_another_station(acl_broker):
    with client(acl_broker, "operator", "microseis/#") as op, \
            client(acl_broker, "XX.S1", "microseis/XX.S1/cmd/+") as s1:
        for topic in ("microseis/XX.S2/cmd/rollback", "microseis/XX.S1/cmd/rollback",
                      "microseis/XX.S1/model/push", "microseis/XX.S2/model/push", "microseis/XX.S2/health"):
            s1.publish(topic, b"forged")
        s1.publish("microseis/XX.S1/health", b"marker")  # its own state: allowed
        s1.publish("microseis/XX.S1/cmd/rollback/response", b"answer")  # its own answers: allowed
        assert op.wait_for(lambda s: s.texts("microseis/XX.S1/cmd/rollback/response") == ["answer"], 10)
        assert [(m.topic, m.text) for m in op.messages] == [
            ("microseis/XX.S1/health", "marker"), ("microseis/XX.S1/cmd/rollback/response", "answer")]
        op.publish("microseis/XX.S1/cmd/health", b"real")
        assert s1.wait_for(lambda s: s.texts("microseis/XX.S1/cmd/health") == ["real"], 10)
        assert [m.text for m in s1.messages] == ["real"]  # its own forged request never arrived


def test_operator_commands_and_pushes_and_stations_read_only_their_own(acl_broker):
    snoop = client(acl_broker, "XX.S1", "microseis/+/cmd/+")  # S1 trying to read every station's requests
    health = client(acl_broker, "XX.S1", "microseis/+/health")
    with snoop, health, client(acl_broker, "XX.S1", "microseis/XX.S1/model/push") as s1_push, \
            client(acl_broker, "XX.S2", "microseis/XX.S2/cmd/+") as s2, \
            client(acl_broker, "operator", "microseis/#") as op, \
            client(acl_broker, "monitor", "microseis/#") as mon:
        op.publish("microseis/XX.S2/cmd/rollback", b"op2")
        op.publish("microseis/XX.S2/health", b"s2-health")  # not the operator's to write: dropped
        op.publish("microseis/XX.S1/cmd/rollback", b"op1")
        op.publish("microseis/XX.S1/model/push", b"bundle-bytes")
        assert s2.wait_for(lambda s: s.texts("microseis/XX.S2/cmd/rollback") == ["op2"], 10)
        assert s1_push.wait_for(lambda s: s.texts("microseis/XX.S1/model/push") == ["bundle-bytes"], 10)
        assert snoop.wait_for(lambda s: s.texts("microseis/XX.S1/cmd/rollback") == ["op1"], 10)
        assert [m.topic for m in snoop.messages] == ["microseis/XX.S1/cmd/rollback"]  # op2 filtered out
        s2_client = client(acl_broker, "XX.S2", "microseis/XX.S2/cmd/+")
        with s2_client:
            s2_client.publish("microseis/XX.S2/health", b"s2-real")
        assert mon.wait_for(lambda s: s.texts("microseis/XX.S2/health") == ["s2-real"], 10)
        # (the operator's forged S2 health went to the broker before s2-real: it was dropped)
        # S1's health filter matched S2's health, but the ACL kept it from S1
        assert health.messages == []
        mon.publish("microseis/XX.S1/cmd/rollback", b"from-monitor")  # read-only account
        op.publish("microseis/XX.S1/cmd/health", b"after")
        assert snoop.wait_for(lambda s: s.texts("microseis/XX.S1/cmd/health") == ["after"], 10)
        assert snoop.texts("microseis/XX.S1/cmd/rollback") == ["op1"]


@pytest.mark.parametrize("user, password", [(None, None), ("XX.S1", "wrong"), ("nobody", "x")])
def test_anonymous_and_wrong_passwords_refused(acl_broker, user, password):
    c = client(acl_broker, user, "microseis/#", password=password)
    with pytest.raises(TimeoutError):
        c.start(timeout=3)
    assert c.refused is not None and c.refused.is_failure, c.refused


def test_plain_tcp_is_refused(acl_broker):
    c = Subscriber(acl_broker.host, acl_broker.port, "microseis/#", username="operator", password=USERS["operator"])
    with pytest.raises(TimeoutError):
        c.start(timeout=2)
    assert c.refused is None  # no CONNACK at all: the TLS listener does not speak plain MQTT
