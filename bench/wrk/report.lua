-- Shared by every bench script: done() prints one machine-parseable result line.
--
--   BENCH_RESULT requests=... duration_s=... rps=... p50_ms=... p99_ms=... non2xx=... ...
--
-- wrk counts a response as an error in `errors.status` when its status is > 399 (the same
-- number it prints as "Non-2xx or 3xx responses"). Latency values are microseconds.
-- A script may define extra_fields() (called in done's environment) to append key=value
-- pairs of its own.

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  local line = string.format(
    "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f"
      .. " non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout)
  if type(extra_fields) == "function" then
    line = line .. " " .. extra_fields()
  end
  io.write(line .. "\n")
end
