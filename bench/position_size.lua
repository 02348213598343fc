-- wrk script for bench/position_size_bench.py: POST /api/v1/risk/position-size, each
-- request as a random member, for that member's own account, with a signal id never used
-- before (so every approved answer registers three new expected trades).
--
--   wrk -t2 -c8 -d10s -s bench/position_size.lua URL -- MEMBERS_FILE [PAUSE_MS]
--
-- MEMBERS_FILE: one member a line, "TOKEN ACCOUNT_ID SIDE ENTRY_PRICE STOP_LOSS" (blank
-- separated; prices as decimal strings).
--
-- Signal ids: "b" .. hex(start time) .. "-" .. hex(random per thread) .. "-" .. counter,
-- unique across threads and wrk runs (a repeated id would be idempotent: the service would
-- find the signal's expected trades and register nothing, the cheaper, unrealistic path).
--
-- PAUSE_MS > 0 paces the load exactly as bench/tokens.lua does (see there and
-- bench/api_bench.py): before each request a connection waits a random time, uniform on
-- [0, 2 × PAUSE_MS]; the listening socket has TCP_DEFER_ACCEPT, so a pause does not tie
-- up a gunicorn sync worker.
--
-- done() prints the same WRK_RESULT line as bench/tokens.lua (latency in microseconds), so
-- bench/api_bench.py's run_wrk parses it.

local members = {}
local pause_ms = 0
local prefix = ""
local counter = 0

-- Runs once in each thread's own Lua state.
function init(args)
   local path = args[1]
   if not path then
      error("usage: wrk ... -s position_size.lua URL -- MEMBERS_FILE [PAUSE_MS]")
   end
   for line in io.lines(path) do
      local token, account, side, entry, stop =
         string.match(line, "^(%S+)%s+(%d+)%s+(%a+)%s+([%d.]+)%s+([%d.]+)%s*$")
      if token then
         members[#members + 1] = {
            auth = "Bearer " .. token,
            body_head = string.format(
               '{"account_id":%s,"instrument":"EURUSD","side":"%s",'
                  .. '"entry_price":"%s","stop_loss":"%s","signal_id":"',
               account, side, entry, stop),
         }
      elseif #line > 0 then
         error("bad line in " .. path .. ": " .. line)
      end
   end
   if #members == 0 then
      error("no members in " .. path)
   end
   pause_ms = tonumber(args[2] or "0") or 0
   if pause_ms <= 0 then
      -- wrk looks for delay() after init(): without it, no timer at all between requests.
      delay = nil
   end
   -- A different sequence per thread: the address of a fresh table differs per state.
   math.randomseed(os.time() + tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16))
   prefix = string.format("b%x-%06x-", os.time(), math.random(0, 0xffffff))
end

function delay()
   return math.random() * 2 * pause_ms
end

function request()
   local member = members[math.random(#members)]
   counter = counter + 1
   local body = member.body_head .. prefix .. counter .. '"}'
   return wrk.format("POST", nil, {
      ["Authorization"] = member.auth,
      ["Content-Type"] = "application/json",
   }, body)
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
