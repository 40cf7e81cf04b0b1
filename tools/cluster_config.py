"""TF_CONFIG for every worker of a multi-worker `bert-tf pretrain` (MultiWorkerMirroredStrategy).

Every host runs the same command; only TF_CONFIG differs: the same `cluster` (every worker's
host:port, in the same order everywhere) and this host's own `task` (type and index).

    python tools/cluster_config.py --hosts h1:2222,h2:2222                # export lines, one a host
    python tools/cluster_config.py --workers 4 --port-base 2222 --format json   # localhost ports
    python tools/cluster_config.py --hosts h1:2222,h2:2222,h3:2222 --chief      # h1 is "chief"
    python tools/cluster_config.py --workers 4 --format k8s > job.yaml    # Indexed Job + Service
    python tools/cluster_config.py --workers 4 --format vertex            # Vertex AI / Cloud TPU

Roles: without `--chief` the hosts are workers 0..N-1 and worker 0 is the chief (it writes the
checkpoints, summaries and OUT/pretrained/); with `--chief` the first host is task "chief" and the
others are workers 0..N-2. Both are what `bert_tf.training.distribution.is_chief` expects.

`--format k8s` and `--format vertex` print examples to edit (IMAGE, PROJECT, REGION, BUCKET, ZONE
and TPU_NAME are placeholders): in Kubernetes each pod of an Indexed Job builds its TF_CONFIG
from JOB_COMPLETION_INDEX, and a headless Service gives the pods the stable names the cluster
lists; Vertex AI writes TF_CONFIG itself (its first worker pool is the chief), and a Cloud TPU runs
`--strategy tpu`, which needs no TF_CONFIG. Bad input is one error line and exit status 2.

Importable: `parse_hosts`, `local_hosts`, `cluster_spec`, `tf_configs` and the `render_*`
functions hold all the logic; `main(argv)` is the command line.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys

FORMATS = ("env", "json", "k8s", "vertex")
DEFAULT_COMMAND = ("bert-tf pretrain --config bert_config.json "
                   "--data 'gs://BUCKET/records/*.tfrecord.gz' --out gs://BUCKET/runs/p1 "
                   "--steps 100000 --batch-size 256 --strategy multi_worker --no-progress")
DEFAULT_PORT = 2222
# A host name, an IPv4 address, or an IPv6 address in brackets: nothing a shell or JSON quotes.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?)$")


class ClusterConfigError(ValueError):
    """Bad hosts, ports, worker count or option combination (the message says which)."""


def _port(text: str, where: str) -> int:
    # Digits only: int() would also take "+80", " 80" and "8_0".
    if not re.fullmatch(r"[0-9]{1,5}", text):
        raise ClusterConfigError(f"{where}: port {text!r} is not a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ClusterConfigError(f"{where}: port {port} is outside 1-65535")
    return port


def parse_hosts(spec: str) -> list:
    """'h1:2222,h2:2222' -> ['h1:2222', 'h2:2222'], validated: every entry host:port, ports in
    1-65535, no host:port twice (several ports of one host are fine: several workers on it)."""
    entries = [part.strip() for part in spec.split(",")]
    if not any(entries):
        raise ClusterConfigError("--hosts: no hosts given (need at least 1, as host:port,...)")
    hosts, seen = [], {}
    for position, entry in enumerate(entries, 1):
        if not entry:
            raise ClusterConfigError(f"--hosts: entry {position} is empty (stray comma?)")
        host, sep, port_text = entry.rpartition(":")
        if not sep or not host:
            raise ClusterConfigError(f"--hosts: {entry!r} is not host:port")
        if not _HOST.match(host):
            raise ClusterConfigError(f"--hosts: {host!r} is not a host name or IP address")
        port = _port(port_text, f"--hosts {entry!r}")
        # Host names are case-insensitive: H1:2222 and h1:2222 are the same worker twice.
        key = (host.lower(), port)
        if key in seen:
            raise ClusterConfigError(f"--hosts: {host}:{port} is given twice (entries "
                                     f"{seen[key]} and {position}); each worker needs its own "
                                     "host:port")
        seen[key] = position
        hosts.append(f"{host}:{port}")
    return hosts


def local_hosts(workers: int, port_base: int, host: str = "localhost") -> list:
    """N workers on one machine: host:port_base, host:port_base+1, ..."""
    if workers < 1:
        raise ClusterConfigError(f"--workers must be at least 1, got {workers}")
    _port(str(port_base), "--port-base")
    if port_base + workers - 1 > 65535:
        raise ClusterConfigError(f"--port-base {port_base} + {workers} workers runs past port "
                                 "65535")
    return [f"{host}:{port_base + i}" for i in range(workers)]


def cluster_spec(hosts: list, chief: bool = False) -> dict:
    """The `cluster` entry shared by every worker."""
    if not hosts:
        raise ClusterConfigError("a cluster needs at least 1 host")
    if not chief:
        return {"worker": list(hosts)}
    spec = {"chief": [hosts[0]]}
    if len(hosts) > 1:
        spec["worker"] = list(hosts[1:])
    return spec


def task_of(position: int, chief: bool = False) -> dict:
    """The `task` of the host at `position` (0-based) in the host list."""
    if chief:
        return ({"type": "chief", "index": 0} if position == 0 else
                {"type": "worker", "index": position - 1})
    return {"type": "worker", "index": position}


def tf_configs(hosts: list, chief: bool = False) -> list:
    """One TF_CONFIG dict per host, in host order."""
    cluster = cluster_spec(hosts, chief)
    return [{"cluster": cluster, "task": task_of(i, chief)} for i in range(len(hosts))]


def _role(config: dict) -> str:
    task = config["task"]
    # Mirrors bert_tf.training.distribution.is_chief, which tests/test_cluster_config.py checks.
    if task["type"] == "chief":
        return "chief"
    leads = "chief" not in config["cluster"] and task["index"] == 0
    return f"worker {task['index']}" + (" (chief)" if leads else "")


def render_env(hosts: list, configs: list) -> str:
    """One `export TF_CONFIG='...'` line per host (run it there, then the training command)."""
    return "\n".join(f"export TF_CONFIG='{json.dumps(c, separators=(',', ':'))}'"
                     f"  # on {host}: {_role(c)}" for host, c in zip(hosts, configs)) + "\n"


def render_json(configs: list) -> str:
    return json.dumps(configs, indent=2) + "\n"


def _k8s_script(chief: bool, command: str) -> list:
    """The pod's shell script: TF_CONFIG from JOB_COMPLETION_INDEX, then the training command."""
    lines = []
    if chief:
        lines += ['if [ "$JOB_COMPLETION_INDEX" -eq 0 ]; then',
                  '  TASK=\'{"type": "chief", "index": 0}\'',
                  "else",
                  '  TASK="{\\"type\\": \\"worker\\", \\"index\\": $((JOB_COMPLETION_INDEX - 1))}"',
                  "fi"]
    else:
        lines.append('TASK="{\\"type\\": \\"worker\\", \\"index\\": $JOB_COMPLETION_INDEX}"')
    lines += ['export TF_CONFIG="{\\"cluster\\": $CLUSTER, \\"task\\": $TASK}"',
              f"exec {command}"]
    return lines


def render_k8s(workers: int, port: int = DEFAULT_PORT, chief: bool = False,
               command: str = DEFAULT_COMMAND, job: str = "bert-tf-pretrain",
               service: str = "bert-tf-workers", image: str = "IMAGE") -> str:
    """An Indexed Job of `workers` pods and the headless Service that names them
    `<job>-<index>.<service>`; each pod derives its TF_CONFIG from JOB_COMPLETION_INDEX."""
    if workers < 1:
        raise ClusterConfigError(f"--workers must be at least 1, got {workers}")
    _port(str(port), "--port-base")
    if not command.strip() or "\n" in command:
        raise ClusterConfigError("--command must be one non-empty line")
    hosts = [f"{job}-{i}.{service}:{port}" for i in range(workers)]
    cluster = json.dumps(cluster_spec(hosts, chief))
    script = "\n".join("            " + line for line in _k8s_script(chief, command))
    roles = "the chief (i = 0) or worker i-1" if chief else "worker i (worker 0 is the chief)"
    return f"""\
# {workers} pods run the same command; pod i is {roles}.
# Edit IMAGE (bert_tf installed, bert_config.json in its working directory) and BUCKET: every
# pod must read the same --data and --out (a bucket or a shared volume), as the chief's
# checkpoints are what every worker resumes from. A failed pod fails the Job (backoffLimit 0):
# delete and re-apply it to resume from the last checkpoint.
apiVersion: v1
kind: Service
metadata:
  name: {service}
spec:
  clusterIP: None            # headless: DNS names for the pods, no load balancing
  selector:
    job-name: {job}
  ports:
  - name: grpc
    port: {port}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {job}
spec:
  completionMode: Indexed    # pod hostnames {job}-0 .. {job}-{workers - 1}
  completions: {workers}
  parallelism: {workers}
  backoffLimit: 0
  template:
    spec:
      subdomain: {service}   # with the Service: {job}-<i>.{service} resolves
      restartPolicy: Never
      containers:
      - name: trainer
        image: {image}
        ports:
        - containerPort: {port}
        env:
        - name: CLUSTER
          value: {json.dumps(cluster)}
        command: ["/bin/sh", "-c"]
        args:
          - |
{script}
"""


def render_vertex(workers: int, command: str = DEFAULT_COMMAND) -> str:
    """A Vertex AI custom job (Vertex sets TF_CONFIG: pool 0 is the chief, pool 1 the workers)
    and a Cloud TPU VM command line (TPUStrategy, no TF_CONFIG)."""
    if workers < 1:
        raise ClusterConfigError(f"--workers must be at least 1, got {workers}")
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise ClusterConfigError(f"--command: {e}") from None
    if not argv:
        raise ClusterConfigError("--command must be one non-empty line")
    pool = """\
  - machineSpec:
      machineType: n1-standard-16
    replicaCount: {count}
    containerSpec:
      imageUri: IMAGE
      command: {command}
      args: {args}
"""
    pools = pool.format(count=1, command=json.dumps(argv[:1]), args=json.dumps(argv[1:]))
    if workers > 1:
        pools += pool.format(count=workers - 1, command=json.dumps(argv[:1]),
                             args=json.dumps(argv[1:]))
    roles = ('task "chief"' if workers == 1 else
             f'task "chief"; the second, workers 0..{workers - 2}')
    tpu_command = shlex.join(_without_strategy(argv) + ["--strategy", "tpu"])
    # Double quotes read best around a command with single-quoted globs, when nothing in it
    # would expand inside them.
    quoted = (f'"{tpu_command}"' if not set(tpu_command) & set('"$`\\!')
              else shlex.quote(tpu_command))
    return f"""\
# Vertex AI custom job on {workers} machine(s). Vertex sets TF_CONFIG on each one itself (the
# first worker pool is {roles}). Save the part between the
# markers as job.yaml, edit IMAGE and BUCKET, then run the gcloud line after it.
# --- job.yaml ---
workerPoolSpecs:
{pools.rstrip()}
# --- end of job.yaml ---
gcloud ai custom-jobs create --project=PROJECT --region=REGION \\
    --display-name=bert-tf-pretrain --config=job.yaml

# Cloud TPU VM (a slice of any size): the same command on every host of the slice with
# --strategy tpu (TPUStrategy finds the TPU itself; TF_CONFIG is not used).
gcloud compute tpus tpu-vm ssh TPU_NAME --project=PROJECT --zone=ZONE --worker=all \\
    --command={quoted}
"""


def _without_strategy(argv: list) -> list:
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--strategy":
            skip = True
        elif not token.startswith("--strategy="):
            out.append(token)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cluster_config.py",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--hosts", help="host:port,host:port,... (env and json formats)")
    where.add_argument("--workers", type=int,
                       help="N workers: on localhost (env, json) or as N pods/machines (k8s, "
                            "vertex)")
    p.add_argument("--port-base", type=int, default=DEFAULT_PORT,
                   help=f"with --workers: the first port (default {DEFAULT_PORT}); localhost "
                        "workers get port-base, port-base+1, ...; k8s pods all use it")
    p.add_argument("--chief", action="store_true",
                   help="the first host is task 'chief' and the rest workers 0..N-2 (default: "
                        "all workers, worker 0 leads)")
    p.add_argument("--format", choices=FORMATS, default="env")
    p.add_argument("--command", default=DEFAULT_COMMAND,
                   help="the training command the k8s and vertex examples run")
    return p


def render(args) -> str:
    """The output text for parsed arguments (raises ClusterConfigError on bad input)."""
    if args.format in ("k8s", "vertex"):
        if args.hosts is not None:
            raise ClusterConfigError(f"--format {args.format} names the hosts itself; give "
                                     "--workers N instead of --hosts")
        if args.format == "k8s":
            return render_k8s(args.workers, args.port_base, args.chief, args.command)
        return render_vertex(args.workers, args.command)
    hosts = (parse_hosts(args.hosts) if args.hosts is not None
             else local_hosts(args.workers, args.port_base))
    configs = tf_configs(hosts, args.chief)
    return render_env(hosts, configs) if args.format == "env" else render_json(configs)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        text = render(args)
    except ClusterConfigError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
