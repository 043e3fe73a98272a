-- GET /users/me with a bearer access token: token verification plus one database read.
-- The token comes from the environment (BENCH_ACCESS_TOKEN), not the command line.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

function init(args)
  local token = os.getenv("BENCH_ACCESS_TOKEN")
  assert(token and token ~= "", "BENCH_ACCESS_TOKEN is not set")
  wrk.headers["Authorization"] = "Bearer " .. token
end
