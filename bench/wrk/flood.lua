-- POST /auth/login flood: every connection logs in again as soon as it has an answer.
--
--   wrk -c 64 ... -s bench/wrk/flood.lua URL -- USERS
--
-- Logs in as flood-0 .. flood-<USERS-1> in turn (each thread starting at its own offset),
-- with BENCH_PASSWORD, the right password of each: every request that is served costs one
-- argon2id verification. response() counts every status; done() reports
-- s200= s401= s429= s503= other= first_other= (the bench fails on any `other`).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state read back by done().
s200, s401, s429, s503, other, first_other = 0, 0, 0, 0, 0, 0
payloads = {}
sent = 0

local function json_string(value)
  return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function init(args)
  local users = tonumber(args[1])
  local password = os.getenv("BENCH_PASSWORD")
  assert(users and users > 0 and password, "usage: -s flood.lua URL -- USERS (BENCH_PASSWORD set)")
  local headers = { ["Content-Type"] = "application/json" }
  for i = 0, users - 1 do
    local name = "flood-" .. ((i + id) % users)
    payloads[#payloads + 1] = wrk.format("POST", "/auth/login", headers,
      '{"username":' .. json_string(name) .. ',"password":' .. json_string(password)
        .. ',"device_name":"flood"}')
  end
end

function request()
  sent = sent + 1
  return payloads[(sent - 1) % #payloads + 1]
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 401 then s401 = s401 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else
    other = other + 1
    if first_other == 0 then first_other = status end
  end
end

function extra_fields()
  local t = { s200 = 0, s401 = 0, s429 = 0, s503 = 0, other = 0 }
  local first = 0
  for _, thread in ipairs(threads) do
    for key in pairs(t) do t[key] = t[key] + thread:get(key) end
    if first == 0 then first = thread:get("first_other") end
  end
  return string.format("s200=%d s401=%d s429=%d s503=%d other=%d first_other=%d",
    t.s200, t.s401, t.s429, t.s503, t.other, first)
end
