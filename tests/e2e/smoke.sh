#!/usr/bin/env bash
# End-to-end smoke test from a clean clone: run the README's quick-start command (the
# embedded stack: web, worker, beat, simulated terminal), wait until a demo account has
# synced at least twice with changed prices and the 1 s dispatcher tick is real, then stop.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
stop_demo() {
  [ -n "${pid:-}" ] || return 0
  kill -TERM -- -"$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do pgrep -f "$work/clone" >/dev/null || return 0; sleep 1; done
  pkill -9 -f "$work/clone" || true
}
trap 'status=$?; stop_demo; rm -rf "$work"; exit $status' EXIT
for port in 8000 8765 8766 9808 5555 4002 4102; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "smoke: port $port is already in use (another demo running?); stop it first"; exit 1
  fi
done
git clone --quiet "$src" "$work/clone"
cd "$work/clone"
# Reuse the source checkout's virtualenv packages through pip's cache, not its files.
demo_cmd=$(awk '/<!-- demo-command -->/{found=1; next} found && !/^```/{print; exit}' README.md)
echo "smoke: running '$demo_cmd' in a clean clone"
setsid bash -c "$demo_cmd" > "$work/demo.log" 2>&1 &
pid=$!

for _ in $(seq 1 300); do
  if curl -fsS http://127.0.0.1:8000/healthz > "$work/health.json" 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "smoke: the demo exited"; tail -50 "$work/demo.log"; exit 1; fi
  sleep 1
done
curl -fsS http://127.0.0.1:8000/healthz >/dev/null || { echo "smoke: web never answered"; tail -50 "$work/demo.log"; exit 1; }
.venv/bin/python manage.py sync_check --min-syncs 2 --timeout 180 || { tail -80 "$work/demo.log"; exit 1; }

# The dispatcher's beat tick is 1 s: over 10 s it must tick at least 8 times.
t0=$(.venv/bin/python - <<'PY'
import json, urllib.error, urllib.request
try:  # a 503 (a check failing for a moment) still carries the figures
    body = urllib.request.urlopen("http://127.0.0.1:8000/healthz").read()
except urllib.error.HTTPError as exc:
    body = exc.read()
print(json.loads(body)["dispatcher"]["ticks"])
PY
)
sleep 10
t1=$(.venv/bin/python - <<'PY'
import json, urllib.error, urllib.request
try:  # a 503 (a check failing for a moment) still carries the figures
    body = urllib.request.urlopen("http://127.0.0.1:8000/healthz").read()
except urllib.error.HTTPError as exc:
    body = exc.read()
print(json.loads(body)["dispatcher"]["ticks"])
PY
)
echo "smoke: dispatcher ticked $((t1 - t0)) times in 10 s"
[ $((t1 - t0)) -ge 8 ] || { echo "smoke: the 1 s tick is not real"; exit 1; }
curl -fsS http://127.0.0.1:8000/livez >/dev/null || { echo "smoke: /livez does not answer"; exit 1; }
curl -fsS http://127.0.0.1:8000/metrics | grep -E '^mt5_position_sync_total\{result="ok"\}' \
  || { echo "smoke: /metrics has no mt5_position_sync_total"; exit 1; }
curl -fsS http://127.0.0.1:9808/metrics | grep -E '^positions_fetch_duration_seconds_count' | head -2 \
  || { echo "smoke: the worker's metrics port has no positions_fetch_duration_seconds"; exit 1; }
curl -fsS -o /dev/null -w "smoke: admin login page HTTP %{http_code}\n" http://127.0.0.1:8000/admin/login/
# Flower: the worker is listed (basic auth from .env; refresh asks the workers now).
curl -fsS -u "$(grep ^FLOWER_BASIC_AUTH= .env | cut -d= -f2-)" \
  "http://127.0.0.1:5555/api/workers?refresh=1" > "$work/flower_workers.json" \
  || { echo "smoke: Flower's /api/workers did not answer"; grep flower "$work/demo.log" | tail -20; exit 1; }
.venv/bin/python - "$work/flower_workers.json" <<'PY' || { grep flower "$work/demo.log" | tail -20; exit 1; }
import json, sys
workers = json.load(open(sys.argv[1]))
names = [name for name in workers if name.startswith("celery@")]
print(f"smoke: Flower lists {names}")
sys.exit(0 if names else 1)
PY
# The owner's risk dashboard on the admin index, with figures.
.venv/bin/python - <<'PY' || { tail -40 "$work/demo.log"; exit 1; }
import http.cookiejar, re, urllib.parse, urllib.request
password = next(line.split("=", 1)[1].strip() for line in open(".env")
                if line.startswith("DEMO_OWNER_PASSWORD="))
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
base = "http://127.0.0.1:8000"
opener.open(f"{base}/admin/login/").read()
token = next(c.value for c in jar if c.name == "csrftoken")
form = urllib.parse.urlencode({"username": "owner", "password": password,
                               "csrfmiddlewaretoken": token, "next": "/admin/"}).encode()
request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=form,
                                 headers={"Referer": f"{base}/admin/login/"})
html = opener.open(request).read().decode()
assert 'id="risk-dashboard"' in html, "no risk dashboard on /admin/ for the owner"
totals = re.findall(r'class="num rd-equity">([\d,]+\.\d\d) (USD|EUR|GBP)<', html)
assert totals and all(float(v.replace(",", "")) > 0 for v, _ in totals), totals
assert re.search(r"<b>\d+</b><span>healthy</span>", html), "no sync figures"
print("smoke: the owner's dashboard shows total equity " + ", ".join(f"{v} {c}" for v, c in totals))
PY
# The demo bot's scripted imperfections, and the real 2017-04-23 weekend gap (~2 min in).
.venv/bin/python manage.py reconciliation_check --timeout 300 \
  --kinds missing,unexpected,manual,partial_fill,slippage,sl_tp_mismatch,closed_externally,gap \
  || { grep -E "demo bot|Traceback|Error" "$work/demo.log" | tail -40; tail -40 "$work/demo.log"; exit 1; }
# The over-leveraged demo account crosses its critical drawdown on that gap and is liquidated.
.venv/bin/python manage.py guard_check --timeout 180 || { tail -60 "$work/demo.log"; exit 1; }
# The IBKR paper accounts behind the IB Gateway stand-in sync, and the demo bot's close of
# one GOOG position shows IB's realized P&L.
.venv/bin/python manage.py shell -c '
import sys, time
from accounts.models import TradingAccount
from positions.models import Position
for _ in range(120):
    ib = TradingAccount.objects.filter(broker="ibkr")
    closed = Position.objects.filter(account__broker="ibkr", status="closed",
                                     realized_pnl__isnull=False).first()
    if ib.count() == 2 and all(a.sync_status == "healthy" for a in ib) and closed:
        figures = ", ".join(f"{a.login} {a.equity} {a.currency}" for a in ib)
        print(f"smoke: IBKR accounts healthy ({figures}); closed {closed.symbol} "
              f"realized {closed.realized_pnl}")
        sys.exit(0)
    time.sleep(1)
print("smoke: IBKR:", list(TradingAccount.objects.filter(broker="ibkr").values_list("login", "sync_status", "sync_error_message")))
sys.exit(1)
' || { grep -E "ibgateway|IBKR" "$work/demo.log" | tail -30; exit 1; }
echo "smoke: ok"
