"""Draws `results/layers-*.json` as log-log time and memory against sequence length, one
panel per backend, into `docs/img/`, and prints the markdown tables (as ratios) for the docs.

`python benchmarks/plot.py [results/layers-cpu.json]`
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
}


def _series(result: dict, key: str):
    rows = [r for r in result["rows"] if r["status"] == "ok"]
    return [r["length"] for r in rows], [r[key] for r in rows]


def plot(path: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as f:
        payload = json.load(f)
    backends = sorted({r["backend"] for r in payload["results"]})
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(DOCS_IMG, exist_ok=True)
    written = []
    for key, ylabel in (
        ("forward_backward_ms", "forward+backward time (ms)"),
        ("peak_rss_growth_mb", "peak memory growth (MB)"),
    ):
        fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
        for ax, backend in zip(axes[0], backends, strict=True):
            for result in payload["results"]:
                if result["backend"] == backend:
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
        machine = payload["machine"]
        fig.suptitle(
            f"batch 8, 256 channels, 8 heads, float32 — {machine.get('cpu', '')}, "
            f"{machine['cpu_count']} cores",
            fontsize=9,
        )
        fig.tight_layout()
        out = os.path.join(DOCS_IMG, f"{stem}-{'time' if 'ms' in key else 'memory'}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written


def ratio_table(path: str) -> str:
    """Per backend and length: each contender's forward+backward time over ours."""
    with open(path) as f:
        payload = json.load(f)
    lines = [
        "| backend | length | ours fwd / fwd+bwd (ms) | hand-written | rfft+irfft (fwd) "
        "| attention | FNet |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    index = {
        (r["backend"], r["contender"]): {row["length"]: row for row in r["rows"]}
        for r in payload["results"]
    }
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
                    return "over budget" if other else "—"
                return f"{other[key] / row[key]:.2f}x"

            lines.append(
                f"| {backend} | {length} | {row['forward_ms']:.1f} / "
                f"{row['forward_backward_ms']:.1f} | {ratio('handwritten')} | "
                f"{ratio('fft_floor', 'forward_ms')} | {ratio('attention')} | {ratio('fnet')} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "layers-cpu.json")
    for written in plot(source):
        print(f"wrote {written}", file=sys.stderr)
    print(ratio_table(source))
