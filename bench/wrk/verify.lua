-- POST /devices/verify: a machine checking in at start, with its fingerprint as credential.
--
--   wrk -t THREADS ... -s bench/wrk/verify.lua URL -- FINGERPRINTS_FILE THREADS [spread|hot]
--
-- FINGERPRINTS_FILE has one registered fingerprint per line (bench/make_devices.py). In
-- `spread` mode (the default) the file is cut into one disjoint, contiguous slice per wrk
-- thread and each thread sends its slice round-robin, one pre-built request per
-- fingerprint, so the run covers the whole registry and a device comes back only after the
-- thread has been through its whole slice (never within a run shorter than that): every
-- request is the cold path (a cache miss, the device's read, its first last-seen write).
-- In `hot` mode every request sends the file's first fingerprint (the warm path: the
-- principal cache answers, the last-seen write is not due). THREADS must repeat wrk's -t
-- (setup() cannot count the threads).
--
-- Every answer must be a 200: response() counts the others (wrk's own errors.status counts
-- only statuses > 399), and done() reports them as non200=N with the first one seen.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state: `id` (set by setup), then these globals, which done() reads back.
payloads = {}
slice = 0
hot = 0
sent = 0
non200 = 0
first_bad = 0

function init(args)
  local path, count, mode = args[1], tonumber(args[2]), args[3] or "spread"
  assert(path and count, "usage: -s verify.lua URL -- FINGERPRINTS_FILE THREADS [spread|hot]")
  assert(mode == "spread" or mode == "hot", "mode must be spread or hot")
  local fingerprints = {}
  for line in io.lines(path) do
    if line ~= "" then
      fingerprints[#fingerprints + 1] = line
    end
  end
  assert(#fingerprints > 0, "no fingerprints in " .. path)
  local headers = { ["Content-Type"] = "application/json" }
  local function build(fingerprint)
    return wrk.format("POST", "/devices/verify", headers,
      '{"fingerprint":"' .. fingerprint .. '"}')
  end
  if mode == "hot" then
    hot = 1
    payloads[1] = build(fingerprints[1])
  else
    local per_thread = math.floor(#fingerprints / count)
    assert(per_thread > 0, "fewer fingerprints than threads")
    local first = id * per_thread
    -- The last thread also takes the remainder, so the slices cover the whole file.
    local last = (id == count - 1) and #fingerprints or first + per_thread
    for i = first + 1, last do
      payloads[#payloads + 1] = build(fingerprints[i])
    end
  end
  slice = #payloads
end

function request()
  sent = sent + 1
  return payloads[(sent - 1) % slice + 1]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad == 0 then
      first_bad = status
    end
  end
end

function extra_fields()
  local total_sent, distinct, wrapped, bad, first = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    local thread_sent, thread_slice = thread:get("sent"), thread:get("slice")
    total_sent = total_sent + thread_sent
    if thread:get("hot") == 1 then
      distinct = 1
    else
      distinct = distinct + math.min(thread_sent, thread_slice)
      if thread_sent > thread_slice then
        wrapped = 1
      end
    end
    bad = bad + thread:get("non200")
    if first == 0 then
      first = thread:get("first_bad")
    end
  end
  return string.format("sent=%d fingerprints=%d wrapped=%d non200=%d first_non200=%d",
    total_sent, distinct, wrapped, bad, first)
end
