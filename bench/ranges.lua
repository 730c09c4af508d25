-- wrk: GET 1 MiB ranges of a file of SIZE bytes (environment), in turn (bench/record_cache.py)
local size = tonumber(os.getenv("SIZE"))
local mib = 1048576
local offset = 0
request = function()
  local last = math.min(offset + mib, size) - 1
  local r = wrk.format("GET", nil, {["Range"] = "bytes=" .. offset .. "-" .. last})
  offset = offset + mib
  if offset >= size then offset = 0 end
  return r
end
