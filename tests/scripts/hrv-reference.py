#!/usr/bin/env python3
"""Reference values of time-domain heart-rate variability for the unit test in
src/rhythm/hrv.rs, computed by established implementations rather than by us.

Reads the NN intervals (ms, one a line) in tests/fixtures/hrv/nn_intervals.txt;
when that file is missing (or with --regenerate) first writes it: a
deterministic, seeded synthetic series of about 23 minutes (a slow rate change,
respiratory sinus arrhythmia and noise), integer ms, all within 300-2000 ms and
within 20 % of the median of their neighbours, so holterd's artefact rules
exclude none of them. Then runs NeuroKit2's hrv_time and, when installed,
hrv-analysis's get_time_domain_features on it and writes
tests/fixtures/hrv/reference.json with the library versions.

Usage (in a virtual environment outside the repository):
    python3 -m venv /tmp/hrvenv
    /tmp/hrvenv/bin/pip install neurokit2 hrv-analysis "nolds==0.5.2"
    /tmp/hrvenv/bin/python tests/scripts/hrv-reference.py [--regenerate]
(hrv-analysis imports nolds, whose 0.6.3 fails to import on Python 3.11.7 with
"'nolds.datasets' is not a package"; 0.5.2 imports, and hrv-analysis's
time-domain features do not use it.)

What the libraries compute (read from their sources, NeuroKit2 0.3.0 and
hrv-analysis 1.0.6), and how it compares with src/rhythm/hrv.rs:
- MeanNN, SDNN (sample SD, ddof = 1), RMSSD: the same definitions.
- pNN50: NeuroKit2 divides NN50 by the number of differences + 1, which for an
  uninterrupted series is the number of NN intervals, as the Task Force's
  Table 1 defines it (and as holterd does). hrv-analysis divides by the number
  of differences by default (pnni_as_percent=True) and by the number of
  intervals with pnni_as_percent=False; both are recorded.
- SDANN5 and SDNNI5: NeuroKit2 cuts the series into windows of 5 minutes
  anchored at the first R peak, puts each interval in the window its ending R
  peak falls in, and uses round(duration / 5 min) windows (a last, partial
  window counts when it is at least 2.5 min long), and none below 3 windows.
  holterd anchors at the first beat too and counts a 5-minute segment when its
  NN intervals cover at least half of it. On this series (4 full windows and a
  last one of about 2.7 min) both take the same 5 windows. hrv-analysis has no
  SDANN or SDNN index.
"""

import json
import math
import os
import platform
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "tests", "fixtures", "hrv")
INTERVALS = os.path.join(DIR, "nn_intervals.txt")
REFERENCE = os.path.join(DIR, "reference.json")
SEED = 17
COUNT = 1600


def generate():
    """The synthetic series. Only random.random() is used: Python guarantees
    its sequence for a seed across versions (gauss() and others it does not)."""
    rng = random.Random(SEED)

    def normal():
        u1, u2 = rng.random(), rng.random()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)

    out, t_ms = [], 0.0
    for k in range(COUNT):
        slow = 60.0 * math.sin(2.0 * math.pi * t_ms / (7.3 * 60_000.0))
        rsa = 35.0 * math.sin(2.0 * math.pi * k / 4.3)
        rr = int(round(850.0 + slow + rsa + 15.0 * normal()))
        out.append(rr)
        t_ms += rr
    return out


def clean(nn):
    """holterd's rules (src/rhythm/hrv.rs): 300-2000 ms, and within 20 % of the
    median of up to 5 neighbours on each side ending within 60 s of it."""
    ends, t = [], 0
    for rr in nn:
        t += rr
        ends.append(t)
    for i, rr in enumerate(nn):
        if not 300 <= rr <= 2000:
            return f"interval {i} ({rr} ms) out of range"
        around = [nn[j] for j in range(max(0, i - 5), min(len(nn), i + 6))
                  if j != i and abs(ends[j] - ends[i]) <= 60_000]
        around.sort()
        m = len(around)
        ref = around[m // 2] if m % 2 else (around[m // 2 - 1] + around[m // 2]) / 2
        if abs(rr - ref) > 0.2 * ref:
            return f"interval {i} ({rr} ms) more than 20 % from its median {ref}"
    return None


def main():
    os.makedirs(DIR, exist_ok=True)
    if "--regenerate" in sys.argv or not os.path.exists(INTERVALS):
        nn = generate()
        with open(INTERVALS, "w") as f:
            f.write(f"# NN intervals (ms), one a line: tests/scripts/hrv-reference.py, seed {SEED}\n")
            f.write("".join(f"{v}\n" for v in nn))
    with open(INTERVALS) as f:
        nn = [int(line) for line in f if line.strip() and not line.startswith("#")]
    problem = clean(nn)
    if problem:
        sys.exit(f"the fixture is not clean: {problem}")
    total_min = sum(nn) / 60_000.0
    windows = round(total_min / 5.0)
    last = total_min - 5.0 * (windows - 1)
    if not (windows >= 4 and abs(last - 2.5) > 0.1 and abs(last - 5.0) > 0.1 and last < 5.0):
        sys.exit(f"{total_min:.2f} min: the last window ({last:.2f} min) is too close to a rule's edge")

    import neurokit2 as nk
    import numpy as np

    t = nk.hrv_time({"RRI": np.array(nn, dtype=float)})
    nk_row = {k.removeprefix("HRV_"): float(t[k].iloc[0]) for k in
              ["HRV_MeanNN", "HRV_SDNN", "HRV_RMSSD", "HRV_pNN50", "HRV_SDANN5", "HRV_SDNNI5"]}
    reference = {
        "generator": "tests/scripts/hrv-reference.py",
        "intervals": len(nn),
        "duration_min": total_min,
        "windows_5min": windows,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "neurokit2": {"version": nk.__version__, **nk_row},
    }
    try:
        import importlib.metadata
        from hrvanalysis import get_time_domain_features

        of_intervals = get_time_domain_features(nn, pnni_as_percent=False)
        of_differences = get_time_domain_features(nn, pnni_as_percent=True)
        reference["hrv-analysis"] = {
            "version": importlib.metadata.version("hrv-analysis"),
            "mean_nni": float(of_intervals["mean_nni"]),
            "sdnn": float(of_intervals["sdnn"]),
            "rmssd": float(of_intervals["rmssd"]),
            "pnni_50_of_intervals": float(of_intervals["pnni_50"]),
            "pnni_50_of_differences": float(of_differences["pnni_50"]),
        }
    except ImportError:
        print("hrv-analysis is not installed: only NeuroKit2's values are written", file=sys.stderr)
    with open(REFERENCE, "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")
    print(json.dumps(reference, indent=2))


if __name__ == "__main__":
    main()
