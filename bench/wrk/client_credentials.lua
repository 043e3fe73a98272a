-- POST /oauth/token with grant_type=client_credentials and the API key as HTTP Basic client
-- credentials (BENCH_BASIC, already base64): a key check and one signed JWT per request.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

function init(args)
  local basic = os.getenv("BENCH_BASIC")
  assert(basic and basic ~= "", "BENCH_BASIC is not set")
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Basic " .. basic
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "grant_type=client_credentials"
end
