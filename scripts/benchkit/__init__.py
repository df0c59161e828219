"""The benchmark's sections, one module each, behind the thin command scripts/bench.py.

common     logging, number formats, the machine, the data, SPAWN and in_child
http       JSON calls, streamed uploads, job polling, /metrics, the load generator (http_load)
service    the service under test (Service), cpu_delta, stop_group
engine     1. the model only          frontend   1b. decode + front end alone
pipeline   2. in-process pipeline     bulk       3. bulk end to end, 7. scaling
drawings   4. single drawings         peers      5. naive peers (Keras loop, one Celery task per image, LitServe)
resources  6. resources (RssSampler)  profiles   py-spy (--profile)
report     targets, the markdown report, the kept notes

Functions run in spawned children (SPAWN, in_child) live in these modules, so that a child finds them by
module path; importing the package puts the repository root and scripts/ on sys.path (digitflow, stack).
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _p in (str(_ROOT / "scripts"), str(_ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
