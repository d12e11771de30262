"""Cost of the eBPF agent on a loopback HTTP server under load (needs root and BCC).

Runs wrk against a small asyncio keep-alive HTTP server, alternating rounds
without and with `topology collect` (as a separate process, batches to
/dev/null), at full speed and paced at --rate requests/s, and prints per round
and as medians: throughput, p50/p99 latency (wrk), the agent's CPU time per
1,000 requests and per request, the events the kernel could not queue and the
agent's other losses (agent /metrics), and the calls it reported.

Pacing: every connection waits --pace-ms between a response and its next
request, with enough connections to offer --rate: a long wait keeps the
offered rate nearly independent of the latency (and of the agent's effect on
it). The number of connections is calibrated without the agent.

    sudo .venv/bin/python bench/collect.py [--seconds 8] [--rounds 3] [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"


class Server(asyncio.Protocol):
    """Answers every request head (up to the blank line) with a tiny 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


def serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Server, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url_or_port: int | str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if isinstance(url_or_port, int):
                socket.create_connection(("127.0.0.1", url_or_port), timeout=0.5).close()
            else:
                urllib.request.urlopen(url_or_port, timeout=0.5).read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url_or_port} not up after {timeout}s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"wrk latency {text!r} not understood")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(port: int, seconds: int, connections: int, delay_ms: int = 0) -> dict[str, float]:
    """wrk at full speed, or paced: each connection waits delay_ms between requests."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if delay_ms:
            script.write(f"function delay()\n  return {delay_ms}\nend\n")
            script.flush()
            command += ["-s", script.name]
        out = subprocess.run([*command, f"http://127.0.0.1:{port}/bench/item"],
                             check=True, capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return {"requests": requests, "rps": rps, "p50_ms": p50, "p99_ms": p99}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def metric(metrics_url: str, name: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


LOSSES = ("lost_events", "unparsable_payloads", "evicted_connections", "evicted_requests",
          "unmatched_responses")


def calibrate(port: int, rate: int, pace_ms: int) -> tuple[int, float]:
    """Connections that offer `rate` requests/s at pace_ms between requests, and the rate
    the last calibration run reached (short runs without the agent)."""
    connections = max(1, round(rate * pace_ms / 1000))
    reached = 0.0
    for _ in range(3):
        reached = wrk(port, 3, connections, delay_ms=pace_ms)["rps"]
        if abs(reached - rate) <= 0.02 * rate:
            break
        connections = max(1, round(connections * rate / reached))
    return connections, reached


def measured(pid: int, metrics_url: str, load: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Runs load and adds the agent's CPU time, lost events and calls reported meanwhile."""
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    counters = ("calls", "events", *LOSSES)
    before = {name: metric(metrics_url, f"topology_agent_{name}_total") for name in counters}
    result = load()
    time.sleep(2.0)  # the agent drains the ring buffer and refreshes its loss counters each second
    result["agent_cpu_s"] = cpu_seconds(pid) - cpu_before
    result["elapsed_s"] = time.monotonic() - started
    for name in counters:
        result[name] = metric(metrics_url, f"topology_agent_{name}_total") - before[name]
    result["lost"] = result.pop("lost_events")
    result["other_losses"] = sum(result.pop(name) for name in LOSSES[1:])
    if result["requests"]:
        # CPU microseconds per request == CPU milliseconds per 1,000 requests.
        result["us_per_request"] = result["agent_cpu_s"] / result["requests"] * 1e6
    return result


def idle(seconds: int) -> dict[str, float]:
    """No load from us: what the agent spends on the rest of the machine's traffic."""
    time.sleep(seconds)
    return {"requests": 0, "rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=int, default=5000,
                        help="target requests/s of the paced runs (wrk with a per-request delay)")
    parser.add_argument("--pace-ms", type=int, default=20,
                        help="wait of each paced connection between requests")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("wrk") is None:
        print("bench/collect.py needs root and wrk (scripts/setup-ebpf.sh)", file=sys.stderr)
        return 2
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    agent = None
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        wait_for(port)
        wrk(port, 2, args.connections)  # warm-up
        paced_connections, calibrated = calibrate(port, args.rate, args.pace_ms)
        args.paced_connections, args.calibrated = paced_connections, calibrated

        def paced() -> dict[str, float]:
            return wrk(port, args.seconds, paced_connections, delay_ms=args.pace_ms)

        for index in range(args.rounds):
            rows.append(("without", wrk(port, args.seconds, args.connections)))
            rows.append(("paced0", paced()))
            agent = subprocess.Popen(
                [sys.executable, "-m", "collectors.cli_collect", "--output", os.devnull,
                 "--metrics-port", str(metrics_port), "--log-level", "warning"], cwd=ROOT)
            wait_for(metrics_url, timeout=120)
            rows.append(("idle", measured(agent.pid, metrics_url, lambda: idle(args.seconds))))
            rows.append(("with", measured(agent.pid, metrics_url, lambda: wrk(
                port, args.seconds, args.connections))))
            rows.append(("paced", measured(agent.pid, metrics_url, paced)))
            agent.terminate()
            agent.wait(timeout=30)
            agent = None
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=30)
        server.terminate()
        server.wait(timeout=10)
    report(rows, args)
    return 0


LABELS = {"without": "full speed, no agent", "with": "full speed, agent",
          "paced0": "paced, no agent", "paced": "paced, agent", "idle": "idle, agent"}


def report(rows: list[tuple[str, dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"loopback HTTP (asyncio server), wrk -t2 -d{args.seconds}s; full speed with "
          f"-c{args.connections}; paced: {args.pace_ms} ms between requests on "
          f"{args.paced_connections} connections (target {args.rate} req/s, calibration "
          f"reached {args.calibrated:.0f} without the agent); {args.rounds} rounds; "
          "agent = topology collect; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    for label, row in rows:
        print(f"  {label:7s} {_line(row)}")
    idle_rate = statistics.median(r["agent_cpu_s"] / r["elapsed_s"]
                                  for name, r in rows if name == "idle")
    print(f"agent CPU with no load of ours (other processes' traffic): "
          f"{idle_rate * 1000:.1f} ms per second")
    medians = {}
    for label in ("without", "with", "paced0", "paced"):
        chosen = [row for name, row in rows if name == label]
        median = medians[label] = {key: statistics.median(r[key] for r in chosen)
                                   for key in chosen[0]}
        line = f"median {LABELS[label]:21s} {_line(median)}"
        if label in ("with", "paced"):
            net = statistics.median(
                (r["agent_cpu_s"] - idle_rate * r["elapsed_s"]) / r["requests"] * 1e6
                for r in chosen)
            line += (f"  net of idle {net:.1f} us/req; over all rounds: kernel lost "
                     f"{sum(r['lost'] for r in chosen):.0f}, other losses "
                     f"{sum(r['other_losses'] for r in chosen):.0f}, calls/requests "
                     f"{sum(r['calls'] for r in chosen) / sum(r['requests'] for r in chosen):.3f}")
        print(line)
    for label, base in (("with", "without"), ("paced", "paced0")):
        noise = [r["p99_ms"] for name, r in rows if name == base]
        print(f"p99 {LABELS[label]} vs {LABELS[base]}: "
              f"{medians[label]['p99_ms'] - medians[base]['p99_ms']:+.3f} ms; run-to-run "
              f"spread of {LABELS[base]} p99: {min(noise):.3f}..{max(noise):.3f} ms")


def _line(row: dict[str, float]) -> str:
    text = (f"{row['rps']:9.0f} req/s  p50 {row['p50_ms']:.3f} ms  "
            f"p99 {row['p99_ms']:.3f} ms")
    if "agent_cpu_s" in row:
        text += f"  agent CPU {row['agent_cpu_s']:.2f} s"
    if "us_per_request" in row:
        text += f" = {row['us_per_request']:.1f} us/req"
    if "lost" in row:
        text += (f"  lost {row['lost']:.0f} (+{row['other_losses']:.0f})  "
                 f"events {row['events']:.0f}  calls {row['calls']:.0f}")
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
