#!/usr/bin/env python3
"""Cadence statistics of vidrd streams from `vidrd-client stream --timings FILE` files.

    python3 tools/bench/stream_stats.py [--label NAME] [--json] FILE.csv [FILE.csv ...]
    python3 tools/bench/stream_stats.py --summary STATS.json [STATS.json ...]
    python3 tools/bench/stream_stats.py --self-test

One FILE per session. A file is `# start_monotonic_s=S` (CLOCK_MONOTONIC when that client
started, before it connected), the header `frame_number,clip_index,seconds`, then one row per
received frame, `seconds` counted from S.

Per session:
  frames      rows in the file
  frames/s    (frames - 1) / (last frame - first frame): the rate once the stream runs. Frames come
              in bursts of one clip, so with K clips this is about K/(K-1) times the long-run rate;
              compare runs with the same number of clips. A session of one clip has none ("-"):
              its rate would be the speed of one burst.
  TTFF        time to first frame: the first row's seconds (connecting included)
  gap p50/p99/max
              gaps between consecutive frames, percentiles interpolated linearly between the
              nearest ranks (numpy's default); p50 is mostly the spacing inside a clip, p99 and
              max the wait between clips, which is what a viewer sees as a stall
Over all files:
  aggregate frames/s
              all frames / (the last frame of any session - the earliest session start), the
              starts taken from the files' start lines; a file without one is taken to start at
              the same moment as the others
  spread      max / min - 1 of the per-session frames/s, in %

--json writes the same as one JSON object (with --label stored in it); --summary reads such
objects and prints one Markdown table row per object, for BENCHMARKS.md.
"""
import argparse
import json
import math
import os
import sys
import tempfile

START_PREFIX = "# start_monotonic_s="
HEADER = "frame_number,clip_index,seconds"


def read_timings(path):
    """(start or None, [(frame, clip, seconds)]) of one --timings file."""
    start = None
    rows = []
    header_seen = False
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(START_PREFIX):
                start = float(line[len(START_PREFIX):])
                continue
            if line.startswith("#"):
                continue
            if not header_seen:
                if line != HEADER:
                    raise ValueError(f"{path}:{number}: expected the header {HEADER!r}, got {line!r}")
                header_seen = True
                continue
            fields = line.split(",")
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected 3 fields, got {line!r}")
            rows.append((int(fields[0]), int(fields[1]), float(fields[2])))
    if not header_seen:
        raise ValueError(f"{path}: no header line (is it a --timings file?)")
    return start, rows


def percentile(values, p):
    """The p-th percentile of values, linear between the closest ranks; None for no values."""
    if not values:
        return None
    s = sorted(values)
    position = p / 100 * (len(s) - 1)
    low = math.floor(position)
    high = min(low + 1, len(s) - 1)
    return s[low] + (s[high] - s[low]) * (position - low)


def session_stats(name, start, rows):
    times = [r[2] for r in rows]
    gaps = [b - a for a, b in zip(times, times[1:])]
    span = times[-1] - times[0] if times else 0.0
    return {
        "session": name,
        "frames": len(rows),
        "clips": len({r[1] for r in rows}),
        "start_monotonic_s": start,
        "ttff_s": times[0] if times else None,
        "last_frame_s": times[-1] if times else None,
        "span_s": span,
        "frames_per_s": (len(rows) - 1) / span if len({r[1] for r in rows}) >= 2 and span > 0 else None,
        "gap_p50_s": percentile(gaps, 50),
        "gap_p99_s": percentile(gaps, 99),
        "gap_max_s": max(gaps) if gaps else None,
        # Frame numbers that are not 0, 1, 2, ... in arrival order (a lost or repeated frame).
        "out_of_sequence": sum(1 for i, r in enumerate(rows) if r[0] != i),
    }


def analyse(files, label=None):
    sessions = []
    for path in files:
        start, rows = read_timings(path)
        name = os.path.basename(path)
        if name.endswith(".csv"):
            name = name[:-4]
        sessions.append(session_stats(name, start, rows))
    aligned = all(s["start_monotonic_s"] is not None for s in sessions)
    origin = min(s["start_monotonic_s"] for s in sessions) if aligned else 0.0
    ends = [
        (s["start_monotonic_s"] if aligned else 0.0) + s["last_frame_s"] - origin
        for s in sessions if s["last_frame_s"] is not None
    ]
    total = sum(s["frames"] for s in sessions)
    wall = max(ends) if ends else None
    rates = [s["frames_per_s"] for s in sessions if s["frames_per_s"] is not None]
    return {
        "label": label,
        "sessions": sessions,
        "aggregate": {
            "sessions": len(sessions),
            "frames": total,
            "wall_s": wall,
            "frames_per_s": total / wall if wall else None,
            "starts_aligned": aligned,
            "spread_pct": (max(rates) / min(rates) - 1) * 100 if len(rates) >= 2 and min(rates) > 0 else None,
        },
    }


def fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(result, min_span=None, out=sys.stdout):
    if result["label"]:
        print(f"-- {result['label']}", file=out)
    print(f"{'session':<20} {'frames':>6} {'clips':>5} {'frames/s':>8} {'TTFF s':>7} {'gap p50':>8} {'gap p99':>8} {'gap max':>8}",
          file=out)
    for s in result["sessions"]:
        print(f"{s['session']:<20} {s['frames']:>6} {s['clips']:>5} {fmt(s['frames_per_s']):>8} {fmt(s['ttff_s']):>7} "
              f"{fmt(s['gap_p50_s'], 3):>8} {fmt(s['gap_p99_s'], 3):>8} {fmt(s['gap_max_s'], 3):>8}", file=out)
        if min_span is not None and s["span_s"] < min_span:
            print(f"  warning: {s['session']} streamed {s['span_s']:.1f} s from its first to its last frame, under {min_span:g} s",
                  file=out)
        if s["out_of_sequence"]:
            print(f"  warning: {s['out_of_sequence']} frames of {s['session']} are not numbered 0, 1, 2, ... in arrival order",
                  file=out)
    a = result["aggregate"]
    line = (f"aggregate: {a['frames']} frames in {fmt(a['wall_s'])} s (earliest start to last frame) = "
            f"{fmt(a['frames_per_s'])} frames/s")
    if a["spread_pct"] is not None:
        line += f"; per-session frames/s spread {a['spread_pct']:.1f} % (max/min - 1)"
    if not a["starts_aligned"]:
        line += "; some files have no start line, all sessions taken to start together"
    print(line, file=out)


def range_text(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    low, high = min(values), max(values)
    return fmt(low, digits) if fmt(low, digits) == fmt(high, digits) else f"{fmt(low, digits)} – {fmt(high, digits)}"


SUMMARY_HEADER = ("| scenario | sessions | aggregate frames/s | per-session frames/s (min – max) | TTFF s (min – max) | "
                  "gap p50 / p99 / max s (worst session) |\n| --- | --- | --- | --- | --- | --- |")


def summary_row(result):
    sessions = result["sessions"]
    a = result["aggregate"]

    def worst(key):
        values = [s[key] for s in sessions if s[key] is not None]
        return max(values) if values else None

    # p50 in ms resolution: inside a clip's burst the frames are milliseconds apart.
    gaps = " / ".join(fmt(worst(k), d) for k, d in (("gap_p50_s", 3), ("gap_p99_s", 2), ("gap_max_s", 2)))
    return (f"| {result['label'] or '-'} | {len(sessions)} | {fmt(a['frames_per_s'])} | "
            f"{range_text([s['frames_per_s'] for s in sessions])} | {range_text([s['ttff_s'] for s in sessions])} | {gaps} |")


def self_test():
    """Two synthetic sessions whose every statistic is worked out by hand."""
    with tempfile.TemporaryDirectory() as d:
        a = os.path.join(d, "a.csv")
        b = os.path.join(d, "b.csv")
        with open(a, "w") as f:
            # Starts at 100.0; frames at 1.0, 1.5, 2.0, 3.0: gaps 0.5, 0.5, 1.0.
            f.write(f"{START_PREFIX}100.000000\n{HEADER}\n0,0,1.000000\n1,0,1.500000\n2,1,2.000000\n3,1,3.000000\n")
        with open(b, "w") as f:
            # Starts half a second later; frames at 2.0 and 4.0 (absolute 102.5, 104.5); 1 is lost.
            f.write(f"{START_PREFIX}100.500000\n{HEADER}\n0,0,2.000000\n2,1,4.000000\n")
        r = analyse([a, b], label="synthetic")
        sa, sb = r["sessions"]
        agg = r["aggregate"]
        checks = [
            (sa["session"], "a"), (sa["frames"], 4), (sa["clips"], 2), (sa["ttff_s"], 1.0),
            (sa["frames_per_s"], 1.5),  # 3 frames after the first in 2.0 s
            (sa["gap_p50_s"], 0.5),
            (sa["gap_p99_s"], 0.99),    # sorted 0.5, 0.5, 1.0; rank 0.99 * 2 = 1.98: 0.5 + 0.98 * 0.5
            (sa["gap_max_s"], 1.0), (sa["out_of_sequence"], 0), (sa["span_s"], 2.0),
            (sb["frames_per_s"], 0.5), (sb["ttff_s"], 2.0), (sb["gap_p99_s"], 2.0), (sb["out_of_sequence"], 1),
            (agg["frames"], 6),
            (agg["wall_s"], 4.5),       # earliest start 100.0, last frame 104.5
            (agg["frames_per_s"], 6 / 4.5),
            (agg["spread_pct"], 200.0),  # 1.5 / 0.5 - 1
            (agg["starts_aligned"], True),
        ]
        failures = [(i, got, want) for i, (got, want) in enumerate(checks)
                    if not (got == want if isinstance(want, (str, bool)) or want is None else
                            got is not None and abs(got - want) < 1e-9)]
        # Without start lines the sessions are taken to start together: wall = the latest last frame.
        # One clip (a burst) has no frames/s, and no spread is made of the one session left.
        with open(b, "w") as f:
            f.write(f"{HEADER}\n0,0,2.000000\n1,0,4.000000\n")
        unaligned = analyse([a, b])
        if (unaligned["aggregate"]["starts_aligned"] or abs(unaligned["aggregate"]["wall_s"] - 4.0) > 1e-9
                or unaligned["sessions"][1]["frames_per_s"] is not None or unaligned["aggregate"]["spread_pct"] is not None):
            failures.append(("unaligned, one clip", unaligned, "wall 4.0, no frames/s for b, no spread"))
        row = summary_row(r)
        want_row = "| synthetic | 2 | 1.33 | 0.50 – 1.50 | 1.00 – 2.00 | 2.000 / 2.00 / 2.00 |"
        if row != want_row:
            failures.append(("row", row, want_row))
        if percentile([], 50) is not None or percentile([3.0], 99) != 3.0 or percentile([1, 2, 3, 4, 5], 50) != 3:
            failures.append(("percentile", None, None))
        with open(b, "w") as f:
            f.write("a,b,c\n1,2,3\n")
        try:
            read_timings(b)
            failures.append(("bad header accepted", None, None))
        except ValueError:
            pass
    if failures:
        for f in failures:
            print("self-test FAILED:", f)
        return 1
    print("self-test passed")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="*", help="--timings CSV files, one per session (or --json outputs with --summary)")
    p.add_argument("--label", help="scenario name, printed and stored in --json")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--summary", action="store_true", help="FILES are --json outputs: print a Markdown table, one row each")
    p.add_argument("--min-span", type=float, metavar="S",
                   help="warn about sessions with less than S seconds from their first to their last frame")
    p.add_argument("--self-test", action="store_true", help="check the statistics on synthetic data")
    args = p.parse_args()
    if args.self_test:
        return self_test()
    if not args.files:
        p.error("no files")
    try:
        if args.summary:
            print(SUMMARY_HEADER)
            for path in args.files:
                with open(path) as f:
                    print(summary_row(json.load(f)))
            return 0
        result = analyse(args.files, args.label)
    except (OSError, ValueError) as e:
        print(f"stream_stats.py: {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print_table(result, args.min_span)
    return 0


if __name__ == "__main__":
    sys.exit(main())
