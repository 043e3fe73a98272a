-- POST /auth/refresh, each request with its own never-used refresh token.
--
-- Refresh tokens are single-use: presenting one twice revokes its session. So the tokens
-- file (one per line, made by bench/make_sessions.py) is cut into one disjoint, contiguous
-- slice per wrk thread, and each thread hands out its slice in order, one token per request.
--
--   wrk -t THREADS ... -s bench/wrk/refresh.lua URL -- TOKENS_FILE THREADS
--
-- THREADS must repeat wrk's -t: setup() runs for each thread before the next one exists, so
-- a script cannot count them. A thread that runs out sends an unknown token (a 401, counted
-- as non-2xx) and reports exhausted=1, so a short pool can never pass unnoticed.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

-- setup() and done() run in the main Lua state; each thread has a state of its own.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state: `id` (set by setup), then these globals, which done() reads back.
payloads = {}
spent = nil
pool = 0
used = 0
exhausted = 0

function init(args)
  local path, count = args[1], tonumber(args[2])
  assert(path and count, "usage: -s refresh.lua URL -- TOKENS_FILE THREADS")
  local tokens = {}
  for line in io.lines(path) do
    if line ~= "" then
      tokens[#tokens + 1] = line
    end
  end
  local per_thread = math.floor(#tokens / count)
  local first = id * per_thread
  local headers = { ["Content-Type"] = "application/json" }
  for i = first + 1, first + per_thread do
    payloads[#payloads + 1] = wrk.format(
      "POST", "/auth/refresh", headers, '{"refresh_token":"' .. tokens[i] .. '"}')
  end
  pool = #payloads
  spent = wrk.format("POST", "/auth/refresh", headers, '{"refresh_token":"ghr_pool_exhausted"}')
end

function request()
  if used >= pool then
    exhausted = 1
    return spent
  end
  used = used + 1
  return payloads[used]
end

function extra_fields()
  local total_used, total_pool, any_exhausted = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_used = total_used + thread:get("used")
    total_pool = total_pool + thread:get("pool")
    any_exhausted = math.max(any_exhausted, thread:get("exhausted"))
  end
  return string.format("tokens_used=%d tokens_pool=%d exhausted=%d",
    total_used, total_pool, any_exhausted)
end
