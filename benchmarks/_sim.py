"""The simulator for benchmarks/streaming.py: ``claude-proxy simulate`` without cyclic GC.

The simulator is the benchmark's stand-in for the API, not what is measured. With
thousands of streams open, a full collection in it takes hundreds of milliseconds and
stalls every stream at once, for the direct reference and through the gateway alike, so
the measurement would show the simulator's pauses. Its streams create no reference
cycles to speak of (the benchmark reports its RSS), so collection is simply off.

    python benchmarks/_sim.py --port 8001 --speed 0 ...   # the options of `simulate`
"""

from __future__ import annotations

import gc

from claude_proxy.sim import simulate

if __name__ == "__main__":
    gc.disable()
    simulate(prog_name="claude-proxy simulate")
