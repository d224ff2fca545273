#!/usr/bin/env python3
"""Writes groups.jsonl: seeded random groups (instances, their threads and lags, tasks, settings) for
the task assignor's check against Kafka Streams' own (tests/differential/README.md, "The task
assignor"), then the groups of hard.jsonl: found among 20,000 larger random groups and by a review,
each one where a detail of Java's collections decides the answer (a priority queue holding an
instance under a load it no longer has; the order a HashSet puts passed-over instances back in)."""
import json
import random
import sys

rng = random.Random(20261207)
groups = []
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1000):
    subtopologies = rng.randint(1, 3)
    all_tasks = [f"{s}_{p}" for s in range(subtopologies) for p in range(rng.randint(1, 8))]
    stateful_subs = {s for s in range(subtopologies) if rng.random() < 0.7}
    stateful = [t for t in all_tasks if int(t.split("_")[0]) in stateful_subs]
    # Process ids are UUIDs: small ones, and any 128 bits (Java orders each half as a signed number).
    size = rng.choice([rng.randint(1, 6), rng.randint(1, 6), rng.randint(7, 20)])
    if rng.random() < 0.5:
        ids = [f"{i:032x}" for i in rng.sample(range(1, 1000), size)]
    else:
        ids = list(dict.fromkeys(f"{rng.getrandbits(128):032x}" for _ in range(size)))
    running = {t: rng.choice(ids + [None]) for t in stateful}
    clients = []
    for i in ids:
        lags = {}
        for t in stateful:
            if running[t] == i:
                lags[t] = -2
            else:
                r = rng.random()
                lags[t] = -3 if r < 0.03 else rng.randint(0, 2000) if r < 0.6 else 10_000
        clients.append({"id": i, "capacity": rng.randint(1, 4), "lags": lags})
    groups.append({
        "acceptable_recovery_lag": rng.choice([0, 100, 1000, 9223372036854775807]),
        "max_warmup_replicas": rng.randint(1, 3),
        "num_standby_replicas": rng.randint(0, 2),
        "all": all_tasks,
        "stateful": stateful,
        "clients": clients,
    })
with open(sys.argv[2] if len(sys.argv) > 2 else "groups.jsonl", "w") as f:
    for g in groups:
        f.write(json.dumps(g, separators=(",", ":")) + "\n")
    with open("hard.jsonl") as hard:
        f.write(hard.read())
