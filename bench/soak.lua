-- wrk script for bench/soak.sh (read the header comment there first).
--
-- Each request is one of four kinds, named in an X-Soak-Kind request header
-- that nginx echoes back, so that each answer can be matched to its kind:
--
--   hit      one of SOAK_KEYS fixed chat bodies: cached after its first miss
--   unique   a body never sent before (a counter in the user message): a miss
--   sfixed   one of SOAK_STREAM_KEYS fixed "stream": true bodies: cached SSE
--   sunique  a "stream": true body never sent before: a streamed miss
--
-- "unique" is SOAK_MISS_PCT % of the requests, the two stream kinds
-- SOAK_STREAM_PCT % (half each), "hit" the rest. With SOAK_TAIL_HITS=f
-- the last f of each thread's share are all "hit" (the warm-up: so that
-- the requests wrk leaves in flight when it stops are hits, not provider
-- calls that would arrive after the provider's counter is reset).
--
-- Each thread counts, for the answers it got: the HTTP status, the
-- X-LLM-Cache value (any value: HIT, MISS, ERROR, BYPASS, "(none)", ...),
-- kind x X-LLM-Cache, and answers whose body does not fit their kind
-- ("bad ..."). After SOAK_REQUESTS / threads answers a thread stops itself
-- and writes SOAK_STATE/done.<n>; every few thousand answers it writes its
-- count to SOAK_STATE/progress.<n>, which soak.sh reads to time the Redis
-- restarts. (wrk's main thread sleeps for the whole -d, so soak.sh sends
-- wrk SIGINT once every thread has written done.<n>.)
--
-- done() prints "SOAK <name...> <number>" lines, which soak.sh parses.
-- The counters travel from the threads to done() as one string: wrk 4.1's
-- thread:get() copies strings safely, tables less so.

local function env_num(name, default)
   local v = tonumber(os.getenv(name) or "")
   return v or default
end

local total      = env_num("SOAK_REQUESTS", 1000000)
local nthreads   = env_num("SOAK_THREADS", 1)
local nkeys      = env_num("SOAK_KEYS", 300)
local nskeys     = env_num("SOAK_STREAM_KEYS", 50)
local miss_pm    = math.floor(env_num("SOAK_MISS_PCT", 7) * 10 + 0.5)
local stream_pm  = math.floor(env_num("SOAK_STREAM_PCT", 3) * 10 + 0.5)
local tail       = env_num("SOAK_TAIL_HITS", 0)
local state      = os.getenv("SOAK_STATE") or "."
local run        = os.getenv("SOAK_RUN") or "run"
local path       = "/v1/chat/completions"

-- ------------------------------------------------------------- setup ----

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
   thread:set("tid", #threads)
end

-- ----------------------------------------------------------- running ----

local quota, got, finished, tail_from = 0, 0, false, 0
local progress_every = 2000
local counts = {}
local hit_reqs, shit_reqs = {}, {}
local hdr = {}
local uniq = 0
local system_msg = '{"role":"system","content":"You are a helpful support '
   .. 'assistant for an online store."}'

local function headers(kind)
   return {
      ["Host"] = wrk.headers["Host"],
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer sk-soak",
      ["X-Soak-Kind"] = kind,
   }
end

local function chat_body(text, stream)
   return '{"model":"gpt-4.1-mini","messages":[' .. system_msg
      .. ',{"role":"user","content":"' .. text .. '"}],'
      .. (stream and '"stream":true,' or '')
      .. '"temperature":0.2,"max_tokens":300}'
end

function init(args)
   tid = tid or 1
   quota = math.floor(total / nthreads)
   if tid <= total % nthreads then
      quota = quota + 1
   end
   tail_from = quota - math.floor(quota * tail)
   progress_every = math.max(100, math.min(2000, math.floor(quota / 100)))
   math.randomseed(tid * 7919 + os.time())
   for _, k in ipairs({ "hit", "unique", "sfixed", "sunique" }) do
      hdr[k] = headers(k)
   end
   for i = 1, nkeys do
      hit_reqs[i] = wrk.format("POST", path, hdr.hit, chat_body(
         "Soak question " .. i .. ": which plan fits a team of " .. i
         .. " people, and what does it cost per month?", false))
   end
   for i = 1, nskeys do
      shit_reqs[i] = wrk.format("POST", path, hdr.sfixed, chat_body(
         "Soak stream question " .. i .. ": explain plan " .. i
         .. " step by step.", true))
   end
end

function request()
   local r = math.random(1000)
   if got >= tail_from then
      r = 1000   -- the tail: cached bodies only
   end
   if r <= miss_pm then
      uniq = uniq + 1
      return wrk.format("POST", path, hdr.unique, chat_body(
         "Soak unique question " .. run .. "-" .. tid .. "-" .. uniq
         .. ": tell me something new.", false))
   elseif r <= miss_pm + stream_pm then
      if r % 2 == 0 then
         return shit_reqs[math.random(nskeys)]
      end
      uniq = uniq + 1
      return wrk.format("POST", path, hdr.sunique, chat_body(
         "Soak unique stream " .. run .. "-" .. tid .. "-" .. uniq
         .. ": tell me something new, slowly.", true))
   end
   return hit_reqs[math.random(nkeys)]
end

local function count(name)
   counts[name] = (counts[name] or 0) + 1
end

local function write_file(name, text)
   local f = io.open(state .. "/" .. name .. "." .. tid, "w")
   if f then
      f:write(text)
      f:close()
   end
end

local function snapshot()
   local lines = { "requests " .. got }
   for name, n in pairs(counts) do
      lines[#lines + 1] = name .. " " .. n
   end
   report = table.concat(lines, "\n")
   write_file("progress", got .. "\n")
end

local function finish()
   finished = true
   snapshot()
   write_file("done", got .. "\n")
   wrk.thread:stop()
end

local function header(headers, name, lname)
   return headers[name] or headers[lname]
end

-- does the body look like what this kind of request must get?
local function check(kind, headers, body)
   local ctype = header(headers, "Content-Type", "content-type") or ""
   if kind == "sfixed" or kind == "sunique" then
      if ctype:sub(1, 17) ~= "text/event-stream" then
         count("bad stream-content-type")
      elseif not body:find("data: [DONE]", math.max(1, #body - 40), true) then
         count("bad stream-body-end")
      end
   elseif kind == "hit" or kind == "unique" then
      if ctype:sub(1, 16) ~= "application/json" then
         count("bad json-content-type")
      elseif body:sub(1, 1) ~= "{"
             or not body:find("}%s*$", math.max(1, #body - 8)) then
         count("bad json-body")
      end
   end
end

function response(status, headers, body)
   if finished then
      return
   end
   if got >= quota then
      finish()
      return
   end
   got = got + 1
   local cache = header(headers, "X-LLM-Cache", "x-llm-cache") or "(none)"
   local kind = header(headers, "X-Soak-Kind", "x-soak-kind") or "(none)"
   count("status " .. status)
   count("cache " .. cache)
   count("kind " .. kind .. " " .. cache)
   if status == 200 then
      check(kind, headers, body)
   end
   if got >= quota then
      finish()
   elseif got % progress_every == 0 then
      snapshot()
   end
end

-- -------------------------------------------------------------- done ----

function done(summary, latency, requests)
   local agg = {}
   local unfinished = 0
   for _, t in ipairs(threads) do
      local rep = t:get("report")
      if not rep then
         unfinished = unfinished + 1
      else
         for line in rep:gmatch("[^\n]+") do
            local name, n = line:match("^(.*) (%d+)$")
            if name then
               agg[name] = (agg[name] or 0) + tonumber(n)
            end
         end
      end
   end
   local names = {}
   for name in pairs(agg) do
      names[#names + 1] = name
   end
   table.sort(names)
   for _, name in ipairs(names) do
      print(string.format("SOAK %s %d", name, agg[name]))
   end
   local e = summary.errors
   print(string.format("SOAK wrk-requests %d", summary.requests))
   print(string.format("SOAK wrk-duration-us %d", summary.duration))
   print(string.format("SOAK sockerr connect %d", e.connect))
   print(string.format("SOAK sockerr read %d", e.read))
   print(string.format("SOAK sockerr write %d", e.write))
   print(string.format("SOAK sockerr timeout %d", e.timeout))
   print(string.format("SOAK latency-us p50 %d", latency:percentile(50)))
   print(string.format("SOAK latency-us p99 %d", latency:percentile(99)))
   print(string.format("SOAK latency-us p99.9 %d", latency:percentile(99.9)))
   print(string.format("SOAK latency-us max %d", latency.max))
   print(string.format("SOAK unfinished-threads %d", unfinished))
end
