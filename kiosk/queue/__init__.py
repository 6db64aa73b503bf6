"""The queue engine: queue services from queue.yml, issuing numbers (walk-in, appointment
check-in) under the opening hours, quotas and the one-unserved-ticket-per-ID rule, counters
calling, and the waiting estimates residents see."""
