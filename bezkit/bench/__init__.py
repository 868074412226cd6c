"""Measurements that are run by hand (never timed by the tests): the GPU check
(``python -m bezkit.bench.gpu``, ``scripts/gpu_check.sh``) and its parts."""

__all__: list[str] = []
