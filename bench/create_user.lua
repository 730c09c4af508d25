-- wrk script: POST /user with a new name on every request.
local counter = 0
local prefix = ""

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  prefix = string.format("wrk-%d-%d", os.time(), math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local body = string.format('{"name": "%s-%d"}', prefix, counter)
  return wrk.format("POST", "/user", {["Content-Type"] = "application/json"}, body)
end
