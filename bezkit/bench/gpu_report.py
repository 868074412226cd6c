"""The GPU check's report as Markdown (for ``benchmarks/RESULTS.md``) and as a one-screen summary."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["markdown", "summary"]


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _step_rows(step: dict[str, Any]) -> list[str]:
    lines = ["| what | variant | batch | ms/step | images/s | TFLOP/s | of peak |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    tr = step.get("trainer")
    if tr:
        lines.append(f"| the trainer (train_flow: host batches, syncs, EMA) | eager bf16 | "
                     f"{tr['batch']} | {tr['ms_per_step']:.2f} | {tr['images_per_s']:.0f} | "
                     f"{tr['tflops']:.1f} | {_pct(tr['peak_fraction'])} |")  # fmt: skip
    for r in step.get("model", []) + step.get("compiled", []):
        if "error" in r:
            lines.append(f"| the model alone | {r['variant']} | {r['batch']} | {r['error']} ||||")
            continue
        lines.append(f"| the model alone (data on the device) | {r['variant']} | {r['batch']} | "
                     f"{r['ms_per_step']:.2f} | {r['images_per_s']:.0f} | {r['tflops']:.1f} | "
                     f"{_pct(r['peak_fraction'])} |")  # fmt: skip
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown section."""
    s = report["sections"]
    env = s.get("environment", {})
    lines = [
        f"Command: `{report['command']}` ({report['date']}), mode {report['mode']}, measured on "
        f"{report.get('measured_on')}, {report['total_seconds']:.0f} s in all (budget "
        f"{report['budget_s']:.0f} s).",
        "",
        f"- machine: {env.get('gpu', 'no GPU')} ({_fmt(env.get('gpu_memory_gib'))} GiB), "
        f"{env.get('cpu_count')} CPU cores; Python {env.get('python')}, torch {env.get('torch')} "
        f"(CUDA {env.get('cuda')}); FID backend: {env.get('fid_backend')}",
        "",
        "| section | status | seconds |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {k} | {v['status']} | {v.get('seconds', '-')} |" for k, v in s.items()]
    pk = s.get("peak", {})
    step = s.get("train_step", {})
    if step.get("trainer") or step.get("model"):
        compiled = s.get("compile", {}).get("runs", [])
        lines += ["", f"Training step of the cifar10 preset (FLOP per image, forward + backward: "
                      f"{step['flop_per_image_train'] / 1e9:.1f} G; peak: "
                      f"{_fmt(pk.get('peak_tflops_used'), '.0f')} TFLOP/s, a measured bf16 "
                      f"matrix product):", ""]  # fmt: skip
        lines += _step_rows({**step, "compiled": compiled})
    pair = s.get("pairs", {})
    if pair.get("runs"):
        lines += ["", f"Pair generation (Euler; {pair['timed_steps']} steps timed, pairs/s at the "
                      f"preset's {pair['teacher_steps']} steps per pair):", "",
                  "| batch | bf16 | pairs/s | TFLOP/s |", "| --- | --- | --- | --- |"]  # fmt: skip
        for r in pair["runs"]:
            if "error" in r:
                lines.append(f"| {r['batch']} | {r['bf16']} | {r['error']} | |")
            else:
                lines.append(f"| {r['batch']} | {r['bf16']} | "
                             f"{r['pairs_per_s_at_teacher_steps']:.1f} | {r['tflops']:.1f} |")  # fmt: skip
    for name in ("preflight", "ensemble2d", "pipeline", "cuda_tests", "ddp", "digits"):
        entry = s.get(name, {})
        extra = {k: v for k, v in entry.items() if k not in ("status", "seconds", "tail", "trace")}
        if extra:
            lines += ["", f"`{name}`: `{json.dumps(extra, default=str)[:700]}`"]
    return "\n".join(lines) + "\n"


def summary(report: dict[str, Any]) -> str:
    """A one-screen summary."""
    s = report["sections"]
    out = [f"GPU check ({report['mode']} mode, measured on {report.get('measured_on')}): "
           f"{report['total_seconds']:.0f} s"]  # fmt: skip
    for name, entry in s.items():
        line = f"  {name:<12} {entry['status']:<8} {entry.get('seconds', '-')!s:>7} s"
        if "error" in entry:
            line += f"  {entry['error'][:70]}"
        out.append(line)
    tr = s.get("train_step", {}).get("trainer")
    if tr:
        out.append(f"  trainer step batch {tr['batch']}: {tr['ms_per_step']:.2f} ms, "
                   f"{tr['images_per_s']:.0f} img/s, {tr['tflops']:.1f} TFLOP/s "
                   f"({_pct(tr['peak_fraction'])} of peak)")  # fmt: skip
    for r in s.get("pairs", {}).get("runs", []):
        if "error" not in r:
            out.append(f"  pairs batch {r['batch']:>5} bf16={r['bf16']!s:<5}: "
                       f"{r['pairs_per_s_at_teacher_steps']:8.1f} pairs/s")  # fmt: skip
    ens = s.get("ensemble2d", {})
    if ens.get("gpu_speedup_vs_cpu") is not None:
        out.append(f"  2D seed ensemble: GPU {ens['gpu_speedup_vs_cpu']:.2f}x the CPU")
    dg = s.get("digits", {})
    if dg.get("digits_seconds") is not None:
        size = " --tiny" if dg.get("tiny") else ""
        out.append(f"  digits pipeline{size}: {dg['digits_seconds']:.0f} s (one seed on a quiet "
                   f"CPU: {dg['quiet_cpu_seconds']:.0f} s)")  # fmt: skip
    return "\n".join(out)
