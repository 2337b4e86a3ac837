"""``make bench``: the measured performance of every operation beside its floor, in one run, as one table.

Every floor is measured in the same run on the same machine (see each section's module for what it is):

1. requests   DynamoDB requests per operation (bench.request_counts)
2. latency    handler p50/p99 in process on DynamoDB Local vs the same requests sent bare (bench.latency)
3. cold_start import + first client in a fresh interpreter vs bare boto3 + client (bench.cold_start)
4. load       N listeners joining one session through the local gateway; the cap under 1.1 N joins (bench.load)
5. synth      make synth ENV=prod vs a minimal one-table CDK app (bench.synth)
6. footprint  code asset and layer sizes; each handler's peak memory vs its MemorySize; the local run's
              memory during the load (bench.footprint)
7. contention simultaneous joins of one session with DynamoDB's transaction-conflict rule emulated, and
              without; joins offered at 1,000/s into a session with seat shards beside one shard, and the rule
              simulated at that rate (bench.contention)
8. transcription the partial-result processor per recognizer result vs a no-op consumer; the local
              recognizer's real-time factor (bench.transcription)
9. live_path  from the speaker's chunk to each listener's caption through the local run, the recognizer scripted
              (~0 cost), with 1, 50 and 500 listeners vs the chunk's own sendAudio reply; DynamoDB requests and
              posts per caption (bench.live_path); then to each listener's translatedAudio with 1 and 50
              listeners vs the same segments' caption, the synthesis timed apart, and the synthesis calls and
              posts per segment with 500 listeners (bench.speech_path)
10. fanout    one caption to thousands of listeners of one session through the fan-out per shard: as many
              real listeners as the machine holds (2,000) through the local gateway vs the same run's one
              listener; a simulated 10,000 (the fan-out's own code, posts with a stated latency model) vs the
              same model's ideal (bench.fanout)

Figures are reports, not assertions: the exit status is non-zero only when a correctness check fails (the
final listener count, or the number admitted under the cap, is not exact) or a section could not run.

    .venv/bin/python -m bench [--only load,latency] [--output FILE]   (--only writes bench/results-partial.json)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Context, Row

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
PARTIAL_OUTPUT = Path(__file__).resolve().parent / "results-partial.json"  # --only runs: the full record stays
SECTION_NAMES = (
    "requests",
    "latency",
    "cold_start",
    "load",
    "synth",
    "footprint",
    "contention",
    "transcription",
    "live_path",
    "fanout",
)
ALIASES = {
    "coldstart": "cold_start",
    "cold-start": "cold_start",
    "request_counts": "requests",
    "memory": "footprint",
    "size": "footprint",
    "e2e": "live_path",
    "fan_out": "fanout",
}


def _requests(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import request_counts

    return request_counts.table_rows(context.database())


def _latency(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import latency

    return latency.measure(context.database(), iterations=args.iterations, warmup=args.warmup)


def _cold_start(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import cold_start

    return cold_start.measure(runs=args.cold_runs)


def _load(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import load

    return load.measure(context, listeners=args.listeners)


def _synth(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import synth

    return synth.measure(context)


def _footprint(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import footprint

    return footprint.measure(context)


def _contention(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import contention

    rows = contention.measure(context.database(), context.failures)
    return rows + contention.measure_sharded(context.database(), context.failures)


def _transcription(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import transcription

    return transcription.measure()


def _live_path(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import live_path, speech_path

    return live_path.measure(context, later=speech_path)  # the spoken translation's phases in the same local run


def _fanout(context: Context, args: argparse.Namespace) -> list[Row]:
    from bench import fanout

    return fanout.measure(context)


SECTIONS: dict[str, Callable[[Context, argparse.Namespace], list[Row]]] = {
    "requests": _requests,
    "latency": _latency,
    "cold_start": _cold_start,
    "load": _load,
    "synth": _synth,
    "footprint": _footprint,
    "contention": _contention,
    "transcription": _transcription,
    "live_path": _live_path,
    "fanout": _fanout,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="", help=f"comma-separated sections, run in the usual order: {', '.join(SECTION_NAMES)}"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"JSON results (default {DEFAULT_OUTPUT.name}, or {PARTIAL_OUTPUT.name} with --only)",
    )
    parser.add_argument("--iterations", type=int, default=200, help="latency: timed calls per operation (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="latency: untimed calls first (default 20)")
    parser.add_argument(
        "--cold-runs", type=int, default=15, help="cold start: timed runs per module (default 15, >= 7)"
    )
    parser.add_argument("--listeners", type=int, default=500, help="load: listeners and cap (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (cloud assemblies, logs)")
    args = parser.parse_args(argv)
    chosen = [
        ALIASES.get(name.strip().lower().replace("-", "_"), name.strip().lower().replace("-", "_"))
        for name in args.only.split(",")
        if name.strip()
    ]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTION_NAMES)}")
    args.sections = [name for name in SECTION_NAMES if not chosen or name in chosen]
    if args.output is None:
        args.output = DEFAULT_OUTPUT if args.sections == list(SECTION_NAMES) else PARTIAL_OUTPUT
    if args.iterations < 2 or args.warmup < 0 or args.cold_runs < 1 or args.listeners < 1:
        parser.error("--iterations >= 2, --warmup >= 0, --cold-runs >= 1 and --listeners >= 1 please")
    return args


# -- the table -----------------------------------------------------------------------------------------


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        magnitude = abs(value)
        return (
            f"{value:.0f}"
            if magnitude >= 1000
            else f"{value:.1f}"
            if magnitude >= 100
            else f"{value:.2f}"
            if magnitude >= 1
            else f"{value:.3f}"
        )
    return str(value)


def _with_unit(value: Any, unit: str) -> str:
    text = _number(value)
    return text if text == "-" else f"{text} {unit}"


def render(rows: list[Row], machine: dict[str, Any], seconds: float, failures: list[str]) -> str:
    header = ("section", "figure", "value", "floor", "ratio", "target", "met?")
    body = []
    for r in rows:
        met = "" if r.get("met") is None else ("yes" if r["met"] else "NO")
        body.append(
            (
                r["section"],
                r["figure"],
                _with_unit(r["value"], r["unit"]),
                _with_unit(r["floor"], r["unit"]),
                "-" if r.get("ratio") is None else f"{r['ratio']:.2f}x",
                r.get("target") or "-",
                met,
            )
        )
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    numeric = {2, 3, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [
        f"Machine: {machine['cpu']} ({machine['architecture']}), {machine['cores']} cores "
        f"({machine['cores_usable']} usable), {machine['memory_gib']} GiB, {machine['os']}; {machine['python']}, "
        f"Node {machine['node']}, {machine['java']}; load average {machine['loadavg_at_start']} at start, "
        f"{machine.get('loadavg_at_end', '?')} at end",
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
    ]
    previous = None
    for r, cells in zip(rows, body, strict=True):
        if previous is not None and r["section"] != previous:
            out.append("")
        previous = r["section"]
        out.append(line(cells))
    floors: dict[tuple[str, str], list[str]] = {}
    notes = []
    for r in rows:
        if r.get("floor_is"):
            floors.setdefault((r["section"], r["floor_is"]), []).append(r["figure"])
        if r.get("note"):
            notes.append(f"  {r['section']} | {r['figure']}: {r['note']}")
    out += ["", "Floors (measured in this run):"]
    for (section, floor_is), figures in floors.items():
        every = len(figures) == sum(1 for r in rows if r["section"] == section)
        out.append(f"  {section} | {floor_is}  [{'every row' if every else '; '.join(figures)}]")
    if notes:
        out += ["", "Notes:", *notes]
    out += ["", f"Total time: {seconds:.0f} s."]
    out.append("Correctness: " + ("all checks passed." if not failures else "FAILED: " + "; ".join(failures)))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    machine = common.machine()
    rows: list[Row] = []
    failures: list[str] = []
    timings: dict[str, float] = {}
    with common.bench_context(keep=args.keep) as context:
        for number, name in enumerate(args.sections, 1):
            print(f"[{number}/{len(args.sections)}] {name} ...", file=sys.stderr, flush=True)
            section_started = time.monotonic()
            try:
                rows.extend(SECTIONS[name](context, args))
            except Exception as error:  # noqa: BLE001 - the other sections still run; the exit status says it
                traceback.print_exc()
                failures.append(f"section {name} could not run: {type(error).__name__}: {error}".splitlines()[0])
            timings[name] = round(time.monotonic() - section_started, 1)
            print(f"      {name} took {timings[name]:.0f} s", file=sys.stderr, flush=True)
        failures = context.failures + failures
        if args.keep:
            print(f"scratch directory kept: {context.workdir}", file=sys.stderr)
    seconds = time.monotonic() - started
    machine["loadavg_at_end"] = common.loadavg()
    print(render(rows, machine, seconds, failures))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": machine,
                "sections": args.sections,
                "section_seconds": timings,
                "total_seconds": round(seconds, 1),
                "options": {
                    "iterations": args.iterations,
                    "warmup": args.warmup,
                    "cold_runs": args.cold_runs,
                    "listeners": args.listeners,
                },
                "correctness_failures": failures,
                "ok": not failures,
                "rows": rows,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"written to {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
