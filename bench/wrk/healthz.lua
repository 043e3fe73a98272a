-- GET /healthz: the bare route (no dependency, no database), the ceiling of the stack.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
