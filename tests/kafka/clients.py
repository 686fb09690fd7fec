"""Real Kafka clients against Weir's Kafka listener, driven by
tests/integration/kafka_clients.rs. Each command prints one JSON report on stdout;
the Rust test asserts on it and checks the same group over HTTP.

Each runs with `--client confluent` (librdkafka; range assignor) or
`--client kafka-python` (round-robin assignor):

- `group`: three consumers of a group share six partitions; an idempotent producer
  (acks=all) sends records; every record is committed as it is processed; one
  member leaves half-way and the other two take its partitions.
- `resume`: an idempotent producer sends more records; a member of the same group
  reads from the group's committed offsets (and commits).
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


class ConfluentMember:
    """A group member on librdkafka (confluent-kafka), range assignor."""

    def __init__(self, args, i, assigned):
        from confluent_kafka import Consumer

        self.c = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": f"member-{i}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
            "partition.assignment.strategy": "range",
        })
        self.c.subscribe(
            [args.topic],
            on_assign=lambda _, ps: assigned(sorted(p.partition for p in ps)),
            on_revoke=lambda _, ps: assigned([]),
        )

    def poll(self):
        """Records read, each committed once processed; errors as strings."""
        msg = self.c.poll(0.1)
        if msg is None:
            return [], []
        if msg.error():
            return [], [str(msg.error())]
        n = json.loads(msg.value())["n"]
        try:
            self.c.commit(message=msg, asynchronous=False)
        except Exception as e:  # refused mid-rebalance: the record comes again
            return [n], [f"commit: {e}"]
        return [n], []

    def close(self):
        self.c.close()


class KafkaPythonMember:
    """A group member on kafka-python, round-robin assignor."""

    def __init__(self, args, i, assigned):
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        class Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, ps):
                assigned(sorted(p.partition for p in ps))

            def on_partitions_revoked(self, ps):
                assigned([])

        self.c = KafkaConsumer(
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            client_id=f"member-{i}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,
            partition_assignment_strategy=[RoundRobinPartitionAssignor],
        )
        self.c.subscribe([args.topic], listener=Listener())

    def poll(self):
        from kafka.structs import OffsetAndMetadata

        read, errors = [], []
        for tp, records in self.c.poll(timeout_ms=100, max_records=50).items():
            for r in records:
                read.append(json.loads(r.value)["n"])
                try:
                    self.c.commit({tp: OffsetAndMetadata(r.offset + 1, None, -1)})
                except Exception as e:  # refused mid-rebalance: the record comes again
                    errors.append(f"commit: {e}")
        return read, errors

    def close(self):
        self.c.close()


MEMBERS = {"confluent": ConfluentMember, "kafka-python": KafkaPythonMember}


def produce_idempotent(args, numbers):
    """Sends records {"n": N} with an idempotent producer (acks=all, linger 5 ms);
    returns the (partition, offset) of each."""
    if args.client == "confluent":
        from confluent_kafka import Producer

        delivered, errors = [], []
        p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})

        def on_delivery(err, msg):
            if err:
                errors.append(str(err))
            else:
                delivered.append((msg.partition(), msg.offset()))

        for n in numbers:
            p.produce(args.topic, key=f"k{n % 40}", value=json.dumps({"n": n}), on_delivery=on_delivery)
            p.poll(0)
        assert p.flush(60) == 0, "records left undelivered"
        assert not errors, errors
        return delivered
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    futures = [
        p.send(args.topic, key=f"k{n % 40}".encode(), value=json.dumps({"n": n}).encode()) for n in numbers
    ]
    p.flush(60)
    delivered = [(m.partition, m.offset) for m in (f.get(timeout=60) for f in futures)]
    p.close()
    return delivered


def group(args):
    lock = threading.Lock()
    consumed = []  # (member, value) in the order processed
    assignments = {}  # member -> its current partitions
    stop = [threading.Event() for _ in range(3)]
    errors = []

    def member(i):
        def assigned(partitions):
            with lock:
                assignments[i] = partitions

        m = MEMBERS[args.client](args, i, assigned)
        try:
            while not stop[i].is_set():
                read, failed = m.poll()
                with lock:
                    consumed.extend((i, n) for n in read)
                    errors.extend(f"member {i}: {e}" for e in failed)
        finally:
            m.close()  # leaves the group
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
    delivered = produce_idempotent(args, range(args.count))

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
        "delivered": len(delivered),
        "distinct_offsets": len(set(delivered)),
        "consumed": len(consumed),
        "consumed_distinct": distinct(),
        "members_that_consumed": sorted({m for m, _ in consumed}),
        "errors": [e for e in errors if "commit" not in e],
        "commit_errors": len([e for e in errors if "commit" in e]),
    }))


def resume(args):
    """Produces more records, then one member of the group reads from its committed
    offsets until it has them, and a moment longer (anything else would arrive)."""
    delivered = produce_idempotent(args, range(args.start, args.start + args.count))
    seen, assignment = [], []
    m = MEMBERS[args.client](args, 0, lambda ps: assignment.append(ps))
    deadline = time.monotonic() + 90
    while len(seen) < args.count and time.monotonic() < deadline:
        seen.extend(m.poll()[0])
    extra = time.monotonic() + 1
    while time.monotonic() < extra:
        seen.extend(m.poll()[0])
    m.close()
    print(json.dumps({"produced_offsets": len(delivered), "seen": sorted(seen), "assigned": next((a for a in reversed(assignment) if a), [])}))


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
    parser.add_argument("--client", choices=sorted(MEMBERS), default="confluent")
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
