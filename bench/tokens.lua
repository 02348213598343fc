-- wrk script for bench/api_bench.py: every request carries a random member's JWT.
--
--   wrk -t2 -c16 -d15s -s bench/tokens.lua URL -- TOKENS_FILE [DELAY_MS]
--
-- TOKENS_FILE: one access token a line. DELAY_MS > 0: each connection waits a random
-- time, uniform on [0, 2 × DELAY_MS] (mean DELAY_MS), before each request, to offer a
-- target rate (wrk has no constant-rate mode); the random spread keeps the connections
-- from marching in step. done() prints one line for the bench to parse:
--   WRK_RESULT requests=… duration_us=… mean_us=… p50_us=… p90_us=… p99_us=… max_us=…
--              non2xx=… connect=… read=… write=… timeout=…

local tokens = {}
local delay_ms = 0

-- Runs once in each thread's own Lua state.
function init(args)
   local path = args[1]
   if not path then
      error("usage: wrk ... -s tokens.lua URL -- TOKENS_FILE [DELAY_MS]")
   end
   for line in io.lines(path) do
      if #line > 0 then
         tokens[#tokens + 1] = line
      end
   end
   if #tokens == 0 then
      error("no tokens in " .. path)
   end
   delay_ms = tonumber(args[2] or "0") or 0
   if delay_ms <= 0 then
      delay = nil  -- wrk looks for delay() after init(): no delay at all, not a 0 ms timer
   end
   -- A different sequence per thread: the address of a fresh table differs per state.
   math.randomseed(os.time() + tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16))
end

function delay()
   return math.random() * 2 * delay_ms
end

function request()
   local token = tokens[math.random(#tokens)]
   return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end

-- Runs once, in the main state, with the merged statistics (latency in microseconds).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK_RESULT requests=%d duration_us=%d mean_us=%d p50_us=%d p90_us=%d p99_us=%d "
         .. "max_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration, latency.mean,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
