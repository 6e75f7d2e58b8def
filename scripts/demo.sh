#!/usr/bin/env bash
# make demo: the registrar from configs/registrar.yaml and two phones,
# alice and bob (configs/alice.yaml, configs/bob.yaml), on loopback. Alice
# sends a 1000 Hz tone and calls bob, who answers with a 440 Hz tone; each
# records what it hears. Both print their call summary, and everything is
# stopped by PID at the end.
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
echo "== starting the registrar (configs/registrar.yaml)"
bin/registrar -config "$work/registrar.yaml" 2> "$work/registrar.log" &
reg=$!
pids+=($reg)
for _ in $(seq 50); do
  kill -0 "$reg" 2>/dev/null || { cat "$work/registrar.log"; echo "demo: the registrar did not start (is 5060 or 9060 taken?)"; exit 1; }
  curl -sf http://127.0.0.1:9060/healthz >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== bob registers and waits, answering with a 440 Hz tone"
bin/phone -config configs/bob.yaml -auto-answer -play tone:440 -record "$work/bob-heard.wav" \
  -exit-after-call < /dev/null > "$work/bob.out" 2> "$work/bob.log" &
bob=$!
pids+=($bob)
for _ in $(seq 50); do
  curl -s http://127.0.0.1:9060/registrations | grep -q '"sip:bob@' && break
  sleep 0.1
done

echo "== alice calls bob with a 1000 Hz tone, sends DTMF 123, and hangs up after 5 s"
if ! timeout 30 bin/phone -config configs/alice.yaml -call bob -play tone:1000 -record "$work/alice-heard.wav" \
     -dtmf 123 -dtmf-at 4200ms -hangup-after 5s -exit-after-call < /dev/null > "$work/alice.out" 2> "$work/alice.log"; then
  echo "demo: alice's phone failed"; tail -20 "$work/alice.log" "$work/registrar.log"; exit 1
fi
wait "$bob" || { echo "demo: bob's phone failed"; tail -20 "$work/bob.log"; exit 1; }
echo "== alice:"; sed 's/^/   /' "$work/alice.out"
echo "== bob:";   sed 's/^/   /' "$work/bob.out"
grep -q "^\[ended\]" "$work/alice.out" && grep -q "^\[ended\]" "$work/bob.out" || { echo "demo: a call summary is missing"; exit 1; }
echo "== recordings: $(du -h "$work/alice-heard.wav" | cut -f1) heard by alice, $(du -h "$work/bob-heard.wav" | cut -f1) by bob"
echo "demo: OK"
