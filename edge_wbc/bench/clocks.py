"""The clocks per-op timing can read (``edge-wbc inspect --time --clock``); a leaf with no imports beyond
the standard library, so that the CLI's option choices cost nothing at start-up.

``wall``: perf_counter. ``cpu``: this thread's CPU time, which leaves out the time another process held
the core (a long invoke cannot dodge it, a short one mostly does); one thread only.
"""

import time

CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}
