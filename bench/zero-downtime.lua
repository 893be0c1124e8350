-- wrk script for bench/zero-downtime.sh: counts non-2xx answers (wrk's own
-- "status" errors are only >= 400) and prints one parsable line at the end:
--   RESULT requests=N non2xx=N connect=N read=N write=N timeout=N p50_ms=X p99_ms=Y
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  for _, t in ipairs(threads) do
    non2xx_total = non2xx_total + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, non2xx_total, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
