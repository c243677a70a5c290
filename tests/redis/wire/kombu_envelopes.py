#!/usr/bin/env python3
"""Kombu's own Redis transport code as a peer for kelp's wire-format tests.

No Redis server is needed: Kombu's redis Channel runs unchanged over a fake
client (a redis.Redis whose execute_command works on dicts), so every key,
binding member and envelope below is what Kombu 5.2.4 itself would send.
With global_keyprefix the fake client takes Kombu's own prefixing mixin.

    kombu_envelopes.py publish <cases.json> <out.json>
        Publishes each case with kombu.Producer and records the commands
        Kombu sent (LPUSH, PUBLISH, SADD) with their keys and values.
    kombu_envelopes.py consume <cases.json> <out.json>
        Puts each case's payload (written by kelp) in a list and reads it with
        Channel.basic_get, as a Kombu consumer does; records what Kombu made
        of it (body bytes, decoded payload, headers, properties, ...), the
        unacked record Kombu's ack emulation stores for it, and the envelope
        Kombu's restore would push back (redelivered).

The input and output files are JSON; byte strings travel as base64.
"""
import base64
import json
import math
import sys
import uuid

import kombu
import redis
from kombu.transport import redis as kombu_redis


def b64(data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    return base64.b64encode(data).decode('ascii')


def text(value):
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


class Store:
    """What a Redis server would hold, plus the log of write commands."""

    def __init__(self):
        self.lists = {}
        self.sets = {}
        self.hashes = {}
        self.log = []


class FakeRedis(redis.Redis):
    """A redis.Redis answering from a Store: Kombu's calls go through
    redis-py's command methods down to execute_command, as on a socket."""

    def __init__(self, store, global_keyprefix=''):
        super().__init__()  # the pool connects lazily: never here
        self.store = store
        self.global_keyprefix = global_keyprefix

    def execute_command(self, *args, **options):
        command, *rest = args
        rest = [text(a) if not isinstance(a, bytes) else a.decode('utf-8') for a in rest]
        store = self.store
        if command == 'PING':
            return True
        if command in ('LPUSH', 'RPUSH'):
            store.log.append([command, rest[0], rest[1]])
            store.lists.setdefault(rest[0], []).insert(0 if command == 'LPUSH' else -1, rest[1])
            return len(store.lists[rest[0]])
        if command == 'RPOP':
            items = store.lists.get(rest[0])
            return items.pop().encode('utf-8') if items else None
        if command == 'PUBLISH':
            store.log.append([command, rest[0], rest[1]])
            return 1
        if command == 'SADD':
            store.log.append([command, rest[0], rest[1]])
            store.sets.setdefault(rest[0], set()).add(rest[1])
            return 1
        if command == 'SMEMBERS':
            return {m.encode('utf-8') for m in store.sets.get(rest[0], set())}
        if command == 'HSET':
            store.log.append([command, rest[0], rest[1], rest[2]])
            store.hashes.setdefault(rest[0], {})[rest[1]] = rest[2]
            return 1
        if command == 'HDEL':
            store.log.append([command, rest[0], rest[1]])
            return 1 if store.hashes.get(rest[0], {}).pop(rest[1], None) is not None else 0
        if command in ('ZADD', 'ZREM'):
            store.log.append([command, rest[0]] + rest[1:])
            return 1
        raise NotImplementedError(f'fake Redis has no {command}')

    def pipeline(self, transaction=True, shard_hint=None):
        return FakePipeline(self.store, self.global_keyprefix)


class FakePipeline(FakeRedis):
    """Runs each command at once and chains, as Kombu uses pipelines."""

    def execute_command(self, *args, **options):
        super().execute_command(*args, **options)
        return self

    def execute(self):
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class PrefixedFakeRedis(kombu_redis.GlobalKeyPrefixMixin, FakeRedis):
    def pipeline(self, transaction=True, shard_hint=None):
        return PrefixedFakePipeline(self.store, self.global_keyprefix)


class PrefixedFakePipeline(kombu_redis.GlobalKeyPrefixMixin, FakePipeline):
    pass


STORE = Store()


class FakeChannel(kombu_redis.Channel):
    def _create_client(self, asynchronous=False):
        self.pool  # builds the (unconnected) pool, which fills the fanout prefix's {db}
        if self.global_keyprefix:
            return PrefixedFakeRedis(STORE, self.global_keyprefix)
        return FakeRedis(STORE)


class FakeTransport(kombu_redis.Transport):
    Channel = FakeChannel


def channel_for(case):
    url = 'redis://localhost:6379/%d' % case.get('db', 0)
    connection = kombu.Connection(url, transport=FakeTransport,
                                  transport_options=case.get('options', {}))
    return connection, connection.channel()


def body_of(spec):
    if 'json' in spec:
        return spec['json']
    if 'text' in spec:
        return spec['text']
    return base64.b64decode(spec['bytes_b64'])


def publish(case):
    connection, channel = channel_for(case)
    try:
        start = len(STORE.log)
        for exchange, kind, routing_key, queue in case.get('bindings', []):
            channel.exchange_declare(exchange, kind)
            channel.queue_bind(queue, exchange, routing_key)
        headers = dict(case.get('headers', {}))
        if 'python_headers' in case:  # values JSON from C++ cannot hold (2**70, ...)
            headers.update(eval(case['python_headers'], {'math': math}))
        kwargs = {}
        for name in ('content_type', 'content_encoding', 'compression', 'priority',
                     'expiration', 'delivery_mode', 'serializer'):
            if name in case:
                kwargs[name] = case[name]
        properties = dict(case.get('properties', []))  # a list of pairs keeps their order
        producer = kombu.Producer(channel)
        producer.publish(body_of(case['body']), exchange=case.get('exchange', ''),
                         routing_key=case.get('routing_key', ''), headers=headers,
                         retry=False, **kwargs, **properties)
        return {'name': case['name'], 'commands': STORE.log[start:]}
    finally:
        channel.close()
        connection.release()


def plain(value):
    """A value as JSON can hold it: bytes as base64, tuples as lists."""
    if isinstance(value, bytes):
        return {'bytes_b64': b64(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def is_uuid4(tag):
    try:
        parsed = uuid.UUID(tag)
    except ValueError:
        return False
    return str(parsed) == tag and parsed.version == 4


def consume(case):
    connection, channel = channel_for(case)
    try:
        STORE.lists[case['key']] = [case['payload']]
        message = channel.basic_get(case['queue'], no_ack=False)
        if message is None:
            return {'name': case['name'], 'error': 'basic_get found nothing in ' + case['key']}
        body = message.body
        result = {
            'name': case['name'],
            'body_b64': b64(body if isinstance(body, (bytes, str)) else b''),
            'content_type': message.content_type,
            'content_encoding': message.content_encoding,
            'headers': plain(message.headers),
            'properties': plain(message.properties),
            'delivery_info': plain(message.delivery_info),
            'delivery_tag': message.delivery_tag,
            'priority': channel._get_message_priority(message._raw),
            'tag_is_uuid4': is_uuid4(message.delivery_tag),
        }
        try:
            result['decoded'] = plain(message.decode())
        except Exception as error:  # what Kombu says is part of the answer
            result['decode_error'] = f'{type(error).__name__}: {error}'
        record = STORE.hashes.get(channel.unacked_key, {}).get(message.delivery_tag)
        result['unacked_record'] = record
        # What a restore pushes: the envelope with the redelivered flags.
        M, EX, RK = json.loads(record)
        start = len(STORE.log)
        channel._do_restore_message(M, EX, RK, channel.client.pipeline(), leftmost=False)
        pushed = [c for c in STORE.log[start:] if c[0] == 'RPUSH']
        result['restored'] = pushed[0][2] if pushed else None
        channel.basic_ack(message.delivery_tag)  # so close() has nothing to restore
        return result
    finally:
        STORE.hashes.clear()
        STORE.lists.clear()
        channel.close()
        connection.release()


def main():
    mode, cases_path, out_path = sys.argv[1:4]
    with open(cases_path, encoding='utf-8') as f:
        cases = json.load(f)
    run = {'publish': publish, 'consume': consume}[mode]
    results = [run(case) for case in cases]
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()
