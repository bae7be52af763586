-- Requests for `make bench` (bench/run.py), chosen by environment variables, and one JSON line of
-- results at the end (wrk's own summary is for people). Paths:
--   BENCH_MODE=fixed   the URL given on the command line
--   BENCH_MODE=rotate  BENCH_PREFIX .. id .. "/", ids BENCH_FIRST.. without repeats (cold caches)
--   BENCH_MODE=zipf    BENCH_PREFIX .. id .. "/", ids 1..BENCH_N drawn from Zipf(BENCH_S)
local mode = os.getenv("BENCH_MODE") or "fixed"
local prefix = os.getenv("BENCH_PREFIX") or "/"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

local next_id, stride, cdf, n

function init(args)
  stride = tonumber(os.getenv("BENCH_THREADS") or "2")
  next_id = tonumber(os.getenv("BENCH_FIRST") or "1") + thread_number - 1
  if mode == "zipf" then
    n = tonumber(os.getenv("BENCH_N") or "10000")
    local s = tonumber(os.getenv("BENCH_S") or "1.1")
    cdf = {}
    local total = 0
    for k = 1, n do
      total = total + 1 / k ^ s
      cdf[k] = total
    end
    for k = 1, n do cdf[k] = cdf[k] / total end
    math.randomseed(os.time() * 1000 + thread_number)
  end
end

local function zipf_id()
  local u, low, high = math.random(), 1, n
  while low < high do
    local mid = math.floor((low + high) / 2)
    if cdf[mid] < u then low = mid + 1 else high = mid end
  end
  return low
end

function request()
  if mode == "rotate" then
    local id = next_id
    next_id = next_id + stride
    return wrk.format(nil, prefix .. id .. "/")
  elseif mode == "zipf" then
    return wrk.format(nil, prefix .. zipf_id() .. "/")
  end
  return wrk.request()
end

-- Zipf: count each response's X-Cache as the client saw it (a request that waited for another's
-- fill of the same entry is served from it: HIT here, though the gateway's metrics say MISS).
seen = {}  -- global: done() reads it from each thread with thread:get
if mode == "zipf" then
  function response(status, headers, body)
    local outcome = headers["x-cache"] or headers["X-Cache"] or "none"
    seen[outcome] = (seen[outcome] or 0) + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local totals = {}
  for _, thread in ipairs(threads) do
    for outcome, count in pairs(thread:get("seen") or {}) do
      totals[outcome] = (totals[outcome] or 0) + count
    end
  end
  local parts = {}
  for outcome, count in pairs(totals) do
    parts[#parts + 1] = string.format('"%s": %d', outcome, count)
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "socket_errors": %d, ' ..
    '"bad_status": %d, "x_cache": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, table.concat(parts, ", ")))
end
