"""Run `ai-incident serve` under yappi (every thread, CPU time) and save the profile on exit.

    python bench/profiled_serve.py OUT.pstats serve --port P

yappi is not a project dependency: `.venv/bin/pip install yappi`. Stop the server with SIGTERM
(uvicorn shuts down and returns), and the profile of every thread is written as pstats.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import yappi

    out, argv = sys.argv[1], sys.argv[2:]
    from bot.cli import main as cli

    yappi.set_clock_type("cpu")
    yappi.start()
    try:
        return cli(argv)
    finally:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")


if __name__ == "__main__":
    sys.exit(main())
