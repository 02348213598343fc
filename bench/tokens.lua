-- wrk script for bench/api_bench.py: every request carries a random member's JWT.
--
--   wrk -t2 -c16 -d15s -s bench/tokens.lua URL -- TOKENS_FILE [PAUSE_MS]
--
-- TOKENS_FILE: one access token a line.
--
-- PAUSE_MS > 0 paces the load (wrk has no constant-rate mode): before each request a
-- connection waits a random time, uniform on [0, 2 × PAUSE_MS] (mean PAUSE_MS; the spread
-- keeps connections from marching in step). wrk runs delay() after it has (re)connected,
-- so each pause holds an open connection with no request on it yet: the bench gives
-- gunicorn a listening socket with TCP_DEFER_ACCEPT, so a sync worker accepts it only
-- once the request has arrived, instead of blocking on it for the pause.
--
-- done() prints one line for the bench to parse (latency in microseconds):
--   WRK_RESULT requests=… duration_us=… mean_us=… p50_us=… p90_us=… p99_us=… max_us=…
--              non2xx=… connect=… read=… write=… timeout=…

local tokens = {}
local pause_ms = 0

-- Runs once in each thread's own Lua state.
function init(args)
   local path = args[1]
   if not path then
      error("usage: wrk ... -s tokens.lua URL -- TOKENS_FILE [PAUSE_MS]")
   end
   for line in io.lines(path) do
      if #line > 0 then
         tokens[#tokens + 1] = line
      end
   end
   if #tokens == 0 then
      error("no tokens in " .. path)
   end
   pause_ms = tonumber(args[2] or "0") or 0
   if pause_ms <= 0 then
      -- wrk looks for delay() after init(): without it, no timer at all between requests.
      delay = nil
   end
   -- A different sequence per thread: the address of a fresh table differs per state.
   math.randomseed(os.time() + tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16))
end

function delay()
   return math.random() * 2 * pause_ms
end

function request()
   local token = tokens[math.random(#tokens)]
   return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end

-- Runs once, in the main state, with the merged statistics.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK_RESULT requests=%d duration_us=%d mean_us=%d p50_us=%d p90_us=%d p99_us=%d "
         .. "max_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration, latency.mean,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
