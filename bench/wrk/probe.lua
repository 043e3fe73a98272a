-- A light, steady load beside a flood: each connection sends one GET, waits for the
-- answer, then pauses PROBE_DELAY_MS (default 20) before the next, so a probe of C
-- connections sends at most C x 1000 / PROBE_DELAY_MS requests a second whatever the
-- server's state; wrk's latency is each request's own (the pause is not in it).
--
--   wrk -c 2 ... -s bench/wrk/probe.lua URL            (GET URL, no credential)
--   BENCH_ACCESS_TOKEN=... wrk ... -s bench/wrk/probe.lua URL -- bearer
--
-- Every answer must be a 200: done() reports the others as non200=N (and the first).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

non200, first_bad = 0, 0
local pause = tonumber(os.getenv("PROBE_DELAY_MS") or "20")

function init(args)
  if args[1] == "bearer" then
    local token = os.getenv("BENCH_ACCESS_TOKEN")
    assert(token and token ~= "", "BENCH_ACCESS_TOKEN is not set")
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function delay()
  return pause
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad == 0 then first_bad = status end
  end
end

function extra_fields()
  local bad, first = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
    if first == 0 then first = thread:get("first_bad") end
  end
  return string.format("non200=%d first_non200=%d", bad, first)
end
