"""Keep-alive connections that end, so a Service spreads clients over the pods an autoscaler adds.

A Service balances connections, not requests: keep-alive clients that connected while one pod ran
stay on it after the HPA has added three more, which then get nothing (measured on the real node:
four replicas, sixteen clients, all on the first pod). So a connection older than its age limit is
closed after its next answer (`Connection: close`: the client finishes that request and reconnects,
through the Service, to any pod), as gRPC's MAX_CONNECTION_AGE and Envoy's max_connection_duration
do. No request is lost: the answer goes out first and the client opens a new connection for the next.
"""

from __future__ import annotations

import random
import time
from typing import Any, Final

#: Each connection's limit is the age limit times a factor in [1 - JITTER, 1 + JITTER], so clients
#: that connected together do not all reconnect together.
JITTER: Final = 0.1
#: Connections are known by the client's (address, port); one closed by its client leaves its entry
#: behind, and past this many entries those older than their limit are forgotten.
PRUNE_ABOVE: Final = 4096


class ConnectionAges:
    """When each keep-alive connection should end, by its client's (address, port)."""

    def __init__(self, max_age_s: float, clock: Any = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._ends: dict[Any, float] = {}

    def ending(self, client: Any) -> bool:
        """Whether the answer now going to ``client`` should close its connection."""
        if client is None:  # no peer address (a test transport): nothing to tell connections apart
            return False
        now = self._clock()
        end = self._ends.get(client)
        if end is None:
            if len(self._ends) >= PRUNE_ABOVE:
                self._ends = {key: at for key, at in self._ends.items() if at > now}
            self._ends[client] = now + self.max_age_s * random.uniform(1 - JITTER, 1 + JITTER)
            return False
        if now < end:
            return False
        del self._ends[client]
        return True

    def __len__(self) -> int:
        return len(self._ends)
