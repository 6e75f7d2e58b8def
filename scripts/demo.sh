#!/usr/bin/env bash
# make demo: the registrar from configs/registrar.yaml, and two SIP user
# agents (sipp) that register as alice and bob and call each other through
# it. Everything runs on loopback and is stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

sed -e "s#data_dir: data/registrar#data_dir: $work/data#" configs/registrar.yaml > "$work/registrar.yaml"
echo "== starting the registrar (configs/registrar.yaml, data in $work/data)"
bin/registrar -config "$work/registrar.yaml" 2> "$work/registrar.log" &
pids+=($!)
reg=$!
for _ in $(seq 50); do
  kill -0 "$reg" 2>/dev/null || { cat "$work/registrar.log"; echo "demo: the registrar did not start (is 5060 or 9060 taken?)"; exit 1; }
  curl -sf http://127.0.0.1:9060/healthz >/dev/null 2>&1 && break
  sleep 0.1
done

fill() { # scenario, then KEY=VALUE pairs
  local f=$1; shift
  local out="$work/$(basename "$f")"
  cp "$PWD/integration/sipp/$f" "$out"
  for kv in "$@"; do sed -i "s#@${kv%%=*}@#${kv#*=}#g" "$out"; done
  echo "$out"
}
contact='<sip:[service]@[local_ip]:[local_port];transport=[transport]>'

echo "== bob registers over TCP and waits for calls"
bob_sf=$(fill register.xml "CONTACT=$contact" EXPIRES=3600 FINAL=200 HOLD=15000)
bob_ooc=$(fill uas.xml)
alice_sf=$(fill uac.xml)
(cd "$work" && exec sipp -sf "$bob_sf" -oocsf "$bob_ooc" -s bob -au bob -ap bob-secret \
  -t t1 -i 127.0.0.1 -p 5072 -m 1 -timeout 30s -nostdin -trace_msg 127.0.0.1:5060 > bob.out 2>&1) &
pids+=($!)
for _ in $(seq 50); do
  curl -s http://127.0.0.1:9060/registrations | grep -q '"sip:bob@' && break
  sleep 0.1
done
echo "== registrations:"
curl -s http://127.0.0.1:9060/registrations

echo "== alice (UDP) calls bob (TCP): INVITE, 407, INVITE with credentials, 180, 200, ACK, BYE"
if (cd "$work" && sipp -sf "$alice_sf" -key callee bob -s alice -au alice -ap alice-secret \
     -t u1 -i 127.0.0.1 -p 5071 -m 1 -timeout 20s -timeout_error -nostdin -trace_msg 127.0.0.1:5060 > alice.out 2>&1); then
  echo "== the call went through. The SIP ladder alice saw:"
  grep -hE "^(INVITE|ACK|BYE|SIP/2.0) " "$work"/uac_*_messages.log | sed 's/^/   /'
  echo "== metrics:"
  curl -s http://127.0.0.1:9060/metrics | grep -E "^sip_" | sed 's/^/   /'
  echo "demo: OK"
else
  echo "demo: the call failed"; tail -30 "$work/alice.out"; tail -30 "$work/registrar.log"; exit 1
fi
