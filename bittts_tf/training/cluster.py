"""What tools/train.py's --strategy and --precision accept, and TF_CONFIG,
checked without TensorFlow: a bad cluster description is refused before the
import (about 8 s of CPU). `distribute` builds the strategies."""

from __future__ import annotations

import json

STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Seconds a collective may wait for a peer before the run stops with an error
# (a killed worker); TensorFlow's default is to wait forever.
COLLECTIVE_TIMEOUT_SECONDS = 120.0


class DistributeError(ValueError):
    """A strategy, TF_CONFIG or batch size that cannot work."""


def check_strategy(name: str) -> None:
    if name not in STRATEGIES:
        raise DistributeError(f"--strategy={name!r}: must be one of {STRATEGIES}")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise DistributeError(f"--precision={precision!r}: must be one of {PRECISIONS}")


def parse_tf_config(text: str | None) -> dict:
    """TF_CONFIG as a dict, checked: a cluster with workers and this task in it."""
    if not text:
        raise DistributeError("--strategy=multi_worker needs TF_CONFIG (a JSON "
                              '{"cluster": {"worker": ["host:port", ...]}, "task": '
                              '{"type": "worker", "index": i}})')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise DistributeError(f"TF_CONFIG is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise DistributeError(f"TF_CONFIG must be a JSON object, got {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise DistributeError("TF_CONFIG has no \"cluster\" object")
    for job, addresses in cluster.items():
        if job not in ("chief", "worker"):
            raise DistributeError(f"TF_CONFIG cluster job {job!r}: multi_worker takes "
                                  f"\"chief\" and \"worker\" only")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit()
                           for a in addresses)):
            raise DistributeError(f"TF_CONFIG cluster {job!r} must be a list of "
                                  f"\"host:port\", got {addresses!r}")
    if "worker" not in cluster and "chief" not in cluster:
        raise DistributeError("TF_CONFIG cluster lists no worker")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise DistributeError(f"TF_CONFIG task {task!r} must name a job of the cluster "
                              f"({sorted(cluster)})")
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise DistributeError(f"TF_CONFIG task index {index!r} is not in 0.."
                              f"{len(cluster[task['type']]) - 1}")
    return config


def is_chief_task(config: dict | None) -> bool:
    """The task that writes checkpoints and logs: "chief", else worker 0."""
    if config is None:
        return True
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


class WorkerLost(RuntimeError):
    """A collective failed: a worker stopped (killed, crashed, unreachable)."""
