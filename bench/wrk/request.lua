-- One request shape for every wrk scenario of bench/run, and a machine-readable summary.
--
--   wrk ... -s bench/wrk/request.lua URL -- METHOD [CONTENT_TYPE BODY]
--
-- Headers (Authorization, Cookie) come from wrk's -H. done() prints one line
-- `BENCH_JSON {...}` with requests, duration, errors and latency percentiles (microseconds).

function init(args)
   wrk.method = args[1] or "GET"
   if args[2] and args[2] ~= "" then
      wrk.headers["Content-Type"] = args[2]
   end
   if args[3] and args[3] ~= "" then
      wrk.body = args[3]
   end
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
