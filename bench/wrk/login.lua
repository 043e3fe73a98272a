-- POST /auth/login with the bench user's username and password (from BENCH_USERNAME and
-- BENCH_PASSWORD). Every request verifies one argon2id hash and opens a new session.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local function json_string(value)
  return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function init(args)
  local username, password = os.getenv("BENCH_USERNAME"), os.getenv("BENCH_PASSWORD")
  assert(username and password, "BENCH_USERNAME and BENCH_PASSWORD must be set")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"username":' .. json_string(username) .. ',"password":' .. json_string(password)
    .. ',"device_name":"bench"}'
end
