-- bench.lua - an allocation-heavy Lua 5.4 program for the heapindex bench.
--
--   lua5.4 workloads/lua/bench.lua [SCALE]     (SCALE 1..1000, default 1)
--
-- Lua allocates every table, string, closure and coroutine through one
-- realloc-style function, which in Debian's lua5.4 is the C library's
-- realloc and free: each phase below is heap churn seen by the hooks.
--   trees     binary trees built and checked, then dropped (the GC frees them)
--   strings   formatting, concatenation, gsub, table.concat, string.rep
--   records   a table of records updated at random, sorted, filtered
--   closures  closures and coroutines generating sequences
--   codec     records serialised to a JSON-like text and parsed back
-- Work grows linearly with SCALE. stdout is one line per phase and a total,
-- the same on every run: the random generator is seeded, and no output
-- depends on the order of pairs() over string keys (Lua seeds its string
-- hashes per run) or on an address.
-- A bad SCALE: one line on stderr, exit status 2.

local scale_text = arg[1] or "1"
if arg[2] ~= nil or not scale_text:match("^%d+$") or tonumber(scale_text) < 1
    or tonumber(scale_text) > 1000 then
  io.stderr:write("bench.lua: bad SCALE '" .. tostring(arg[2] and table.concat(arg, " ") or scale_text)
                  .. "': valid: one whole number 1..1000\n")
  os.exit(2)
end
local scale = math.tointeger(tonumber(scale_text))
math.randomseed(42)

-- FNV-1a over a string, 64-bit wrapping arithmetic.
local FNV_PRIME = 0x100000001b3
local function fnv(h, s)
  for i = 1, #s do
    h = (h ~ s:byte(i)) * FNV_PRIME
  end
  return h
end

local function mixint(h, n)
  return ((h ~ n) * FNV_PRIME) & 0x7fffffffffffffff
end

-- trees ----------------------------------------------------------------------
local function make_tree(depth)
  if depth == 0 then
    return {}
  end
  depth = depth - 1
  return {make_tree(depth), make_tree(depth)}
end

local function check_tree(t)
  if t[1] == nil then
    return 1
  end
  return 1 + check_tree(t[1]) + check_tree(t[2])
end

local function trees()
  local h, nodes = 0, 0
  local long_lived = make_tree(12)
  for round = 1, 6 * scale do
    for depth = 4, 12, 2 do
      local iterations = 1 << (12 - depth)
      for _ = 1, iterations do
        local n = check_tree(make_tree(depth))
        nodes = nodes + n
      end
      h = mixint(h, nodes + round)
    end
  end
  nodes = nodes + check_tree(long_lived)
  return string.format("trees: nodes=%d hash=%016x", nodes, h)
end

-- strings --------------------------------------------------------------------
local words = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
               "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"}

local function strings()
  local h, total = 0xcbf29ce484222325, 0
  for i = 1, 3000 * scale do
    local parts = {}
    for k = 1, 8 + i % 9 do
      parts[k] = words[math.random(#words)] .. string.format("%d:%x", k, i * k)
    end
    local line = table.concat(parts, ",")
    local upper = line:upper():gsub("(%d+):", "<%1>")
    local rev = upper:reverse()
    local rep = string.rep(words[i % #words + 1], 1 + i % 5, "-")
    total = total + #line + #upper + #rev + #rep
    if i % 7 == 0 then
      h = fnv(h, rev:sub(1, 32) .. rep)
    end
  end
  return string.format("strings: bytes=%d hash=%016x", total, h & 0x7fffffffffffffff)
end

-- records --------------------------------------------------------------------
local function records()
  local list = {}
  local n = 2000 * scale
  for i = 1, n do
    list[i] = {id = i, name = words[math.random(#words)] .. i, score = math.random(1000000),
               tags = {math.random(100), math.random(100)}}
  end
  local h, kept = 0, 0
  for pass = 1, 10 do
    for _ = 1, n // 2 do
      local r = list[math.random(n)]
      r.score = (r.score * 31 + pass) % 1000003
      r.tags[#r.tags + 1] = pass
      if #r.tags > 6 then
        r.tags = {r.tags[#r.tags], r.tags[1]}
      end
      r.name = r.name:sub(1, 12) .. pass
    end
    local sorted = table.move(list, 1, n, 1, {})
    table.sort(sorted, function(a, b)
      if a.score ~= b.score then return a.score < b.score end
      return a.id < b.id
    end)
    local filtered = {}
    for i = 1, n do
      local r = sorted[i]
      if r.score % 3 == pass % 3 then
        filtered[#filtered + 1] = {id = r.id, score = r.score, name = r.name}
      end
    end
    kept = kept + #filtered
    for i = 1, #filtered, 17 do
      h = mixint(h, filtered[i].id * 1000003 + filtered[i].score)
    end
  end
  return string.format("records: kept=%d hash=%016x", kept, h)
end

-- closures -------------------------------------------------------------------
local function counter(step)
  local value = 0
  return function()
    value = value + step
    return value
  end
end

local function generator(limit)
  return coroutine.wrap(function()
    local a, b = 0, 1
    for _ = 1, limit do
      coroutine.yield(a)
      a, b = b, (a + b) % 1000000007
    end
  end)
end

local function closures()
  local h, sum = 0, 0
  for i = 1, 2000 * scale do
    local fs = {}
    for k = 1, 8 do
      fs[k] = counter(k + i % 5)
    end
    for _ = 1, 3 do
      for k = 1, 8 do
        sum = sum + fs[k]()
      end
    end
    if i % 4 == 0 then
      for v in generator(20 + i % 30) do
        sum = sum + v
      end
    end
    h = mixint(h, sum % 1000000007)
  end
  return string.format("closures: sum=%d hash=%016x", sum, h)
end

-- codec ----------------------------------------------------------------------
local function encode(v, out)
  local t = type(v)
  if t == "table" then
    if v[1] ~= nil or next(v) == nil then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = string.format("%q:", k)
        encode(v[k], out)
      end
      out[#out + 1] = "}"
    end
  elseif t == "string" then
    out[#out + 1] = string.format("%q", v)
  else
    out[#out + 1] = tostring(v)
  end
end

local function decode(s)
  local pos = 1
  local value
  local function skip()
    pos = s:find("[^ ]", pos) or #s + 1
  end
  local function parse_string()
    local stop = s:find('"', pos + 1, true)
    local text = s:sub(pos + 1, stop - 1)
    pos = stop + 1
    return text
  end
  value = function()
    skip()
    local c = s:sub(pos, pos)
    if c == "[" then
      pos = pos + 1
      local list = {}
      skip()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return list end
      while true do
        list[#list + 1] = value()
        skip()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return list end
      end
    elseif c == "{" then
      pos = pos + 1
      local obj = {}
      while true do
        skip()
        local k = parse_string()
        pos = pos + 1                        -- ':'
        obj[k] = value()
        skip()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return obj end
      end
    elseif c == '"' then
      return parse_string()
    else
      local num = s:match("^-?%d+", pos)
      pos = pos + #num
      return math.tointeger(tonumber(num))
    end
  end
  return value()
end

local function codec()
  local h, bytes = 0xcbf29ce484222325, 0
  for i = 1, 60 * scale do
    local doc = {}
    for k = 1, 40 do
      doc[k] = {id = i * 100 + k, name = words[(i + k) % #words + 1],
                values = {k, i, math.random(1000)}, nested = {a = k, b = {k * 2, k * 3}}}
    end
    local out = {}
    encode(doc, out)
    local text = table.concat(out)
    local back = decode(text)
    local again = {}
    encode(back, again)
    local text2 = table.concat(again)
    if text2 ~= text then
      io.stderr:write("bench.lua: codec round trip differs at document " .. i .. "\n")
      os.exit(1)
    end
    bytes = bytes + #text
    h = fnv(h, text:sub(-64))
  end
  return string.format("codec: bytes=%d hash=%016x", bytes, h & 0x7fffffffffffffff)
end

local total = 0
for _, phase in ipairs({trees, strings, records, closures, codec}) do
  local line = phase()
  print(line)
  total = fnv(total, line)
end
print(string.format("lua: scale=%d total=%016x", scale, total & 0x7fffffffffffffff))
