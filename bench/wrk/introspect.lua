-- POST /oauth/introspect of the bench user's access token, by an API key with the
-- `introspect` scope (X-API-Key): the caller's key check, the form, the token's signature
-- (cached after the first) and its session (cached), all warm.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

function init(args)
  local key, token = os.getenv("BENCH_API_KEY"), os.getenv("BENCH_ACCESS_TOKEN")
  assert(key and token, "BENCH_API_KEY and BENCH_ACCESS_TOKEN must be set")
  wrk.method = "POST"
  wrk.headers["X-API-Key"] = key
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "token=" .. token
end
