"""Real processes for the tests and the benches alike: a search driver started and killed by its
process group (killing.py), a two-node Ray cluster whose second node has a mount namespace of its own
(cluster.py), an S3-protocol server on loopback (s3server.py), the chained kill sweep (kill_sweep.py),
and the environment every such process runs in (env.py). Each stops exactly the processes it
started. The tests (tests/) and bench/ import it; it imports nothing of theirs."""
