"""Draws `results/layers-*.json` as log-log time and memory against sequence length, one
panel per backend, into `docs/img/`, and prints the markdown tables (as ratios) for the docs.
Memory is the accelerator's peak where the results have it (`peak_device_mb`, GPU runs), else
the growth of the worker's peak RSS. Given a `models-*.json` too, it prints its table.

`python benchmarks/plot.py [results/layers-cpu.json [results/models-cpu.json]]`
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS_IMG = os.path.join(os.path.dirname(HERE), "docs", "img")
LABELS = {
    "ours": "AdaptiveSpectralFilter",
    "handwritten": "hand-written (no Keras)",
    "fft_floor": "rfft + irfft",
    "attention": "MultiHeadAttention",
    "fnet": "FourierMixing",
    "fused_attention": "fused attention (framework kernel)",
}


def _memory_key(payload: dict) -> tuple[str, str]:
    for result in payload["results"]:
        for row in result.get("rows", []):
            if "peak_device_mb" in row:
                return "peak_device_mb", "peak GPU memory (MB)"
    return "peak_rss_growth_mb", "peak memory growth (MB)"


def _title(payload: dict) -> str:
    machine = payload["machine"]
    policy = payload.get("config", {}).get("policy", "float32")
    if machine.get("gpus"):
        where = machine["gpus"][0]["name"]
    else:
        where = f"{machine.get('cpu', '')}, {machine['cpu_count']} cores"
    return f"batch 8, 256 channels, 8 heads, {policy} — {where}"


def _series(result: dict, key: str):
    rows = [r for r in result.get("rows", []) if r["status"] == "ok" and key in r]
    return [r["length"] for r in rows], [r[key] for r in rows]


def plot(path: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as f:
        payload = json.load(f)
    backends = sorted({r["backend"] for r in payload["results"] if "rows" in r})
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(DOCS_IMG, exist_ok=True)
    written = []
    for key, ylabel in (
        ("forward_backward_ms", "forward+backward time (ms)"),
        _memory_key(payload),
    ):
        fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
        for ax, backend in zip(axes[0], backends, strict=True):
            for result in payload["results"]:
                if result["backend"] == backend and "rows" in result:
                    x, y = _series(result, key)
                    if x:
                        ax.loglog(
                            x,
                            [max(v, 1e-3) for v in y],
                            marker="o",
                            label=LABELS[result["contender"]],
                        )
            ax.set_title(backend)
            ax.set_xlabel("sequence length")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(_title(payload), fontsize=9)
        fig.tight_layout()
        out = os.path.join(DOCS_IMG, f"{stem}-{'time' if 'ms' in key else 'memory'}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written


def ratio_table(path: str) -> str:
    """Per backend and length: each contender's forward+backward time over ours (a column for
    the fused-attention contender where the results have one)."""
    with open(path) as f:
        payload = json.load(f)
    index = {
        (r["backend"], r["contender"]): {row["length"]: row for row in r["rows"]}
        for r in payload["results"]
        if "rows" in r
    }
    fused = any(contender == "fused_attention" for _, contender in index)
    lines = [
        "| backend | length | ours fwd / fwd+bwd (ms) | hand-written | rfft+irfft (fwd) "
        "| attention | FNet |" + (" fused attention |" if fused else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if fused else ""),
    ]
    for backend in sorted({b for b, _ in index}):
        ours = index.get((backend, "ours"), {})
        for length, row in sorted(ours.items()):
            if row["status"] != "ok":
                continue

            def ratio(
                contender, key="forward_backward_ms", row=row, length=length, backend=backend
            ):
                other = index.get((backend, contender), {}).get(length, {})
                if other.get("status") != "ok":
                    return other["status"].replace("_", " ") if other else "—"
                return f"{other[key] / row[key]:.2f}x"

            digits = 2 if row["forward_backward_ms"] < 10 else 1
            lines.append(
                f"| {backend} | {length} | {row['forward_ms']:.{digits}f} / "
                f"{row['forward_backward_ms']:.{digits}f} | {ratio('handwritten')} | "
                f"{ratio('fft_floor', 'forward_ms')} | {ratio('attention')} | {ratio('fnet')} |"
                + (f" {ratio('fused_attention')} |" if fused else "")
            )
    return "\n".join(lines)


def models_table(path: str) -> str:
    """Per backend and model: each mixer's step time and throughput, and FFTNet's speed-up
    over attention."""
    with open(path) as f:
        payload = json.load(f)
    lines = [
        "| backend | model | mixer | step (ms) | throughput | over attention |",
        "|---|---|---|---:|---:|---:|",
    ]
    for result in payload["results"]:
        rows = result.get("rows", [])
        attention = {r["model"]: r for r in rows if r["mixer"] == "attention"}
        for row in rows:
            if row.get("status", "ok") != "ok":
                lines.append(
                    f"| {result['backend']} | {row['model']} | {row['mixer']} | error | | |"
                )
                continue
            unit = "images/s" if "images_per_s" in row else "tokens/s"
            rate = row.get("images_per_s") or row.get("tokens_per_s")
            base = attention.get(row["model"])
            speedup = (
                f"{base['step_ms'] / row['step_ms']:.2f}x" if base and "step_ms" in base else "—"
            )
            lines.append(
                f"| {result['backend']} | {row['model']} | {row['mixer']} | "
                f"{row['step_ms']:.1f} | {rate:,.0f} {unit} | {speedup} |"
            )
    return "\n".join(lines)


#: The issue's CPU targets: (key in `targets`, label, bound (None: shown for reference),
#: whether the ratio must stay below).
TARGETS = (
    ("ours_over_handwritten_fwd_bwd_max", "ours / hand-written, worst length (≤ 1.15)", 1.15, True),
    (
        "ours_over_floor_fwd_max_at_4096_up",
        "ours / rfft+irfft forward, worst length ≥ 4,096 (≤ 2)",
        2.0,
        True,
    ),
    ("ours_16384_over_4096_fwd_bwd", "time(16,384) / time(4,096) for ours (≤ 5)", 5.0, True),
    ("fft_floor_16384_over_4096_fwd_bwd", "the same for rfft+irfft (for reference)", None, True),
    ("attention_over_ours_at_4096", "MultiHeadAttention / ours at 4,096 (≥ 10)", 10.0, False),
)


def targets_table(path: str) -> str:
    """The targets as measured ratios, one column per backend, marked met (✓) or missed (✗)."""
    with open(path) as f:
        targets = json.load(f).get("targets", {})
    backends = sorted(targets)
    lines = [
        "| target | " + " | ".join(backends) + " |",
        "| --- |" + " ---: |" * len(backends),
    ]
    for key, label, bound, below in TARGETS:
        cells = []
        for backend in backends:
            value = targets[backend].get(key)
            if value is None:
                cells.append("—")
            elif bound is None:
                cells.append(f"{value:g}")
            else:
                met = value <= bound if below else value >= bound
                cells.append(f"{value:g} {'✓' if met else '✗'}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sources = ", ".join(f"{b}: {targets[b].get('source', '?')}" for b in backends)
    lines.append("")
    lines.append(f"Ratios against the hand-written function and the floor from: {sources}.")
    return "\n".join(lines)


if __name__ == "__main__":
    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "layers-cpu.json")
    for written in plot(source):
        print(f"wrote {written}", file=sys.stderr)
    print(ratio_table(source))
    print()
    print(targets_table(source))
    if len(sys.argv) > 2:
        print()
        print(models_table(sys.argv[2]))
