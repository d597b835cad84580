"""``claude-proxy bench``: latency, time to first token and the gateway's memory, by
``max_tokens`` and by input length, with and without prompt caching."""
