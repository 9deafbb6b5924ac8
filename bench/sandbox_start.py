"""Docker sandbox start-up against a raw ``docker run``: create-to-first-exec time.

Prints the median of N runs of each and their ratio (target <= 1.2)::

    .venv/bin/python bench/sandbox_start.py [--runs 5] [--image cloud-runs-sandbox:latest]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud_runs.sandboxes import DockerSandboxSettings  # noqa: E402


def raw_docker_run(image: str) -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", image, "true"], check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def sandbox_first_exec(settings: DockerSandboxSettings, index: int) -> float:
    start = time.perf_counter()
    sandbox = settings.create(run_id=f"bench-{index}")
    try:
        if not sandbox.exec(["true"]).ok:
            raise SystemExit("the first exec failed")
        return time.perf_counter() - start
    finally:
        sandbox.destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="cloud-runs-sandbox:latest")
    options = parser.parse_args()
    settings = DockerSandboxSettings(image=options.image, lifetime_seconds=300)
    raw_docker_run(options.image)  # warm caches for both
    raw = statistics.median(raw_docker_run(options.image) for _ in range(options.runs))
    sandbox = statistics.median(sandbox_first_exec(settings, i) for i in range(options.runs))
    ratio = sandbox / raw
    print(f"docker run --rm {options.image} true: median {raw:.3f} s over {options.runs} runs")
    print(f"docker sandbox create -> first exec:   median {sandbox:.3f} s over {options.runs} runs")
    print(f"ratio {ratio:.2f} (target <= 1.2): {'ok' if ratio <= 1.2 else 'SLOWER THAN TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
