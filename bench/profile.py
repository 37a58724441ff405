"""py-spy on a process of the bench while a scenario runs: a flame graph (SVG) to look
at, and the same samples as collapsed stacks, summarised into the result file.

py-spy runs with ``--nonblocking`` (it reads the process's memory without stopping it),
so the profile costs the measured process nothing but some CPU time of py-spy's own.
Two samplers run side by side, one per output format, and stop (SIGINT, on which py-spy
writes its file) when the scenario's window ends.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, svg: Path, seconds: float, rate: int = 100) -> None:
        self.svg = svg
        self.raw = svg.with_suffix(".txt")
        self.processes: list[subprocess.Popen[bytes]] = []
        program = py_spy()
        if program is None:
            return
        svg.parent.mkdir(parents=True, exist_ok=True)
        for fmt, out, extra in (("flamegraph", svg, []), ("raw", self.raw, ["--threads"])):
            self.processes.append(subprocess.Popen(
                [program, "record", "--nonblocking", "--rate", str(rate), "--duration",
                 str(max(1, round(seconds))), "--format", fmt, "--output", str(out),
                 "--pid", str(pid), *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> dict[str, Any] | None:
        """Stop sampling; the summary of what was sampled (None without py-spy)."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if not self.processes or not self.raw.exists():
            return None
        return {"svg": str(self.svg), "collapsed": str(self.raw), **summarise(self.raw)}


def summarise(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Where the samples are: each function's share of samples on-CPU at the top of the
    stack (``self``) and anywhere in it (``inclusive``), in percent."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [LINE.sub(")", f) for f in stack.split(";")]
        if frames and frames[0].startswith(("process ", "thread ")):
            threads[frames[0]] += n
            frames = frames[1:]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            anywhere[frame] += n

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {"samples": total, "self": shares(own) if total else [],
            "inclusive": shares(anywhere) if total else [],
            "threads": shares(threads) if total else []}
