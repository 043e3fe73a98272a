-- GET /users/me with an API key in X-API-Key: the key's digest, its record and owner from
-- the principal cache (one database read per key every 30 s), no JWT at all.
-- The key comes from the environment (BENCH_API_KEY), not the command line.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

function init(args)
  local key = os.getenv("BENCH_API_KEY")
  assert(key and key ~= "", "BENCH_API_KEY is not set")
  wrk.headers["X-API-Key"] = key
end
