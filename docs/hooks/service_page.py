"""The HTTP, MQTT and exit-code references.

The metrics are collected from the real collector (``stages.serve.metrics``)
over a sample source; the ``/healthz`` body is the real ``health`` of one;
the states, limits, QoS and exit codes are the code's constants.
"""

from __future__ import annotations

import json
import signal


def http_page() -> str:
    """The Markdown of ``reference/http.md``."""
    from stages.serve.status import MAX_CONNECTIONS

    return "\n".join([
        "# HTTP endpoints and MQTT topics\n",
        "Made from the server's code when the site is built. `--http [HOST:]PORT` serves the "
        "status endpoints (live runs); `--preview [HOST:]PORT` serves the preview page and the "
        "same status endpoints. Both listen on 127.0.0.1 unless a host is given, answer GET "
        f"and HEAD, take at most {MAX_CONNECTIONS} connections at once (more get `429 Too Many "
        "Requests` with `Retry-After`), and answer only requests whose `Host` is one of their "
        "own names (`421` otherwise). `503` always means the sources are unhealthy.\n",
        endpoints_table(), healthz_section(), metrics_section(), mqtt_section()])


def endpoints_table() -> str:
    """Every route, by server."""
    from stages.publish.monitor import STATES
    from stages.serve.preview import MAX_VIEWERS
    from stages.serve.status import MAX_EVENT_CLIENTS

    rows = [
        ("/", "`--http`", "an index of the endpoints: HTML for a browser, JSON for "
         "`Accept: application/json`, plain text otherwise"),
        ("/healthz", "both", "200 while every source not given up delivered a processed frame "
         "within its `--stall-timeout`, else 503; JSON body ([below](#healthz)); `200 ok` for "
         "a file run's `--preview`"),
        ("/metrics", "both, live runs", "the Prometheus text format ([below](#metrics))"),
        ("/events", "both, live runs", "Server-Sent Events, one `data:` line per processed "
         "frame (the [JSON Lines record](outputs.md#json-lines) with `source`), "
         "`id: SOURCE:N` numbering the source's records; a `: keep-alive` comment after 15 s "
         f"without one; at most {MAX_EVENT_CLIENTS} streams"),
        ("/events?source=NAME", "both, live runs", "the events of one source"),
        ("/", "`--preview`", "the preview page; `?kiosk=1`, `?overlay=` `tl`, `tr`, `bl`, `br` "
         "or `off`, `?source=NAME`, `?img=1` "
         "([Demo booths](../guides/booths.md#the-browser-page))"),
        ("/stream.mjpg", "`--preview`", "the annotated stream as MJPEG; each part has "
         "`X-Frame-Index` and, for live sources, `X-Capture-Time` (Unix seconds); "
         f"`?source=NAME`; at most {MAX_VIEWERS} viewers"),
        ("/stats.json", "`--preview`", "`{\"sources\": [{\"source\", \"fps\", \"people\", "
         "\"published\", \"dropped\", \"viewers\", \"sent_latency_ms\"}], \"viewers\", "
         "\"clock\": \"capture\" or \"decode\", \"time\"}`"),
    ]
    table = "\n".join(f"| `{path}` | {server} | {text} |" for path, server, text in rows)
    return ("## Endpoints\n\n| path | served by | what |\n|---|---|---|\n" + table
            + f"\n\nSource states: {', '.join(f'`{s}`' for s in STATES)}.\n")


def healthz_section() -> str:
    """A ``/healthz`` body made by the server's own ``health``."""
    from stages.publish.monitor import SourceMonitor
    from stages.serve.status import health

    ok, body = health({"cam1": SourceMonitor("cam1", clock=lambda: 0.0)})
    return ("## /healthz {#healthz}\n\nThe body is JSON either way; a failing source has "
            "`reason` (and `last_error` once it failed, credentials masked); with `--mqtt` the "
            "body also has `mqtt` (`state`, `ok`, `unacknowledged`, `dropped`, "
            "`seconds_without_answer`, `reason`), which never changes the code. A source "
            "just started:\n\n```json\n" + json.dumps(body) + "\n```\n")


def metrics_section() -> str:
    """Every series of ``/metrics``, collected from a sample run's figures."""
    from stages.publish.monitor import LATENCY_BUCKETS, SourceMonitor
    from stages.serve.metrics import LiveCollector

    monitor = SourceMonitor("cam1", clock=lambda: 0.0)
    mqtt = {"broker": "mqtt://127.0.0.1/site", "state": "connected", "unacknowledged": 0,
            "dropped": 0, "seconds_without_answer": None}
    snapshot = {"sources": [monitor.row()], "stages": [{"stage": "infer", "busy_seconds": 0.0,
                                                       "items": 0}], "mqtt": mqtt}
    collector = LiveCollector({"cam1": monitor}, lambda: snapshot, lambda: (0, 0))
    rows = []
    for metric in collector.collect():
        name = metric.name + ("_total" if metric.type == "counter" else "")
        labels = sorted({k for s in metric.samples for k in s.labels if k != "le"})
        if metric.name.endswith("seconds_since_last_frame"):
            labels = ["source"]  # absent until a source has a frame
        rows.append(f"| `{name}` | {metric.type} | {', '.join(f'`{l}`' for l in labels)} | "
                    f"{metric.documentation} |")
    buckets = " ".join(f"{b:g}" for b in LATENCY_BUCKETS)
    return ("## /metrics {#metrics}\n\nThe Prometheus text format, read at each scrape. Labels "
            "are source and stage names, never URLs. `posestream_mqtt_*` only with `--mqtt`. "
            f"Latency buckets (seconds): {buckets}.\n\n| metric | type | labels | what |\n"
            "|---|---|---|---|\n" + "\n".join(rows)
            + "\n\nFor example `rate(posestream_frames_total[1m])`, or "
            "`histogram_quantile(0.95, rate(posestream_latency_seconds_bucket[5m]))`; "
            "alert rules are in [Monitoring](../guides/monitoring.md#alert-rules).\n")


def mqtt_section() -> str:
    """The topics of ``--mqtt``."""
    from stages.publish import mqtt

    states = ", ".join(f"`{s}`" for s in mqtt.STATES)
    return ("## MQTT topics {#mqtt}\n\n`--mqtt mqtt://[USER:PASS@]HOST[:PORT]/PREFIX` "
            "(`mqtts://` for TLS; ports 1883 and 8883 by default) publishes, per source:\n\n"
            "| topic | payload | QoS | retained |\n|---|---|---|---|\n"
            f"| `PREFIX/<source>/pose` | the [JSON Lines record](outputs.md#json-lines) with "
            f"`source`, one message per processed frame | {mqtt.QOS} | no |\n"
            f"| `PREFIX/<source>/state` | the source's [summary row](outputs.md#sources), at "
            f"every change of state and every (re)connection to the broker | {mqtt.QOS} | yes |"
            f"\n\nAt most {mqtt.MQTT_QUEUE} messages wait for the broker; past that new records "
            "are dropped and counted. Reconnects wait "
            f"{mqtt.RECONNECT_DELAY[0]} s, doubling to {mqtt.RECONNECT_DELAY[1]} s. Broker "
            f"connection states: {states}.\n")


def exit_codes_page() -> str:
    """The Markdown of ``reference/exit-codes.md``."""
    import run_stream
    from stages.display.stdout import STATUS_PIPE_CLOSED

    signals = [(128 + s, f"stopped by {s.name}" + note) for s, note in (
        (signal.SIGINT, " (Ctrl-C); what was done is kept"),
        (signal.SIGTERM, " (`kill`, `systemctl stop`); a service counts it as a clean stop"),
        (signal.SIGHUP, " (the terminal or ssh session closed)"))]
    rows = [(run_stream.EXIT_OK, "done; also when `q`, `Esc` or closing the `--show` window "
             "ended the run"),
            (run_stream.EXIT_ERROR, "an error, in one line on stderr: a bad input or value, a "
             "model that does not load, a batch with a failed input, a `--config` file that "
             "is not valid, a stdout that failed other than by closing (`> /dev/full`)"),
            (run_stream.EXIT_USAGE, "a usage error: an unknown option, or one that means "
             "nothing in this mode ([Options by mode](options.md#options-by-mode)); systemd "
             "does not restart the service after it"),
            *signals,
            (STATUS_PIPE_CLOSED, "stdout was closed by its reader (`posestream DIR` piped into "
             "`head -1`): the printing stopped, the files are all written")]
    table = "\n".join(f"| {code} | {text} |" for code, text in sorted(rows))
    return ("# Exit codes\n\nMade from the program's constants when the site is built. A run "
            "that failed or was stopped keeps its own code whatever happened to stdout; a stop "
            "signal N gives 128 + N whatever the moment.\n\n| code | meaning |\n|---|---|\n"
            + table + "\n")
