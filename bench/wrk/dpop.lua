-- Requests that each carry a fresh DPoP proof (RFC 9449): a proof is single-use, so every
-- request takes the next one of its thread's pool.
--
--   BENCH_PROOFS_FILE=F BENCH_THREADS=T wrk -tT ... -s bench/wrk/dpop.lua URL -- METHOD CONTENT_TYPE BODY
--
-- F holds one proof per line (bench/run makes them with the crypto-ceiling program right
-- before the scenario), shared out evenly between the T threads; done() writes the proofs not
-- sent back to F, so the next wrk run (the measured window after the warm-up) goes on with
-- unused ones. A thread whose pool ran dry sends "none", which the server refuses: an error
-- in the summary, never a silent replay. Headers (Authorization) come from wrk's -H. done()
-- prints the same `BENCH_JSON {...}` line as request.lua.

-- Main state.
local threads = {}
local proofs = nil
local per_thread = 0
local proofs_file = os.getenv("BENCH_PROOFS_FILE")

function setup(thread)
   if proofs == nil then
      proofs = {}
      local file = assert(io.open(assert(proofs_file, "BENCH_PROOFS_FILE is not set"), "r"))
      for line in file:lines() do
         if line ~= "" then
            proofs[#proofs + 1] = line
         end
      end
      file:close()
      per_thread = math.floor(#proofs / tonumber(os.getenv("BENCH_THREADS") or "1"))
   end
   local share = {}
   for _ = 1, per_thread do
      share[#share + 1] = table.remove(proofs)
   end
   thread:set("pool", share)
   threads[#threads + 1] = thread
end

-- Thread states.
function init(args)
   wrk.method = args[1] or "POST"
   if args[2] and args[2] ~= "" then
      wrk.headers["Content-Type"] = args[2]
   end
   if args[3] and args[3] ~= "" then
      wrk.body = args[3]
   end
end

function request()
   wrk.headers["DPoP"] = table.remove(pool) or "none"
   return wrk.format()
end

-- Main state again: hand the unused proofs to the next run, then the summary.
function done(summary, latency, requests)
   local file = assert(io.open(proofs_file, "w"))
   for _, thread in ipairs(threads) do
      for _, proof in ipairs(thread:get("pool") or {}) do
         file:write(proof, "\n")
      end
   end
   for _, proof in ipairs(proofs or {}) do
      file:write(proof, "\n")
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
