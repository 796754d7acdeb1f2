-- Chained refresh-token rotation: POST /v1/auth/refresh {"refresh_token": T}, each answer's new
-- token going back into its thread's pool for a later request. A refresh token is single-use, so
-- each token is in flight on one connection at a time; a thread's pool must start with more
-- tokens than the thread has connections (wrk calls request() once more on the first thread to
-- check the script, spending one), or a connection finds it empty and sends a request that
-- fails.
--
--   BENCH_TOKENS_FILE=F BENCH_THREADS=T wrk -tT ... -s bench/wrk/refresh.lua URL
--
-- F holds one refresh token per line (each of its own session), shared out evenly between the
-- T threads; done() writes the tokens left in the pools back to F, so the next wrk run (the
-- measured window after the warm-up) continues the chains. (wrk gives setup() neither the
-- script's arguments nor the thread count, hence the environment.) done() prints the same
-- `BENCH_JSON {...}` line as request.lua.

-- Main state.
local threads = {}
local tokens = nil
local per_thread = 0
local tokens_file = os.getenv("BENCH_TOKENS_FILE")

function setup(thread)
   if tokens == nil then
      tokens = {}
      local file = assert(io.open(assert(tokens_file, "BENCH_TOKENS_FILE is not set"), "r"))
      for line in file:lines() do
         if line ~= "" then
            tokens[#tokens + 1] = line
         end
      end
      file:close()
      per_thread = math.floor(#tokens / tonumber(os.getenv("BENCH_THREADS") or "1"))
   end
   local share = {}
   for _ = 1, per_thread do
      share[#share + 1] = table.remove(tokens)
   end
   thread:set("pool", share)
   threads[#threads + 1] = thread
end

-- Thread states.
function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   -- After failed answers only: a request that cannot succeed, counted as an error.
   local token = table.remove(pool) or "none"
   return wrk.format(nil, nil, nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
   if status == 200 then
      local token = string.match(body, '"refresh_token":"([^"]+)"')
      if token then
         pool[#pool + 1] = token
      end
   end
end

-- Main state again: hand the chains' current links to the next run, then the summary.
function done(summary, latency, requests)
   local file = assert(io.open(tokens_file, "w"))
   for _, thread in ipairs(threads) do
      for _, token in ipairs(thread:get("pool") or {}) do
         file:write(token, "\n")
      end
   end
   for _, token in ipairs(tokens or {}) do
      file:write(token, "\n")
   end
   file:close()
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
