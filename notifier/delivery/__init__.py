"""The delivery engine: fan-out of due broadcasts, the dispatcher (claim → prepare → send →
record), rate limits, and the workers' heartbeats that let any live process take over what a
dead one held."""
