"""Real Kafka clients against Weir's Kafka listener, driven by
tests/integration/kafka_clients.rs. Each command prints one JSON report on stdout;
the Rust test asserts on it and checks the same group over HTTP.

- `group`: confluent-kafka (librdkafka). Three consumers of a group (range
  assignor) share six partitions; an idempotent producer (acks=all) sends records;
  every record is committed as it is processed; one member leaves half-way and the
  other two take its partitions.
- `resume`: kafka-python. An idempotent producer sends more records; a consumer of
  the same group (round-robin assignor) reads from the group's committed offsets
  and commits.
- `sasl`: confluent-kafka over SASL_SSL: PLAIN with an API token, OAUTHBEARER with
  a JWT, the ACL policy's answers as Kafka errors, and a wrong password.
"""

import argparse
import json
import sys
import threading
import time
import urllib.request


def wait_for(what, condition, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_members(http, group):
    with urllib.request.urlopen(f"{http}/v1/groups/{group}") as r:
        return [m["member"] for m in json.load(r)["members"]]


def group(args):
    from confluent_kafka import Consumer, Producer

    lock = threading.Lock()
    consumed = []  # (member, value) in the order processed
    assignments = {}  # member -> its current partitions
    stop = [threading.Event() for _ in range(3)]
    errors = []

    def member(i):
        def on_assign(consumer, partitions):
            with lock:
                assignments[i] = sorted(p.partition for p in partitions)

        def on_revoke(consumer, partitions):
            with lock:
                assignments[i] = []

        c = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": f"member-{i}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
            "partition.assignment.strategy": "range",
        })
        c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
        try:
            while not stop[i].is_set():
                msg = c.poll(0.1)
                if msg is None:
                    continue
                if msg.error():
                    errors.append(f"member {i}: {msg.error()}")
                    continue
                with lock:
                    consumed.append((i, json.loads(msg.value())["n"]))
                # Processed, then committed: the next read starts after it.
                try:
                    c.commit(message=msg, asynchronous=False)
                except Exception as e:  # a commit refused mid-rebalance is retried by redelivery
                    with lock:
                        errors.append(f"member {i} commit: {e}")
        finally:
            c.close()  # leaves the group
            with lock:
                assignments.pop(i, None)

    threads = [threading.Thread(target=member, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()

    def shares():
        with lock:
            return sorted(len(a) for a in assignments.values())

    def covers_all():
        with lock:
            return sorted(p for a in assignments.values() for p in a) == list(range(args.partitions))

    wait_for("three members sharing the partitions", lambda: len(shares()) == 3 and all(shares()) and covers_all())
    three = shares()
    members_over_http = http_members(args.http, args.group)

    delivered = []
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    })

    def on_delivery(err, msg):
        delivered.append(None if err else (msg.partition(), msg.offset()))
        if err:
            errors.append(f"delivery: {err}")

    for n in range(args.count):
        producer.produce(args.topic, key=f"k{n % 40}", value=json.dumps({"n": n}), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0, "records left undelivered"

    def distinct():
        with lock:
            return len({n for _, n in consumed})

    wait_for("half of the records", lambda: distinct() >= args.count // 2)
    stop[0].set()
    threads[0].join()
    wait_for("two members sharing the partitions", lambda: len(shares()) == 2 and covers_all())
    two = shares()
    wait_for("every record", lambda: distinct() == args.count)
    for i in (1, 2):
        stop[i].set()
    for t in threads[1:]:
        t.join()
    print(json.dumps({
        "three": three,
        "two": two,
        "members_over_http": members_over_http,
        "delivered": len([d for d in delivered if d]),
        "distinct_offsets": len(set(d for d in delivered if d)),
        "consumed": len(consumed),
        "consumed_distinct": distinct(),
        "members_that_consumed": sorted({m for m, _ in consumed}),
        "errors": [e for e in errors if "commit" not in e],
        "commit_errors": len([e for e in errors if "commit" in e]),
    }))


def resume(args):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    futures = [
        producer.send(args.topic, key=f"k{n % 40}".encode(), value=json.dumps({"n": n}).encode())
        for n in range(args.start, args.start + args.count)
    ]
    producer.flush(60)
    offsets = [f.get(timeout=60).offset for f in futures]
    producer.close()

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id="resumed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
        partition_assignment_strategy=[RoundRobinPartitionAssignor],
    )
    seen = []
    deadline = time.monotonic() + 90
    while len(seen) < args.count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            seen.extend(json.loads(r.value)["n"] for r in records)
    # Anything more than the new records would arrive now.
    for records in consumer.poll(timeout_ms=1000).values():
        seen.extend(json.loads(r.value)["n"] for r in records)
    consumer.commit()
    assigned = sorted(tp.partition for tp in consumer.assignment())
    consumer.close()
    print(json.dumps({"produced_offsets": len(offsets), "seen": sorted(seen), "assigned": assigned}))


def sasl(args):
    from confluent_kafka import Consumer, Producer

    base = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": args.ca,
    }
    plain = dict(base, **{"sasl.mechanisms": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-token"})
    report = {}

    def produce(config, topics):
        outcome = {}
        p = Producer(dict(config, acks="all"))
        for t in topics:
            p.produce(t, value=json.dumps({"by": t}), on_delivery=lambda err, msg, t=t: outcome.__setitem__(t, err.name() if err else "ok"))
        p.flush(30)
        return outcome

    # PLAIN: alice may produce to orders, not to payroll.
    report["plain"] = produce(plain, ["orders", "payroll"])

    # A group alice may use, and one she may not.
    def consume(group):
        c = Consumer(dict(plain, **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
        c.subscribe(["orders"])
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    return msg.error().name()
                c.commit(message=msg, asynchronous=False)
                return json.loads(msg.value())["by"]
            return "nothing"
        except Exception as e:  # the client raises what the broker refused
            return e.args[0].name() if e.args and hasattr(e.args[0], "name") else str(e)
        finally:
            c.close()

    report["own_group"] = consume("alice-readers")
    report["other_group"] = consume("bob-readers")

    # OAUTHBEARER: the JWT's subject is the principal.
    oauth = dict(base, **{"sasl.mechanisms": "OAUTHBEARER", "oauth_cb": lambda _: (args.jwt, time.time() + 600)})
    report["oauthbearer"] = produce(oauth, ["orders", "payroll"])

    # A wrong password: the client is told authentication failed.
    errors = []
    wrong = dict(plain, **{"sasl.password": "not-a-token", "error_cb": lambda e: errors.append(e.name())})
    p = Producer(wrong)
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        p.poll(0.2)
    report["wrong_password"] = sorted(set(errors))
    print(json.dumps(report))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["group", "resume", "sasl"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--http", default="")
    parser.add_argument("--ca")
    parser.add_argument("--jwt")
    parser.add_argument("--topic")
    parser.add_argument("--group")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    {"group": group, "resume": resume, "sasl": sasl}[args.command](args)


if __name__ == "__main__":
    main()
