-- Sign-ups with a new address each: POST {"email": "<run>-<process>-<thread>-<n>@bench.test",
-- "password"} (<process> tells apart the wrk runs of one scenario's windows).
--
--   wrk ... -s bench/wrk/sign_up.lua URL -- RUN_PREFIX PASSWORD
--
-- done() prints the same `BENCH_JSON {...}` line as request.lua.

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("thread_number", threads)
end

local counter = 0
local prefix = "run"
local password = ""
local process = 0

function init(args)
   math.randomseed(os.time() + (thread_number or 0) * 7919)
   process = math.random(1, 2000000000)
   prefix = args[1] or prefix
   password = args[2] or ""
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local body = string.format('{"email":"%s-%d-%d-%d@bench.test","password":"%s"}',
                              prefix, process, thread_number or 0, counter, password)
   return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
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
