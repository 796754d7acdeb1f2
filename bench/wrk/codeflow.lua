-- The authorization-code flow of a signed-in browser, as wrk requests: GET /oauth2/authorize
-- (with the browser's session cookie; PKCE S256) answers a redirect carrying a code, and the
-- code goes into the thread's queue; the next request the thread sends takes a queued code to
-- POST /oauth2/token (client_secret_basic, the PKCE verifier). Each flow is those two requests.
--
--   wrk ... -s bench/wrk/codeflow.lua URL -- CLIENT_ID CLIENT_SECRET_BASIC COOKIE REDIRECT_URI
--
-- CLIENT_SECRET_BASIC is the whole Authorization header value ("Basic ..."), COOKIE the whole
-- Cookie header value. done() prints the same `BENCH_JSON {...}` line as request.lua, with
-- `requests` = completed flows (token answers with an access token) and `http_requests`;
-- latencies are those of single requests (wrk times requests, not flows).

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

-- A fixed PKCE pair: challenge = BASE64URL(SHA-256(verifier)), which the server checks.
local verifier = "dBjftJeZ4CVP-mJ92K9kCTdDpHmvhh8bBTuFRG82g8M"
local challenge = "E6HGHs4-l-sOyms1IgFnH1pF2x9IPrbbLpqI5rfVSL4"

local function escape(text)
   return (string.gsub(text, "[^%w%-%._~]", function(c)
      return string.format("%%%02X", string.byte(c))
   end))
end

local authorize_base, token_headers, cookie_headers, token_body_tail
local codes = {}
local sent = 0
flows = 0

function init(args)
   local client_id, basic, cookie, redirect_uri = args[1], args[2], args[3], args[4]
   authorize_base = "/oauth2/authorize?response_type=code&client_id=" .. escape(client_id)
      .. "&redirect_uri=" .. escape(redirect_uri) .. "&scope=openid"
      .. "&code_challenge=" .. challenge .. "&code_challenge_method=S256"
   token_headers = {
      ["Authorization"] = basic,
      ["Content-Type"] = "application/x-www-form-urlencoded",
   }
   cookie_headers = { ["Cookie"] = cookie }
   token_body_tail = "&redirect_uri=" .. escape(redirect_uri) .. "&code_verifier=" .. verifier
end

function request()
   local code = table.remove(codes)
   if code then
      return wrk.format("POST", "/oauth2/token", token_headers,
                        "grant_type=authorization_code&code=" .. code .. token_body_tail)
   end
   sent = sent + 1
   return wrk.format("GET", authorize_base .. "&state=s" .. sent .. "&nonce=n" .. sent,
                     cookie_headers, nil)
end

function response(status, headers, body)
   if status == 302 or status == 303 then
      local location = headers["Location"] or headers["location"] or ""
      local code = string.match(location, "[?&]code=([^&]+)")
      if code then
         codes[#codes + 1] = code
      end
   elseif status == 200 and string.find(body, '"access_token"', 1, true) then
      flows = flows + 1
   end
end

function done(summary, latency, requests)
   local completed = 0
   for _, thread in ipairs(threads) do
      completed = completed + (thread:get("flows") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"http_requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      completed, summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
