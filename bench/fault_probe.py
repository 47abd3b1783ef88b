"""The third fault probe (issue 21), end to end: one line per item.

Each item of the probe is checked by the regression tests written for it,
which drive the real program where users meet the fault: the command line
as a child process (closed pipes, a copy of /dev/full, FIFOs, SIGHUP,
SIGKILL mid-write), real RTSP/HTTP servers and an MQTT broker on 127.0.0.1,
a small tmpfs filled up, damaged cache files. This script runs them item by
item (slow ones included) and prints one line per item::

    .venv/bin/python bench/fault_probe.py            # every item
    .venv/bin/python bench/fault_probe.py 1 3 22     # some

Exit status 0 only if every item asked for passed. An item with no
selection yet prints ``todo``; one whose tests are all skipped (no tmpfs,
no Xvfb here) prints ``skipped`` with pytest's reason count.
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import re
import subprocess
import sys
import time

from _setup import ROOT

# item -> (what the fault was, the pytest selections that check it)
ITEMS: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("a named path (FIFO, device, symlink) is written in place, not replaced",
        ("tests/program/test_named_outputs.py", "tests/stages/outputs/test_target.py")),
    2: ("one writer per live source folder; file/batch runs into one folder both finish",
        ("tests/stages/recording/test_folder_lock.py", "tests/program/test_concurrent_runs.py")),
    3: ("a closed or full stdout loses no record",
        ("tests/program/test_broken_stdout.py",)),
    4: ("a damaged compiled model is rebuilt, never used",
        ("tests/models/test_model_cache.py::test_a_damaged_compiled_blob_is_made_again_with_one_warning_never_used",
         "tests/models/test_model_cache.py::test_a_blob_no_record_vouches_for_is_removed_before_the_engine_reads_it",
         "tests/models/test_model_cache.py::test_the_openvino_backend_never_runs_a_damaged_blob",
         "tests/models/test_model_cache.py::test_a_blob_overwritten_in_the_middle_is_compiled_again_not_run")),
    5: ("no password in any message, whatever is wrong with the URL",
        ("tests/program/test_cli_secrets.py",
         "tests/stages/sources/test_credentials.py::test_mask_url_masks_the_user_info_whatever_is_wrong_with_the_url",
         "tests/stages/sources/test_credentials.py::test_mask_credentials_finds_such_urls_inside_messages_and_log_records",
         "tests/stages/sources/test_spec.py::test_a_refused_url_never_shows_its_user_info",
         "tests/stages/sources/test_spec.py::test_a_quote_in_the_password_is_masked_too")),
    6: ("trickling HTTP clients do not hold /healthz; overload answers apart",
        ("tests/stages/serve/test_server.py::test_trickling_clients_get_408_at_the_request_deadline_and_healthz_comes_back",
         "tests/stages/serve/test_server.py::test_a_full_server_answers_429_with_a_reason_never_the_503_of_unhealthy")),
    7: ("a live run outlives a full disk and records again when space returns",
        ("tests/stages/recording/test_pause.py",
         "tests/stages/publish/test_monitor.py::test_recording_is_healthy_again_only_when_every_stopped_part_resumed")),
    8: ("a SIGKILLed live run loses about a second of video",
        ("tests/stages/outputs/test_video.py::test_an_unfinished_mkv_is_readable_to_about_a_second_before_its_end",
         "tests/stages/recording/test_segments.py::test_a_sigkilled_live_run_keeps_its_video_up_to_about_a_second_before_the_log_ends")),
    9: ("SIGHUP is treated as SIGTERM",
        ("tests/pipeline/test_signals.py::test_sighup_stops_the_run_as_sigterm_does", "tests/pipeline/test_signals.py::test_under_nohup_sighup_stays_ignored",
         "tests/pipeline/test_signals.py::test_a_forked_child_gets_the_default_sighup_back",
         "tests/program/test_run_stream.py::test_sighup_stops_a_file_run_as_sigterm_does",
         "tests/program/test_run_stream.py::test_sighup_stops_a_live_run_and_leaves_no_partial")),
    10: ("a signal at the end of a batch: records finished, one exit rule",
         ("tests/program/test_run_stream.py::test_sigint_while_a_file_run_commits_its_outputs_exits_130_with_them_complete",
          "tests/program/test_run_stream.py::test_sigint_after_a_batchs_last_frame_finishes_its_records_and_exits_130",
          "tests/program/test_run_stream.py::test_sigint_before_a_batchs_last_frame_says_the_dataset_was_not_written")),
    11: ("a signal during model load: stops within 2 s, creates nothing",
         ("tests/pipeline/test_runner.py::test_a_cancel_does_not_wait_for_a_worker_still_loading_its_model",
          "tests/pipeline/test_signals.py::test_the_stop_lines_reach_the_stderr_the_run_began_with",
          "tests/program/test_run_stream.py::test_a_stop_while_the_model_loads_is_prompt_says_so_and_leaves_nothing")),
    12: ("a silent MQTT broker is warned about within seconds",
         ("tests/stages/publish/test_mqtt.py::test_a_broker_that_never_answers_is_warned_about_once_and_shows_in_the_status",
          "tests/stages/publish/test_mqtt.py::test_a_silent_broker_shows_in_the_dashboard_healthz_and_metrics",
          "tests/stages/publish/test_mqtt.py::test_an_answering_broker_is_connected_and_never_said_silent")),
    13: ("retention never leaves OUTDIR nor deletes what it did not write",
         ("tests/stages/recording/test_retention.py::test_a_symlinked_source_folder_is_never_followed",
          "tests/stages/recording/test_retention.py::test_a_symlinked_segment_file_is_neither_deleted_nor_followed")),
    14: ("one --max-disk for a folder two runs share",
         ("tests/stages/recording/test_retention.py::test_the_cap_counts_every_live_source_folder_of_the_output_folder",
          "tests/stages/recording/test_retention.py::test_two_runs_sharing_an_output_folder_hold_one_cap_together",
          "tests/stages/recording/test_retention.py::test_retain_ages_only_the_runs_own_sources")),
    15: ("a codec change mid-stream starts a new segment and keeps decoding",
         ("tests/stages/sources/test_codec_follow.py",)),
    16: ("the best of several video streams, logged; --video-stream picks another",
         ("tests/stages/sources/test_video_streams.py",)),
    17: ("temporary names fit where the final name fits",
         ("tests/stages/outputs/test_atomic.py",)),
    18: ("a UTF-8 BOM starts no entry of --list, --sources or --config",
         ("tests/program/test_text_files.py",
          "tests/stages/sources/test_inputs.py::test_a_list_file_that_starts_with_a_bom_gives_its_first_entry")),
    19: ("HOME='' means unset; a re-fetch of the model says why",
         ("tests/models/test_fetch.py::test_an_empty_variable_counts_as_unset",
          "tests/models/test_fetch.py::test_an_empty_home_does_not_put_the_cache_at_the_root",
          "tests/models/test_fetch.py::test_a_relative_xdg_cache_home_is_ignored",
          "tests/models/test_fetch.py::test_a_damaged_cached_graph_is_fetched_again_with_one_warning")),
    20: ("Python API misuse is one clear UsageError",
         ("tests/stages/test_api.py::test_misuse_is_one_usage_error_at_the_call_before_any_thread",
          "tests/stages/test_api.py::test_natural_forms_of_the_settings_are_accepted",
          "tests/stages/test_api.py::test_a_setting_of_the_wrong_type_is_one_usage_error")),
    21: ("a bad --mqtt URL names the option and the masked URL",
         ("tests/stages/publish/test_mqtt.py::test_every_bad_url_names_the_option_and_shows_the_masked_url",
          "tests/stages/serve/test_server.py::test_a_bad_bind_address_names_the_option_and_masks_the_url")),
    22: ("a camera dropped mid-frame leaves no undecodable packet in a raw segment",
         ("tests/stages/recording/test_raw.py::test_a_frame_cut_by_the_camera_dropping_is_copied_only_if_it_holds_a_picture",
          "tests/stages/recording/test_raw.py::test_raw_segments_hold_every_frame_the_camera_sent_in_its_own_bytes")),
    23: ("the test command installs only what is missing (apt --no-upgrade)",
         ("tests/program/test_install_scripts.py",)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", nargs="*", type=int, help="item numbers (default: all)")
    args = parser.parse_args(argv)
    wanted = args.items or sorted(ITEMS)
    unknown = [n for n in wanted if n not in ITEMS]
    if unknown:
        parser.error(f"no item {', '.join(map(str, unknown))}; items are 1 to {max(ITEMS)}")
    cpu = subprocess.run(["sh", "-c", "grep -o -w -E 'avx2|avx512[a-z_0-9]*|amx[a-z_0-9]*' "
                          "/proc/cpuinfo | sort -u | tr '\\n' ' '"], capture_output=True,
                         text=True).stdout.strip()
    print(f"fault probe (issue 21): {len(wanted)} items; CPU flags: {cpu or 'none listed'}")
    failed = 0
    for number in wanted:
        title, selections = ITEMS[number]
        verdict, detail, seconds = _probe(selections)
        failed += verdict == "FAIL" or verdict == "todo"
        print(f"item {number:>2}  {verdict:<7} {detail:<28} {seconds:6.1f} s  {title}", flush=True)
    return 1 if failed else 0


def _probe(selections: tuple[str, ...]) -> tuple[str, str, float]:
    """(verdict, pytest's counts, seconds) for one item's tests."""
    if not selections:
        return "todo", "no test yet", 0.0
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "", "-o", "addopts=", *selections], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.monotonic() - start
    counts = _counts(done.stdout)
    if done.returncode == 0 and counts.get("passed"):
        return "PASS", _said(counts), seconds
    if done.returncode == 0:
        return "skipped", _said(counts), seconds
    return "FAIL", _said(counts) or f"pytest exit {done.returncode}", seconds


def _counts(output: str) -> dict[str, int]:
    last = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|"
                                                    r"deselected)", last[-1])} if last else {}


def _said(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {word}" for word, n in counts.items() if word != "deselected")


if __name__ == "__main__":
    sys.exit(main())
