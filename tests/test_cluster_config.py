"""tools/cluster_config.py: the TF_CONFIG it writes is what bert_tf.training.distribution reads
(`auto` picks multi_worker for 2+ workers, exactly the right worker is the chief), the k8s
manifest gives each pod its own worker index, and bad input is one error line with exit 2."""

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import types

import pytest
import tensorflow as tf

from bert_tf.training.distribution import is_chief, resolve_strategy_name

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                    "cluster_config.py")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("cluster_config", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(tool, capsys, *argv):
    code = tool.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def seen_by_distribution(monkeypatch, config):
    """(strategy `auto` resolves to, is_chief) for a process started with this TF_CONFIG."""
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    # is_chief only reads the strategy's cluster resolver; a real MultiWorkerMirroredStrategy
    # would start gRPC servers on these ports.
    return resolve_strategy_name("auto"), is_chief(types.SimpleNamespace(cluster_resolver=resolver))


def env_configs(text):
    """The TF_CONFIG of each `export TF_CONFIG='...'  # comment` line, as the shell reads it."""
    configs = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "export" and words[1].startswith("TF_CONFIG="), line
        configs.append(json.loads(words[1][len("TF_CONFIG="):]))
    return configs


LAYOUTS = [
    (["--hosts", "h1:2222,h2:2222,h3:2300"], ["h1:2222", "h2:2222", "h3:2300"], False),
    (["--hosts", "h1:2222,h2:2222,h3:2300", "--chief"], ["h1:2222", "h2:2222", "h3:2300"], True),
    (["--workers", "4", "--port-base", "5000"],
     ["localhost:5000", "localhost:5001", "localhost:5002", "localhost:5003"], False),
    (["--hosts", "10.0.0.7:2222,10.0.0.7:2223"], ["10.0.0.7:2222", "10.0.0.7:2223"], False),
    (["--workers", "1"], ["localhost:2222"], False),
]


@pytest.mark.parametrize("argv, hosts, chief", LAYOUTS)
def test_env_and_json_agree_with_distribution(tool, capsys, monkeypatch, argv, hosts, chief):
    code, env_text, err = run_tool(tool, capsys, *argv, "--format", "env")
    assert code == 0 and err == ""
    code, json_text, _ = run_tool(tool, capsys, *argv, "--format", "json")
    assert code == 0
    from_env, from_json = env_configs(env_text), json.loads(json_text)
    assert from_env == from_json and len(from_env) == len(hosts)

    expected_cluster = ({"chief": hosts[:1], "worker": hosts[1:]} if chief else {"worker": hosts})
    tasks = set()
    for position, (config, line) in enumerate(zip(from_env, env_text.splitlines())):
        assert config["cluster"] == expected_cluster        # the same cluster on every host
        task = (config["task"]["type"], config["task"]["index"])
        tasks.add(task)
        # The task names this host's own entry of the cluster.
        assert config["cluster"][task[0]][task[1]] == hosts[position]
        assert f"# on {hosts[position]}:" in line
        strategy, chief_here = seen_by_distribution(monkeypatch, config)
        assert strategy == ("multi_worker" if len(hosts) > 1 else "one_device")
        assert chief_here == (position == 0), (position, config)
    assert len(tasks) == len(hosts)


def test_two_host_example_values(tool, capsys):
    """The exact strings the README's two-host example shows."""
    _, out, _ = run_tool(tool, capsys, "--hosts", "host-a:2222,host-b:2222")
    assert out.splitlines() == [
        """export TF_CONFIG='{"cluster":{"worker":["host-a:2222","host-b:2222"]},"task":"""
        """{"type":"worker","index":0}}'  # on host-a:2222: worker 0 (chief)""",
        """export TF_CONFIG='{"cluster":{"worker":["host-a:2222","host-b:2222"]},"task":"""
        """{"type":"worker","index":1}}'  # on host-b:2222: worker 1"""]


def printing_tf_config(script):
    """The pod's script with its last line, `exec <training command>`, replaced by printing
    TF_CONFIG."""
    lines = script.rstrip("\n").splitlines()
    assert lines[-1].startswith("exec bert-tf pretrain ")
    lines[-1] = 'printf "%s" "$TF_CONFIG"'
    return lines


@pytest.mark.parametrize("chief", [False, True])
def test_k8s_manifest_gives_each_pod_its_worker_index(tool, capsys, monkeypatch, chief):
    workers = 3
    code, text, _ = run_tool(tool, capsys, "--workers", str(workers), "--port-base", "2345",
                             "--format", "k8s", *(["--chief"] if chief else []))
    assert code == 0
    assert "completionMode: Indexed" in text and f"completions: {workers}" in text
    assert "clusterIP: None" in text and "JOB_COMPLETION_INDEX" in text
    try:
        import yaml
    except ImportError:     # PyYAML is optional: the textual checks above still ran
        pytest.skip("PyYAML not installed")
    service, job = yaml.safe_load_all(text)
    assert service["kind"] == "Service" and service["spec"]["clusterIP"] == "None"  # headless
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == workers
    name, subdomain = job["metadata"]["name"], job["spec"]["template"]["spec"]["subdomain"]
    assert service["spec"]["selector"] == {"job-name": name}
    assert subdomain == service["metadata"]["name"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 2345
    env = {e["name"]: e["value"] for e in container["env"]}
    script = "\n".join(printing_tf_config(container["args"][0]))
    hosts = [f"{name}-{i}.{subdomain}:2345" for i in range(workers)]   # the pods' DNS names
    seen = []
    for index in range(workers):
        result = subprocess.run(container["command"] + [script], capture_output=True, text=True,
                                env=dict(env, JOB_COMPLETION_INDEX=str(index)), timeout=10)
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        task = config["task"]
        # Pod i is the host named <job>-i: its task must point at that entry of the cluster.
        assert config["cluster"][task["type"]][task["index"]] == hosts[index]
        strategy, chief_here = seen_by_distribution(monkeypatch, config)
        assert strategy == "multi_worker" and chief_here == (index == 0)
        seen.append((task["type"], task["index"]))
    expected = ([("chief", 0), ("worker", 0), ("worker", 1)] if chief else
                [("worker", 0), ("worker", 1), ("worker", 2)])
    assert seen == expected


def test_vertex_example(tool, capsys):
    code, text, _ = run_tool(tool, capsys, "--workers", "4", "--format", "vertex")
    assert code == 0
    start, end = "# --- job.yaml ---\n", "# --- end of job.yaml ---"
    job_yaml = text[text.index(start) + len(start):text.index(end)]
    try:
        import yaml
    except ImportError:
        pytest.skip("PyYAML not installed")
    pools = yaml.safe_load(job_yaml)["workerPoolSpecs"]
    assert [p["replicaCount"] for p in pools] == [1, 3]     # chief pool, then 3 workers
    args = pools[0]["containerSpec"]["args"]
    assert pools[0]["containerSpec"]["command"] == ["bert-tf"]
    assert args[args.index("--strategy") + 1] == "multi_worker"
    tpu = text[text.index("tpu-vm ssh"):]
    assert "--worker=all" in tpu and "--strategy tpu" in tpu and "multi_worker" not in tpu
    for placeholder in ("PROJECT", "BUCKET", "IMAGE", "REGION"):
        assert placeholder in text


BAD = [
    (["--hosts", "h1:2222,H1:2222"], "H1:2222 is given twice"),
    (["--hosts", "h1:2222,h2:2222,h1:2222"], "h1:2222 is given twice (entries 1 and 3)"),
    (["--hosts", "h1:70000"], "port 70000 is outside 1-65535"),
    (["--hosts", "h1:0"], "port 0 is outside 1-65535"),
    (["--hosts", "h1:http"], "port 'http' is not a number"),
    (["--hosts", "h1:+80"], "port '+80' is not a number"),
    (["--hosts", "h1"], "'h1' is not host:port"),
    (["--hosts", "h1:2222,,h2:2222"], "entry 2 is empty"),
    (["--hosts", ""], "no hosts given"),
    (["--hosts", "a;rm:1"], "'a;rm' is not a host name"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "0", "--format", "k8s"], "--workers must be at least 1, got 0"),
    (["--workers", "3", "--port-base", "65534"], "runs past port 65535"),
    (["--workers", "2", "--port-base", "0"], "--port-base: port 0 is outside"),
    (["--hosts", "h1:2222", "--format", "k8s"], "give --workers N instead of --hosts"),
    (["--workers", "2", "--format", "k8s", "--command", " "], "--command must be one non-empty"),
    (["--workers", "2", "--format", "vertex", "--command", "bert-tf 'x"], "--command: No closing"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_is_one_clear_error(tool, capsys, argv, message):
    code, out, err = run_tool(tool, capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("cluster_config.py: error: "), err
    assert message in err.replace("\"", "'"), err


def test_command_line_exit_status_and_no_traceback():
    bad = subprocess.run([sys.executable, TOOL, "--hosts", "h1:2222,h1:2222"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == ("cluster_config.py: error: --hosts: h1:2222 is given twice "
                                  "(entries 1 and 2); each worker needs its own host:port")
    good = subprocess.run([sys.executable, TOOL, "--workers", "2", "--format", "json"],
                          capture_output=True, text=True, timeout=30)
    assert good.returncode == 0 and len(json.loads(good.stdout)) == 2


def readme_section():
    with open(os.path.join(os.path.dirname(TOOL), "..", "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n## Scale out: several machines\n")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_example_is_what_the_tool_writes(tool, capsys):
    section = readme_section()
    command = next(line for line in section.splitlines()
                   if line.startswith("python tools/cluster_config.py "))
    argv = shlex.split(command, comments=True)[2:]
    argv = argv[:argv.index(">")]
    code, out, _ = run_tool(tool, capsys, *argv)
    assert code == 0
    configs = env_configs(out)
    shown = json.loads(section[section.index("TF_CONFIG={") + len("TF_CONFIG="):].split("\n")[0])
    # The README shows host-b's line (the 2nd) and says the 1st is the chief's.
    assert shown == configs[1] and configs[0]["task"] == {"type": "worker", "index": 0}
    assert "--strategy multi_worker" in section


def test_readme_flags_exist(tool):
    """Every --flag the section names is a flag of the tool, of pretrain or of
    create-pretraining-data."""
    from bert_tf.commands import create_pretraining_data, pretrain
    parsers = [tool.build_parser()]
    for command in (pretrain, create_pretraining_data):
        subparsers = argparse.ArgumentParser().add_subparsers()
        command.register(subparsers)
        parsers.extend(subparsers.choices.values())
    known = {flag for p in parsers for action in p._actions for flag in action.option_strings}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", readme_section()))
    assert named and named <= known, named - known
