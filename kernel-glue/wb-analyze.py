#!/usr/bin/env python3
"""Host side of kernel-glue/wb-experiment.sh: reads the guests' serial logs (WBX lines written by
kernel-glue/testbin/src/bin/wbexp.rs and kernel-glue/guest/wb-init), writes the measured table
(markdown) and the max-ratio-lowered figure (SVG), prints one CHECK line per target and ends with
"N passed, N failed".

Each log is named VARIANT-POLICY-SCENARIO.log (variant plain|debug, policy linux|redistribute).
"""
import argparse
import os
import sys

POLICIES = ("linux", "redistribute")
COLORS = {"linux": "#d62728", "redistribute": "#1f77b4"}
# Targets of the max-ratio-lowered scenario.
REACH = (0.5, 0.8, 0.89)
TARGET_SHARE = 0.89
TARGET_WITHIN_S = 1.0
TARGET_MEAN_UNUSED = 0.01
WINDOW_S = 30.0
# "No throughput loss": each Redistribute writer keeps at least this fraction of its Linux rate.
THROUGHPUT_KEEP = 0.95


class Run:
    def __init__(self, path):
        base = os.path.basename(path)[: -len(".log")]
        self.variant, self.policy, self.scenario = base.split("-", 2)
        self.samples = []  # (t_s, T, a_thr, a_wb, a_recl, a_written, b_thr, b_wb, b_recl, b_written, dirty, wb)
        self.events = {}
        self.writers = {}
        self.kernel = []
        self.slots = None
        self.dmesg_bad = []
        self.dmesg_clean = False
        self.done = False
        self.fails = []
        with open(path, errors="replace") as f:
            for raw in f:
                line = raw.strip().replace("\r", "")
                i = line.find("WBX ")
                if i < 0:
                    continue
                w = line[i:].split()
                kind = w[1]
                if kind == "S" and len(w) == 14:
                    v = [int(x) for x in w[2:]]
                    self.samples.append((v[0] / 1000.0, *v[1:]))
                elif kind == "E":
                    self.events[w[3]] = int(w[2]) / 1000.0
                elif kind == "W":
                    self.writers[(w[2], w[3])] = (int(w[4]), int(w[5]) / 1000.0)
                elif kind == "slots":
                    self.slots = (int(w[3]), int(w[5]), int(w[7]))
                elif kind == "kernel":
                    self.kernel.append(" ".join(w[2:]))
                elif kind == "DMESG-BAD":
                    self.dmesg_bad.append(" ".join(w[2:]))
                elif kind == "DMESG":
                    self.dmesg_clean = w[2] == "clean"
                elif kind == "DONE":
                    self.done = True
                elif kind == "FAIL":
                    self.fails.append(" ".join(w[2:]))

    def rate(self, writer, phase):
        b, s = self.writers.get((writer, phase), (0, 0.0))
        return b / s / (1 << 20) if s > 0 else float("nan")

    def kernel_policy(self):
        for k in self.kernel:
            if "policy redistribute" in k:
                return "redistribute"
            if "policy linux" in k:
                return "linux"
        return "?"


def max_ratio_metrics(r):
    sw = r.events.get("switch")
    if sw is None or not r.samples:
        return None
    before = [s for s in r.samples if s[0] <= sw]
    base_written = before[-1][9] if before else 0
    after = [s for s in r.samples if sw < s[0] <= sw + WINDOW_S]
    m = {"first_completion": None}
    for s in after:
        if s[9] > base_written:
            m["first_completion"] = s[0] - sw
            break
    for x in REACH:
        m[x] = next((s[0] - sw for s in after if s[1] > 0 and s[6] >= x * s[1]), None)
    unused = [max(0.0, 1.0 - (s[2] + s[6]) / s[1]) for s in after if s[1] > 0]
    m["unused_mean"] = sum(unused) / len(unused) if unused else float("nan")
    m["unused_max"] = max(unused) if unused else float("nan")
    fc = m["first_completion"]
    later = [max(0.0, 1.0 - (s[2] + s[6]) / s[1]) for s in after if s[1] > 0 and fc is not None and s[0] - sw >= fc]
    m["unused_mean_fc"] = sum(later) / len(later) if later else float("nan")
    # What the devices wrote back over the window (BdiWritten), in MiB/s.
    alone = [s for s in before if s[0] >= 5.0]
    if len(alone) > 1:
        m["a_dev_pre"] = (alone[-1][5] - alone[0][5]) / 1024 / (alone[-1][0] - alone[0][0])
    else:
        m["a_dev_pre"] = float("nan")
    if after and before:
        span = after[-1][0] - before[-1][0]
        m["a_dev"] = (after[-1][5] - before[-1][5]) / 1024 / span
        m["b_dev"] = (after[-1][9] - before[-1][9]) / 1024 / span
    else:
        m["a_dev"] = m["b_dev"] = float("nan")
    m["a_pre"] = r.rate("A", "pre")
    m["a_post"] = r.rate("A", "post")
    m["b_post"] = r.rate("B", "post")
    fc, t89 = m["first_completion"], m[TARGET_SHARE]
    m["within"] = (t89 - fc) if (fc is not None and t89 is not None) else None
    return m


def idle_metrics(r):
    if not r.samples:
        return None
    end = r.events.get("stop", r.samples[-1][0])
    half = [s for s in r.samples if end / 2 <= s[0] <= end and s[1] > 0]
    if not half:
        return None
    return {
        "a_share": sum(s[2] / s[1] for s in half) / len(half),
        "b_share": sum(s[6] / s[1] for s in half) / len(half),
        "a_rate": r.rate("A", "run"),
    }


def fmt_t(v):
    return "not reached" if v is None else f"{v:.2f} s"


def fmt_pct(v):
    return f"{100 * v:.1f}%"


def svg_figure(runs, path, title):
    """B's threshold and the unused share over time since the switch, one line per policy."""
    W, H = 900, 670
    left, right = 70, 20
    panels = [(75, 240, "B's BdiDirtyThresh / DirtyThresh", lambda s: s[6] / s[1]),
              (375, 240, "unused share 1 - (A + B) / DirtyThresh", lambda s: max(0.0, 1 - (s[2] + s[6]) / s[1]))]
    x0, x1 = -5.0, WINDOW_S
    pw = W - left - right

    def X(t):
        return left + (t - x0) / (x1 - x0) * pw

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>']
    for top, ph, label, f in panels:
        def Y(v, top=top, ph=ph):
            return top + ph - min(max(v, 0.0), 1.0) * ph
        out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        out.append(f'<text x="{left + 4}" y="{top - 6}">{label}</text>')
        for v in (0.0, 0.25, 0.5, 0.75, 1.0):
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        for t in range(-5, int(x1) + 1, 5):
            out.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
            out.append(f'<text x="{X(t):.1f}" y="{top + ph + 15}" text-anchor="middle">{t}</text>')
        out.append(f'<line x1="{X(0):.1f}" x2="{X(0):.1f}" y1="{top}" y2="{top + ph}" stroke="#888" stroke-dasharray="4,3"/>')
        if top == panels[0][0]:
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(TARGET_SHARE):.1f}" y2="{Y(TARGET_SHARE):.1f}" '
                       'stroke="#2ca02c" stroke-dasharray="6,4"/>')
            out.append(f'<text x="{left + pw - 4}" y="{Y(TARGET_SHARE) - 4:.1f}" text-anchor="end" fill="#2ca02c">0.89</text>')
        for r in runs:
            sw = r.events.get("switch")
            if sw is None:
                continue
            pts = [(s[0] - sw, f(s)) for s in r.samples if s[1] > 0 and x0 <= s[0] - sw <= x1]
            if pts:
                d = " ".join(f"{X(t):.1f},{Y(v):.1f}" for t, v in pts)
                out.append(f'<polyline fill="none" stroke="{COLORS[r.policy]}" stroke-width="1.8" points="{d}"/>')
    out.append(f'<text x="{left + pw / 2}" y="{H - 14}" text-anchor="middle">'
               's since A.max_ratio = 10 and the writer on B started</text>')
    lx = left + pw - 2 * 170 + 40
    for i, p in enumerate(POLICIES):
        y = 42
        out.append(f'<line x1="{lx + i * 170}" x2="{lx + i * 170 + 24}" y1="{y}" y2="{y}" stroke="{COLORS[p]}" stroke-width="3"/>')
        out.append(f'<text x="{lx + i * 170 + 30}" y="{y + 4}">{p}</text>')
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="directory for kernel-*.md/svg")
    ap.add_argument("--setup", default="", help="one line describing the setup, for the table")
    ap.add_argument("logs", nargs="+")
    a = ap.parse_args()
    runs = [Run(p) for p in a.logs]
    checks = []

    def check(name, ok, detail):
        checks.append(ok)
        print(f"CHECK {'PASS' if ok else 'FAIL'} {name}: {detail}")

    md = ["# Global per-bdi thresholds in the kernel: Linux vs Redistribute", ""]
    if a.setup:
        md += [a.setup, ""]
    mr = {r.policy: r for r in runs if r.variant == "plain" and r.scenario == "max-ratio-lowered"}
    met = {p: max_ratio_metrics(r) for p, r in mr.items()}
    md += ["## max-ratio-lowered", "",
           "A written alone, then `A.max_ratio = 10` and a writer on B starts (t = 0). "
           "Times from t = 0; unused share over the first 30 s. Writer columns: what each writer "
           "wrote (into the page cache) per second; device columns: what its disk wrote back "
           "(BdiWritten) per second, over the 30 s after the switch (device A before: from 5 s to the "
           "switch, A alone, where both policies compute the same thresholds).", "",
           "| policy | B's first completion | B ≥ 0.5·T | B ≥ 0.8·T | B ≥ 0.89·T | unused share mean | "
           "unused share max | unused mean from B's first completion | writer A before (MiB/s) | writer A after | "
           "writer B | device A before | device A after | device B |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in POLICIES:
        m = met.get(p)
        if not m:
            md.append(f"| {p} | no run | | | | | | | | | | | | |")
            continue
        md.append(f"| {p} | {fmt_t(m['first_completion'])} | {fmt_t(m[0.5])} | {fmt_t(m[0.8])} | "
                  f"{fmt_t(m[0.89])} | {fmt_pct(m['unused_mean'])} | {fmt_pct(m['unused_max'])} | "
                  f"{fmt_pct(m['unused_mean_fc'])} | "
                  f"{m['a_pre']:.1f} | {m['a_post']:.1f} | {m['b_post']:.1f} | {m['a_dev_pre']:.1f} | {m['a_dev']:.1f} | {m['b_dev']:.1f} |")
    md.append("")
    idle = {r.policy: idle_metrics(r) for r in runs if r.variant == "plain" and r.scenario == "idle-min-ratio"}
    if idle:
        md += ["## idle-min-ratio", "",
               "B idle with `min_ratio = 30`, a writer on A; shares are means over the second half of the run.", "",
               "| policy | A's share of T | B's share of T | A (MiB/s) |", "|---|---|---|---|"]
        for p in POLICIES:
            m = idle.get(p)
            if m:
                md.append(f"| {p} | {fmt_pct(m['a_share'])} | {fmt_pct(m['b_share'])} | {m['a_rate']:.1f} |")
            else:
                md.append(f"| {p} | no run | | |")
        md.append("")
    dbg = [r for r in runs if r.variant == "debug"]
    if dbg:
        md += ["## debug kernel (lockdep, KASAN)", ""]
        for r in dbg:
            state = "clean" if r.dmesg_clean and not r.dmesg_bad else f"{len(r.dmesg_bad)} report line(s)"
            md.append(f"- {r.policy} {r.scenario}: dmesg {state}")
        md.append("")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "kernel-wb-table.md"), "w") as fh:
        fh.write("\n".join(md))
    print("\n".join(md))
    if mr:
        svg_figure([mr[p] for p in POLICIES if p in mr], os.path.join(a.out, "kernel-max-ratio-lowered.svg"),
                   "max-ratio-lowered in a Linux 7.3 guest: B's threshold and the unused share")

    for r in runs:
        name = f"{r.variant}/{r.policy}/{r.scenario}"
        check(f"{name} finished", r.done and not r.fails, "WBX DONE seen" if r.done else "no WBX DONE")
        check(f"{name} ran the {r.policy} policy", r.kernel_policy() == r.policy, f"kernel said {r.kernel_policy()}")
        check(f"{name} dmesg has no lockdep/KASAN/WARN/BUG", r.dmesg_clean and not r.dmesg_bad,
              "clean" if r.dmesg_clean and not r.dmesg_bad else "; ".join(r.dmesg_bad[:3]) or "no dmesg line")
    for r in runs:
        if r.scenario != "slots":
            continue
        full = [k for k in r.kernel if "slots in use" in k]
        check(f"{r.variant}/{r.policy}/slots: every loop device added and given ratios",
              r.slots is not None and r.slots[0] == r.slots[1] == r.slots[2], f"added/ratios/expected {r.slots}")
        check(f"{r.variant}/{r.policy}/slots: one warning when the slots ran out", len(full) == 1,
              full[0] if full else "no warning")
    m = met.get("redistribute")
    if m:
        w = m["within"]
        check("redistribute: B >= 0.89 T within 1 s of B's first completion",
              w is not None and w <= TARGET_WITHIN_S,
              f"first completion {fmt_t(m['first_completion'])}, 0.89 T at {fmt_t(m[0.89])}")
        check("redistribute: mean unused share < 1% over the first 30 s",
              m["unused_mean"] < TARGET_MEAN_UNUSED, fmt_pct(m["unused_mean"]))
    ml = met.get("linux")
    if m and ml:
        # Reported, not checked: the two policies run in two boots, and QEMU's throttle lets the
        # disks of one boot write faster than those of the other already before the switch,
        # where both compute the same thresholds (device A before, in the table). Each writer is
        # shown beside its disk's own rate before the switch.
        for key, who in (("a_post", "A"), ("b_post", "B")):
            print(f"REPORT writer {who} after the switch: redistribute {m[key]:.1f} MiB/s "
                  f"(disk A before {m['a_dev_pre']:.1f}), linux {ml[key]:.1f} MiB/s "
                  f"(disk A before {ml['a_dev_pre']:.1f}); target >= {THROUGHPUT_KEEP:.0%} of linux "
                  f"not decidable across boots")
    npass = sum(1 for c in checks if c)
    print(f"{npass} passed, {len(checks) - npass} failed")
    return 0 if npass == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
