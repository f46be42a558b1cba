"""Run every benchmark module in bench/ (or those named on the command line) and print figures."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import time

import bench

ALIASES = {"phone": "bench_phone_sync"}  # short names for `python -m bench NAME`


def main(names: list[str]) -> int:
    """Run `bench_*` modules' `main()` in name order; return non-zero if one failed to run."""
    from hub.logging import configure_logging  # noqa: PLC0415 - only when run

    configure_logging(level="ERROR")  # figures, not the components' logs (triage_high warns)
    modules = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    names = [ALIASES.get(n, n) for n in names]
    chosen = [m for m in modules if not names or m in names or m.removeprefix("bench_") in names]
    if len(chosen) > 1:
        # Each module in a process of its own: what one benchmark left in memory (models, a
        # million rows) must not show in the next one's RSS figures.
        failed = 0
        for name in chosen:
            run = subprocess.run([sys.executable, "-m", "bench", name], check=False)  # noqa: S603
            failed += run.returncode != 0
        return 1 if failed else 0
    failed = 0
    for name in chosen:
        print(f"\n### {name}", flush=True)
        start = time.perf_counter()
        saved, sys.argv = sys.argv, [f"bench/{name}.py"]  # each module parses its own options
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # noqa: BLE001 - report and go on to the next benchmark
            failed += 1
            print(f"{name} failed: {exc!r}")
        finally:
            sys.argv = saved
        print(f"({name} took {time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
