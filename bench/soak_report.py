"""The operators' soak report: what every consumer got against what was logged, and the checks.

Checks (the issue's acceptance): RSS grows under 5% after the first minute;
the segments stay under ``--max-disk`` and old ones were deleted; ``tail -F``
and ``/events`` got every logged record exactly once; MQTT got every record
except those of the broker's outage (captured from ``--outage-margin``
seconds before it died to as long after it came back); each camera reconnected after each of its kills; posestream exited
with 143 within 30 s of SIGTERM; no password in any output, log or metric.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

LATENCY = "posestream_latency_seconds"
FRAMES = "posestream_frames"
RSS_GROWTH_LIMIT = 5.0  # percent, after the first minute


def histogram_buckets(text: str) -> tuple[dict[float, float], int | None]:
    """The latency histogram's cumulative buckets over every source, and frames in all.

    Raises:
        ValueError: ``text`` has no ``posestream_latency_seconds`` histogram.
    """
    buckets: Counter = Counter()
    frames, found = None, False
    for family in text_string_to_metric_families(text):
        if family.name == LATENCY and family.type == "histogram":
            found = True
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] += sample.value
        elif family.name == FRAMES:
            frames = int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    if not found:
        raise ValueError(f"no {LATENCY} histogram in /metrics")
    return dict(buckets), frames


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile of cumulative ``buckets`` (Prometheus' histogram_quantile)."""
    if not buckets or buckets.get(math.inf, 0) <= 0:
        return None
    rank = q * buckets[math.inf]
    low, below = 0.0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return low
            share = (rank - below) / (count - below) if count > below else 1.0
            return low + (bound - low) * share
        low, below = bound, count
    return low


def print_report(run, args) -> int:
    """Print the report; return 0 if every check passed, else 1."""
    checks: list[tuple[str, bool, str]] = []
    print(f"\n=== operators' soak: {args.minutes:g} min, {len(run.cameras)} cameras "
          f"{args.size}, --record raw, --segment {args.segment:g}, --max-disk {run.cap} ===")
    _rss(run, checks)
    _latency(run)
    _disk(run, checks)
    _records(run, args, checks)
    _reconnects(run, checks)
    _exit(run, checks)
    _secrets(run, checks)
    for error in run.errors:
        print(f"error: {error}")
    for error in run.consumers["sse"].errors if "sse" in run.consumers else []:
        print(f"SSE client: {error}")
    print("\nchecks:")
    for name, ok, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    failed = [name for name, ok, _ in checks if not ok] + (["errors"] if run.errors else [])
    print(f"RESULT: {'PASS' if not failed else 'FAIL (' + ', '.join(failed) + ')'}")
    if failed:
        print(f"posestream's log: {run.work / 'posestream.log'}" + ("" if args.keep else
              " (gone with the temporary folder: rerun with --keep DIR)"))
    return 1 if failed else 0


def _rss(run, checks) -> None:
    if not run.samples:
        checks.append(("RSS", False, "no sample taken"))
        return
    start = next((s for s in run.samples if s["t"] >= 60), run.samples[0])
    end = run.samples[-1]
    growth = 100 * (end["rss"] - start["rss"]) / start["rss"] if start["rss"] else math.inf
    print(f"RSS: {start['rss']:.0f} MiB at {start['t']:.0f} s, {end['rss']:.0f} MiB at "
          f"{end['t']:.0f} s: {growth:+.1f}%  (peak {max(s['rss'] for s in run.samples):.0f} MiB)")
    checks.append(("RSS growth after the first minute", growth < RSS_GROWTH_LIMIT,
                   f"{growth:+.1f}% (limit {RSS_GROWTH_LIMIT:g}%)"))


def _latency(run) -> None:
    buckets = run.samples[-1]["buckets"] if run.samples else {}
    p50, p95 = quantile(buckets, 0.5), quantile(buckets, 0.95)
    if p50 is not None:
        print(f"latency, capture to written (/metrics histogram, whole run): "
              f"p50 {1000 * p50:.0f} ms, p95 {1000 * p95:.0f} ms")
    for row in (run.summary or {}).get("sources", []):
        print(f"  {row['source']}: p50 {row['latency_p50_ms']:.0f} ms, p95 "
              f"{row['latency_p95_ms']:.0f} ms (summary: its last frames)")
    keys, arrivals = run.consumers["sse"].received.snapshot()
    delays = sorted(arrivals[k] - k[3] for k in keys if isinstance(k[3], (int, float)))
    if len(delays) > 1:
        q = statistics.quantiles(delays, n=20)
        print(f"latency, capture to received by the SSE client: p50 "
              f"{1000 * statistics.median(delays):.0f} ms, p95 {1000 * q[18]:.0f} ms")


def _disk(run, checks) -> None:
    keeper = run.keeper
    finished = len(keeper.seen)
    deleted = finished - keeper.segments_present()
    print(f"disk: everything under OUT at most {keeper.max_total / 2**20:.2f} MiB against "
          f"--max-disk {run.cap / 2**20:.2f} MiB (segments alone, open ones included, at most "
          f"{keeper.max_segments / 2**20:.2f} MiB); {finished} finished segment files, "
          f"{deleted} deleted by retention")
    if keeper.over:
        print(f"  over the cap at {len(keeper.over)} of {keeper.polls} polls "
              f"({100 * len(keeper.over) / keeper.polls:.0f}%), by {max(keeper.over) / 2**10:.0f} KiB "
              f"at most, {statistics.median(keeper.over) / 2**10:.0f} KiB typically")
    recording = (run.summary or {}).get("recording")
    if recording:
        print(f"posestream's own account: {recording.get('used')} bytes used at the end, "
              f"{recording.get('deleted')} segments deleted, {recording.get('freed')} bytes "
              f"freed; raw packets recorded per camera {recording.get('raw_packets')}")
    checks.append(("disk cap", keeper.max_total <= run.cap,
                   f"max {keeper.max_total} <= {run.cap} bytes (polled every {keeper.interval:g} s)"))
    checks.append(("retention rolled over", deleted > 0, f"{deleted} segment files deleted"))


def _records(run, args, checks) -> None:
    logged = run.keeper.logged()
    if run.keeper.missed:
        run.errors.append(f"{run.keeper.missed} segment logs were deleted before the bench "
                          "could link them: logged counts are short")
    tails = run.consumers["tail"].values()
    sse, mqtt = run.consumers["sse"], run.consumers["mqtt"]
    got = {"tail -F": set().union(*(t.received.keys for t in tails)),
           "SSE": sse.received.keys, "MQTT": mqtt.received.keys}
    dupes = {"tail -F": sum(t.received.duplicates for t in tails),
             "SSE": sse.received.duplicates, "MQTT": mqtt.received.duplicates}
    frames = {row["source"]: row["frames"] for row in (run.summary or {}).get("sources", [])}
    print("\nrecords   logged  summary   tail -F      SSE     MQTT")
    for name in [*run.cameras, None]:
        count = lambda keys: sum(1 for k in keys if name is None or k[0] == name)  # noqa: E731
        summary = frames.get(name, "-") if name else (sum(frames.values()) if frames else "-")
        print(f"{name or 'all':8s} {count(logged):7d} {summary!s:>8} "
              + " ".join(f"{count(keys):8d}" for keys in got.values()))
    if frames:
        checks.append(("records logged = frames the summary counts",
                       len(logged) == sum(frames.values()), f"{len(logged)} vs {sum(frames.values())}"))
    checks.append(("records logged", len(logged) > 0, f"{len(logged)}"))
    excused = {"tail -F": {}, "SSE": _before(logged - got["SSE"], sse.connected_at, "SSE client connected",
                              run.started),
               "MQTT": _mqtt_excused(run, args, logged - got["MQTT"])}
    for consumer, keys in got.items():
        missing = logged - keys
        for why, some in excused[consumer].items():
            if some:
                print(f"{consumer}: {len(some)} records not received, {why} (allowed)")
            missing -= some
        if missing:
            print(f"{consumer} missed {len(missing)}: {_when(missing, logged, run.started)}")
        checks.append((f"{consumer} = logged" + (" while the broker was up" if consumer == "MQTT"
                       else ""), not missing and not keys - logged and not dupes[consumer],
                       f"missing {len(missing)}, not logged {len(keys - logged)}, "
                       f"duplicates {dupes[consumer]}"))
    print(f"SSE connections: {sse.connections}; MQTT (re)connections: {len(mqtt.connects)}")
    checks.append(("SSE stayed connected", sse.connections == 1, f"{sse.connections} connection(s)"))


def _before(missing: set, connected: list[float], what: str, started: float) -> dict[str, set]:
    """The missing records captured before the consumer's first connection."""
    if not connected:
        return {}
    return {f"captured before the {what} ({connected[0] - started:.1f} s)":
            {k for k in missing if k[3] < connected[0]}}


def _when(missing: set, logged: set, started: float) -> str:
    """When the missed records were captured, against the run's first and last record."""
    walls = sorted(k[3] for k in missing if isinstance(k[3], (int, float)))
    every = sorted(k[3] for k in logged if isinstance(k[3], (int, float)))
    if not walls or not every:
        return "capture times unknown"
    per_source = Counter(k[0] for k in missing)
    return (f"captured {walls[0] - started:.1f}-{walls[-1] - started:.1f} s after the start "
            f"(records logged from {every[0] - started:.1f} to {every[-1] - started:.1f} s); "
            f"per source {dict(per_source)}")


def _mqtt_excused(run, args, missing: set) -> dict[str, set]:
    """The missing records of before the first subscription and of the broker's outage:
    captured from ``--outage-margin`` s before it died (in flight then) to as long
    after it came back (the publisher's and the subscriber's reconnect)."""
    excused = _before(missing, run.consumers["mqtt"].connects, "subscriber connected",
                      run.started)
    kills = [t for t, what, name in run.chaos if name == "broker" and what == "kill"]
    starts = [t for t, what, name in run.chaos if name == "broker" and what == "start"]
    if not kills:
        return excused
    down, up = kills[0], starts[0] if starts else math.inf
    margin = args.outage_margin
    logged_down = {k for k in run.keeper.logged() if down <= k[3] <= up}
    print(f"broker down {down - run.started:.0f}-{up - run.started:.0f} s: {len(logged_down)} "
          f"records logged meanwhile, {len(logged_down - missing)} of them reached the subscriber")
    excused[f"captured in the broker's outage ({margin:g} s before it died to {margin:g} s "
            "after it came back)"] = {k for k in missing if down - margin <= k[3] <= up + margin}
    return excused


def _reconnects(run, checks) -> None:
    kills = Counter(name for _, what, name in run.chaos if what == "kill" and name != "broker")
    rows = {row["source"]: row for row in (run.summary or {}).get("sources", [])}
    print("\ncamera  kills  reconnect attempts  reconnects  state at the end")
    for name in run.cameras:
        row = rows.get(name, {})
        print(f"{name:7s} {kills[name]:5d} {row.get('reconnect_attempts', '-')!s:>19} "
              f"{row.get('reconnects', '-')!s:>11}  {row.get('state', '-')}")
    short = [n for n in run.cameras if rows.get(n, {}).get("reconnects", -1) < kills[n]]
    checks.append(("every killed camera came back", not short and bool(rows),
                   f"short: {', '.join(short) or 'none'}"))
    codes = Counter(str(s["healthz"]) for s in run.samples)
    print(f"/healthz answers over the samples: {dict(codes)}")


def _exit(run, checks) -> None:
    took = f" after {run.stop_seconds:.1f} s" if run.stop_seconds is not None else ""
    checks.append(("exit on SIGTERM", run.exit_code == 143, f"exit code {run.exit_code}{took}"))


def _secrets(run, checks) -> None:
    from soak_operators import BROKER_PASSWORD, CAMERA_PASSWORD

    secrets = (CAMERA_PASSWORD.encode(), BROKER_PASSWORD.encode())
    places = [p for folder in (run.out, run.work / "kept") if folder.exists()
              for p in folder.rglob("*") if p.is_file()]
    places += [run.work / "posestream.log", run.work / "summary.json"]
    leaks = [str(p.relative_to(run.work)) for p in places
             if p.exists() and any(s in p.read_bytes() for s in secrets)]
    if any(s.decode() in run.metrics_text for s in secrets):
        leaks.append("/metrics")
    checks.append(("no password in outputs, log, summary or /metrics", not leaks,
                   ", ".join(leaks) or "none found"))
