"""Where each Redis consumer's server is, and the settings and clients that reach it.

REDIS_URL names the Redis of everything, as `make run` uses it:
- one server: `redis://[user:password@]host:port/db`, `rediss://…` (TLS), `unix:///path?db=N`;
- a primary that Sentinel manages, followed through failovers:
  `redis+sentinel://[user:password@]host:port,host:port,…/<master name>[/db]` (the password is the
  data nodes'; sentinel ports default to 26379);
- a Redis Cluster, by its seed nodes: `redis+cluster://[user:password@]host:port,host:port,…`.
Each consumer may live on a server of its own (docs/scaling.md advises it): REDIS_CACHE_URL
(django-redis, the catalog's app cache), REDIS_CHANNELS_URL (channels-redis), REDIS_BROKER_URL
(Celery's broker) and REDIS_STORES_URL (the gateway's and the apps' own stores); unset, each
follows REDIS_URL. A value a consumer cannot use stops start-up with one line naming its variable.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

from config import env

Kind = Literal["server", "sentinel", "cluster"]
Consumer = Literal["cache", "channels", "broker", "stores"]
# Each consumer's own variable, over REDIS_URL.
CONSUMER_VARIABLES: dict[Consumer, str] = {
    "cache": "REDIS_CACHE_URL",
    "channels": "REDIS_CHANNELS_URL",
    "broker": "REDIS_BROKER_URL",
    "stores": "REDIS_STORES_URL",
}
# What each consumer speaks. channels-redis and kombu have no Redis Cluster client: give them a
# server or a Sentinel-managed primary of their own. The app cache and the stores keep each
# script's keys in one slot (hash tags in each app's keys module), so they shard.
SUPPORTED_KINDS: dict[Consumer, set[Kind]] = {
    "cache": {"server", "sentinel", "cluster"},
    "channels": {"server", "sentinel"},
    "broker": {"server", "sentinel"},
    "stores": {"server", "sentinel", "cluster"},
}
SERVER_SCHEMES = {"redis", "rediss", "unix"}
DEFAULT_SENTINEL_PORT = 26379
# A write's WAIT for its replicas gets this share of REDIS_TIMEOUT.
WAIT_FRACTION_OF_TIMEOUT = 0.25


@dataclass(frozen=True)
class RedisTarget:
    """One consumer's Redis: a server, a Sentinel-managed primary, or a Cluster."""

    variable: str  # the environment variable it came from, for error messages
    url: str
    kind: Kind
    nodes: tuple[tuple[str, int], ...] = ()  # the sentinels, or the cluster's seed nodes
    master_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """Say where this is, without its password (for /readyz and logs)."""
        if self.kind == "server":
            parts = urlsplit(self.url)
            if parts.scheme == "unix":  # urlunsplit would drop the empty authority's `//`
                return f"unix://{parts.path}" + (f"?db={self.db}" if self.db else "")
            netloc = parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=netloc))
        nodes = ",".join(f"{host}:{port}" for host, port in self.nodes)
        if self.kind == "sentinel":
            return f"sentinel {self.master_name} via {nodes}, db {self.db}"
        return f"cluster via {nodes}"


def parse(variable: str, raw: str) -> RedisTarget:
    """Return the Redis a variable names; a malformed value stops start-up, naming it."""
    scheme, separator, rest = raw.partition("://")
    if not separator:
        env.fail(variable, f"is not a Redis URL: {raw!r}")
    if scheme in SERVER_SCHEMES:
        url = env.checked_url(variable, raw, schemes=SERVER_SCHEMES)
        return RedisTarget(variable, url, "server", db=db_number(url))
    if scheme not in ("redis+sentinel", "redis+cluster"):
        schemes = ", ".join([*sorted(SERVER_SCHEMES), "redis+sentinel", "redis+cluster"])
        env.fail(variable, f"must start with one of {schemes}://, got {raw!r}")
    userinfo, _, location = rest.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts, _, path = location.partition("/")
    segments = [segment for segment in path.split("/") if segment]
    user, secret = unquote(username) or None, unquote(password) or None
    if scheme == "redis+cluster":
        if segments:
            env.fail(variable, f"a Redis Cluster has one database, name none: {raw!r}")
        nodes = _nodes(variable, hosts, 6379)
        return RedisTarget(variable, raw, "cluster", nodes, username=user, password=secret)
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        env.fail(variable, f"must end with /<master name>[/<db>], got {raw!r}")
    return RedisTarget(
        variable,
        raw,
        "sentinel",
        _nodes(variable, hosts, DEFAULT_SENTINEL_PORT),
        master_name=segments[0],
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=user,
        password=secret,
    )


def _nodes(variable: str, hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.strip().rpartition(":") if ":" in node else (node.strip(), "", "")
        if not host or (port and not port.isdigit()):
            env.fail(variable, f"has a node that is not host[:port]: {node!r}")
        nodes.append((host, int(port) if port else default_port))
    return tuple(nodes)


def targets(redis_url: str) -> dict[Consumer, RedisTarget]:
    """Return each consumer's Redis: its own variable when set, else `redis_url` (REDIS_URL)."""
    found = {}
    for consumer, variable in CONSUMER_VARIABLES.items():
        target = parse(variable, os.environ[variable]) if env.is_set(variable) else None
        target = target or parse("REDIS_URL", redis_url)
        if target.kind not in SUPPORTED_KINDS[consumer]:
            env.fail(
                target.variable,
                f"names a Redis {target.kind}, which the {consumer} consumer cannot use: "
                f"give it a server or a Sentinel-managed primary in {variable}",
            )
        found[consumer] = target
    return found


def check_sentinels(found: dict[Consumer, RedisTarget], timeout: float) -> None:
    """Stop start-up, naming the variable, when no sentinel answers or none knows the master.

    A server that is down is not a configuration error (requests get a 503 until it is back);
    sentinels that do not know the name they were given are one, and would never heal.
    """
    checked = set()
    for target in found.values():
        if target.kind != "sentinel" or target in checked:
            continue
        checked.add(target)
        answers = []
        for host, port in target.nodes:
            sentinel = redis.Redis(
                host, port, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            try:
                answers.append(sentinel.sentinel_get_master_addr_by_name(target.master_name))
            except redis.RedisError:
                continue
            finally:
                sentinel.close()
        nodes = ", ".join(f"{host}:{port}" for host, port in target.nodes)
        if not answers:
            env.fail(target.variable, f"names sentinels of which none answered: {nodes}")
        if not any(answers):
            env.fail(
                target.variable,
                f"names master {target.master_name!r}, which the sentinels at {nodes} do not know",
            )


def with_db(redis_url: str, db: int) -> str:
    """Return `redis_url` pointing at database number `db`."""
    scheme, _, rest = redis_url.partition("://")
    if scheme == "redis+cluster":
        return redis_url  # a cluster has database 0 only: its users keep apart by key prefix
    if scheme == "redis+sentinel":
        location, _, path = rest.partition("/")
        return f"{scheme}://{location}/{path.split('/')[0]}/{db}"
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        # Not urlunsplit: it drops the empty authority, and redis-py needs `unix:///path`.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def db_number(redis_url: str) -> int:
    """Return the database number a server's URL selects (0 when it names none)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return int(dict(parse_qsl(parts.query)).get("db", 0))
    return int(parts.path.strip("/") or 0)


def kombu_url(target: RedisTarget) -> str:
    """Return the broker URL Celery's Redis transport expects for `target`."""
    if target.kind == "sentinel":
        # kombu's Sentinel transport: one sentinel:// URL per sentinel, joined by `;`; the
        # password in them is the data nodes' (the master name is a transport option).
        auth = (
            f"{quote(target.username or '')}:{quote(target.password)}@" if target.password else ""
        )
        return ";".join(
            f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.nodes
        )
    parts = urlsplit(target.url)
    if parts.scheme != "unix":
        return target.url
    # kombu spells a unix socket `redis+socket://` and the database `virtual_host`.
    return f"redis+socket://{parts.path}?virtual_host={target.db}"


def _sentinel_kwargs(target: RedisTarget, timeout: float) -> dict[str, Any]:
    """What a connection to a sentinel needs: short timeouts, never a hang (no data-node auth)."""
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def consumer_settings(
    found: dict[Consumer, RedisTarget], prefix: str, timeout: float
) -> dict[str, Any]:
    """Return the settings of every Redis consumer, each under its own key prefix."""
    return {
        "CACHES": {"default": _cache_settings(found["cache"], prefix, timeout)},
        # The pub/sub layer: one PUBLISH per group_send, fanned out inside each server process
        # over one subscriber connection, so it needs two Redis connections per process however
        # many clients it serves. With 500 WebSocket clients here (bench/quotes_layers.py) its
        # group_send took 0.3-1.1 ms against the core layer's 3.6-7.3, and daphne's CPU per
        # message 250-340 us against 350-520; the core layer also ran out of its pool (100, which
        # raises) when 500 clients joined at once. Delivery is at most once: the quotes feed
        # fills any gap from the stored ticks.
        "CHANNEL_LAYERS": {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {
                    "hosts": [_channels_host(found["channels"], timeout)],
                    "prefix": f"{prefix}:asgi",
                },
            }
        },
        "CELERY_BROKER_URL": kombu_url(found["broker"]),
        "CELERY_BROKER_TRANSPORT_OPTIONS": _broker_options(found["broker"], prefix, timeout),
    }


def _cache_settings(target: RedisTarget, prefix: str, timeout: float) -> dict[str, Any]:
    if target.kind == "cluster":
        # django-redis 7 has no Cluster client. Nothing here uses Django's cache API: the
        # catalog's app cache talks to the cluster itself (cache_client).
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    options: dict[str, Any] = {"SOCKET_CONNECT_TIMEOUT": timeout, "SOCKET_TIMEOUT": timeout}
    location: str | list[str] = target.url
    if target.kind == "sentinel":
        # django-redis's Sentinel client, given one URL, would also read from replicas: given a
        # list of the primary alone, every read sees the writes before it.
        location = [f"redis://{quote(target.master_name)}/{target.db}"]
        options |= {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": list(target.nodes),
            "SENTINEL_KWARGS": _sentinel_kwargs(target, timeout),
            "PASSWORD": target.password,
            "USERNAME": target.username,
        }
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": f"{prefix}:cache",
        "OPTIONS": options,
    }


def _channels_host(target: RedisTarget, timeout: float) -> str | dict[str, Any]:
    if target.kind != "sentinel":
        return target.url
    # channels-redis builds a redis-py SentinelConnectionPool from these (utils.create_pool).
    return {
        "sentinels": list(target.nodes),
        "master_name": target.master_name,
        "sentinel_kwargs": _sentinel_kwargs(target, timeout),
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }


def _broker_options(target: RedisTarget, prefix: str, timeout: float) -> dict[str, Any]:
    options: dict[str, Any] = {"global_keyprefix": f"{prefix}:celery:"}
    if target.kind == "sentinel":
        options |= {
            "master_name": target.master_name,
            "sentinel_kwargs": _sentinel_kwargs(target, timeout),
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
    return options


def client_for(target: RedisTarget, timeout: float, **options: Any) -> redis.Redis:
    """Return a redis-py client of `target` (a primary's, with Sentinel, whichever node it is)."""
    timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if target.kind == "server":
        return redis.Redis.from_url(target.url, **timeouts, **options)
    if target.kind == "cluster":
        nodes = [
            redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]  # redis-py: no hints
            for host, port in target.nodes
        ]
        cluster = redis.cluster.RedisCluster(
            startup_nodes=nodes,
            username=target.username,
            password=target.password,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            **options,
        )
        # RedisCluster answers the commands the stores send, routing each by its key's slot
        # (MOVED, ASK and the slot map are redis-py's); redis-py types the two clients apart.
        return cast(redis.Redis, cluster)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]  # redis-py's sentinel module has no hints
        list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, timeout)
    )
    # master_for's pool asks the sentinels for the primary on each new connection, and drops a
    # connection whose server answers READONLY (demoted): a failover needs no restart.
    master = sentinel.master_for(  # type: ignore[no-untyped-call]  # redis-py's sentinel: no hints
        target.master_name,
        db=target.db,
        username=target.username,
        password=target.password,
        **timeouts,
        **options,
    )
    return cast(redis.Redis, master)  # master_for's redis_class, redis.Redis by default


@functools.cache
def cache_client() -> redis.Redis:
    """Return the client of the app cache's Redis (django-redis's, but on a Cluster our own)."""
    from django.conf import settings
    from django_redis import get_redis_connection

    target = settings.REDIS["cache"]
    if target.kind == "cluster":
        return client_for(target, settings.REDIS_TIMEOUT)
    # django-redis is untyped: its default client is a redis-py Redis, replies not decoded.
    return cast(redis.Redis, get_redis_connection("default"))


@functools.cache
def app_client() -> redis.Redis:
    """Return the client the apps' own stores share (a pool per process; safe across threads)."""
    from django.conf import settings

    return client_for(settings.REDIS["stores"], settings.REDIS_TIMEOUT, decode_responses=True)


def replicated_script(script_text: str, keys: list[str], args: list[str | int]) -> Any:
    """Run a write script on the stores' Redis; answer only once REDIS_WAIT_REPLICAS have it.

    Replication is asynchronous: a primary lost right after a write takes the write with it,
    unless a replica had it first. So the write and a WAIT go on one connection, and a WAIT that
    times out short of the replicas asked for is a RedisError (the caller's 503): what the
    client was told is done survives the loss of the primary.
    """
    from django.conf import settings

    client = app_client()
    replicas = settings.REDIS_WAIT_REPLICAS
    if not replicas:
        return client.register_script(script_text)(keys=keys, args=args)
    if settings.REDIS["stores"].kind == "cluster":
        # The slot's primary, by its own client: WAIT counts the writes of its connection.
        cluster = cast(redis.cluster.RedisCluster, client)
        node = cluster.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]  # redis-py: no hints
        client = node.redis_connection
    script = client.register_script(script_text)
    pipe = client.pipeline(transaction=False)
    script(keys=keys, args=args, client=pipe)
    # Shorter than the socket's timeout, so a replica that does not answer is a WAIT that says
    # so, not a dropped connection; and short, as the request holds Django's thread meanwhile.
    pipe.wait(replicas, int(settings.REDIS_TIMEOUT * 1000 * WAIT_FRACTION_OF_TIMEOUT))
    try:
        result, acknowledged = pipe.execute()
    except (
        redis.exceptions.AskError,  # MovedError is one too
        redis.exceptions.TryAgainError,
        redis.exceptions.ClusterDownError,
    ) as exc:
        # The slot's node, asked directly, follows no redirection: its slot is moving, or the
        # cluster is failing over. Unavailable for a moment, as when a server is down.
        raise redis.ConnectionError(f"the cluster is rearranging: {exc}") from exc
    if acknowledged < replicas:
        raise redis.ConnectionError(
            f"the write reached {acknowledged} of {replicas} replicas within the timeout"
        )
    return result


def async_client_for(
    target: RedisTarget, timeout: float, *, max_connections: int, **options: Any
) -> aioredis.Redis:
    """Return an asyncio redis-py client of `target` whose pool waits, not fails, when full."""
    timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    # At its limit redis-py's default pool raises "Too many connections"; a burst of clients must
    # wait a moment for a connection instead (`timeout` at most).
    if target.kind == "cluster":
        # A connection pool per node, max_connections each (redis-py's cluster client queues).
        cluster = aioredis.cluster.RedisCluster(
            startup_nodes=[aioredis.cluster.ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            max_connections=max_connections,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            **options,
        )
        return cast(aioredis.Redis, cluster)  # the same commands, routed by slot
    pool_options = {"max_connections": max_connections, "timeout": timeout, **timeouts, **options}
    if target.kind == "server":
        pool = aioredis.BlockingConnectionPool.from_url(target.url, **pool_options)
        return aioredis.Redis(connection_pool=pool)
    sentinel = aioredis.sentinel.Sentinel(  # type: ignore[no-untyped-call]  # redis-py's sentinel module has no hints
        list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, timeout)
    )
    master = sentinel.master_for(
        target.master_name,
        connection_pool_class=BlockingSentinelConnectionPool,
        db=target.db,
        username=target.username,
        password=target.password,
        **pool_options,
    )
    return cast(aioredis.Redis, master)  # master_for's redis_class, redis.asyncio.Redis by default


class BlockingSentinelConnectionPool(
    aioredis.sentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool
):
    """A primary's pool, followed through failovers, that waits for a free connection."""

    # redis-py has the two behaviours apart (Sentinel's pool is never blocking): this is both.


def probe(target: RedisTarget, timeout: float) -> dict[str, Any]:
    """Ask `target` who answers and in what role: {"redis": where, "role": …, "address": …}."""
    client = client_for(target, timeout)
    if target.kind == "cluster":
        try:
            info = cast(redis.cluster.RedisCluster, client).cluster_info()
        finally:
            client.close()
        if info.get("cluster_state") != "ok":
            raise redis.ConnectionError(f"the cluster's state is {info.get('cluster_state')}")
        primaries = info.get("cluster_size")
        return {"redis": target.describe(), "role": "cluster", "address": f"{primaries} primaries"}
    try:
        role = client.role()[0]
        pool = client.connection_pool
        if isinstance(pool, redis.sentinel.SentinelConnectionPool):
            host, port = pool.get_master_address()  # type: ignore[no-untyped-call]  # redis-py: no hints
            address = f"{host}:{port}"
        else:
            address = target.describe()
    finally:
        client.close()
    role = role.decode() if isinstance(role, bytes) else str(role)
    return {"redis": target.describe(), "role": role, "address": address}
