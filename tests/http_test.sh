#!/usr/bin/env bash
# http_test.sh CUEQD CUEQ DOC - the HTTP face as a script would use it, with
# curl against a real cueqd: every path of docs/HTTP.md, the
# Idempotency-Key rules (replay, 422, 409 while in progress) and the
# webhook duplicate rule across kill -9, signatures, problem+json errors,
# --auth's tokens, the browser guards, and a flood of connections; and
# every sh example of DOC (docs/HTTP.md), run in order, must work.
set -euo pipefail
cueqd=$1 cli=$2 doc=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cueq-http.XXXXXX")
pid=""
cleanup() {
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "http_test: $*" >&2
	[[ -f $tmp/body ]] && { echo "last body:" >&2; cat "$tmp/body" >&2; }
	[[ -f $tmp/cueqd.log ]] && { echo "broker log (tail):" >&2; tail -n 20 "$tmp/cueqd.log" >&2; }
	exit 1
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start [FLAGS...]: a broker on $tmp/data with fresh ports (keeps the data)
start() {
	port=$(free_port) hport=$(free_port)
	url=tcp://127.0.0.1:$port H=http://127.0.0.1:$hport
	"$cueqd" --data "$tmp/data" --listen "$url" --http "127.0.0.1:$hport" "$@" \
		>>"$tmp/cueqd.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		curl -s -o /dev/null "$H/v1/ping" && return 0
		kill -0 "$pid" 2>/dev/null || fail "cueqd exited at start"
		sleep 0.05
	done
	fail "cueqd did not answer on $H"
}
kill9() {
	kill -9 "$pid" && wait "$pid" 2>/dev/null || true
	pid=""
}
stop() {
	kill "$pid" && wait "$pid" || fail "cueqd did not stop cleanly"
	pid=""
}

# req METHOD PATH [CURL ARGS...]: $status, $tmp/body, $tmp/headers
req() {
	local m=$1 p=$2
	shift 2
	status=$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$m" "$@" "$H$p") ||
		fail "curl $m $p failed"
}
want() { [[ $status == "$1" ]] || fail "$2: status $status, want $1"; }
jf() { jq -r "$1" <"$tmp/body"; }
header() { tr -d '\r' <"$tmp/headers" | awk -v h="$(echo "$1" | tr 'A-Z' 'a-z')" \
	'{ n = tolower($1) } n == h ":" { sub(/^[^:]*: */, ""); print }'; }
problem() { # problem STATUS CODE WHAT: an RFC 9457 answer
	want "$1" "$3"
	[[ $(header Content-Type) == application/problem+json* ]] || fail "$3: not problem+json"
	[[ $(jf .code) == "$2" && $(jf .status) == "$1" && $(jf .type) == "urn:cueq:error:$2" ]] ||
		fail "$3: problem fields wrong"
	[[ -n $(jf .detail) && $(jf .detail) != null ]] || fail "$3: no detail"
}

start --hook deploys:key-header=X-Request-Id

# ---- the examples of docs/HTTP.md, in order, as a user would paste them ----
awk '/^```sh$/ { on = 1; next } /^```$/ { on = 0 } on' "$doc" >"$tmp/doc.sh"
# every path of the route table is documented
routes=$(dirname "$0")/../broker/http_api.c
n=0
while read -r method path; do
	re=$(printf '%s' "$path" | sed 's/\*/{[a-z]*}/g')
	grep -Eq "$re" "$doc" || fail "docs/HTTP.md does not document $method $path"
	n=$((n + 1))
done < <(sed -n 's/^\t{"\([A-Z]*\)", "\(\/[^"]*\)",.*/\1 \2/p' "$routes")
((n >= 25)) || fail "found only $n routes in $routes"
[[ $(grep -c curl "$tmp/doc.sh") -ge 20 ]] || fail "docs/HTTP.md has too few curl examples"
CUEQ_HTTP=$H bash -euo pipefail "$tmp/doc.sh" >"$tmp/doc.out" 2>&1 ||
	{ cat "$tmp/doc.out" >&2; fail "an example of docs/HTTP.md failed (its output is above)"; }
grep -qx 422 "$tmp/doc.out" || fail "the documented 422 did not happen"
stop
rm -rf "$tmp/data"
start

# ---- push, get, claim, ack (the paths of DESIGN.md) ----
req POST '/v1/queues/emails/jobs?priority=5&max_attempts=3' --data-binary 'hello world'
want 201 "push"
id=$(jf .execution_id)
[[ $id =~ ^[0-9a-f]{16}$ && $(jf .state) == ready && $(jf .duplicate) == false ]] || fail "push fields"
[[ $(header Location) == "/v1/executions/$id" ]] || fail "push Location"
[[ $(jf .durability) == synced ]] || fail "push durability"
req GET "/v1/executions/$id"
want 200 "get"
[[ $(jf .execution.payload) == 'hello world' && $(jf .execution.priority) == 5 &&
	$(jf .execution.max_attempts) == 3 && $(jf .execution.queue) == emails ]] || fail "get fields"
printf '\xff\xfe' >"$tmp/bin"
req POST /v1/queues/bin/jobs --data-binary @"$tmp/bin"
want 201 "push of bytes"
req GET "/v1/executions/$(jf .execution_id)"
[[ $(jf .execution.payload_base64) == '//4=' && $(jf .execution.payload) == null ]] ||
	fail "bytes that are not UTF-8 come as payload_base64"

req POST /v1/queues/emails/claim -H 'Content-Type: application/json' -d '{"max":1,"lease_ms":30000,"worker":"w1"}'
want 200 "claim"
[[ $(jf '.jobs[0].execution_id') == "$id" && $(jf '.jobs[0].attempt') == 1 &&
	$(jf '.jobs[0].payload') == 'hello world' ]] || fail "claim fields"
tok=$(jf '.jobs[0].lease_token')
req POST "/v1/executions/$id/extend" -H 'Content-Type: application/json' -d "{\"lease_token\":\"$tok\",\"lease_ms\":60000}"
want 200 "extend"
[[ $(jf .lease_deadline) =~ ^[0-9]+$ ]] || fail "extend fields"
req PUT "/v1/executions/$id/steps/charged?lease_token=$tok" --data-binary 'ch_123'
want 200 "step set"
req GET "/v1/executions/$id/steps/charged"
want 200 "step get"
[[ $(jf .value) == ch_123 ]] || fail "step value"
req GET "/v1/executions/$id/steps"
[[ $(jf '.steps | length') == 1 && $(jf '.steps[0].name') == charged ]] || fail "steps"
req GET "/v1/executions/$id/steps/missing"
problem 404 NOT_FOUND "a missing step"
[[ $(jf .missing) == step ]] || fail "a missing step says so"
req POST "/v1/executions/$id/ack" -H 'Content-Type: application/json' -d '{"lease_token":"0000000000000001","result":"x"}'
problem 409 STALE_LEASE "ack with another token"
req POST "/v1/executions/$id/ack" -H 'Content-Type: application/json' -d "{\"lease_token\":\"$tok\",\"result\":\"sent\"}"
want 200 "ack"
[[ $(jf .state) == succeeded ]] || fail "ack state"
req POST "/v1/executions/$id/ack" -H 'Content-Type: application/json' -d "{\"lease_token\":\"$tok\",\"result\":\"sent\"}"
want 200 "the same ack again"
req GET "/v1/executions/$id/wait?wait_ms=1000"
want 200 "wait"
[[ $(jf .finished) == true && $(jf .execution.result) == sent ]] || fail "wait fields"
[[ $(curl -s "$H/v1/executions/$id" | jq -r .execution.state) == succeeded ]] || fail "state after ack"
# and the nng face sees the same execution
[[ $("$cli" --url "$url" get "$id" --json | jq -r .state) == succeeded ]] || fail "the CLI sees another state"

# ---- a long poll over HTTP is served by a push from the other face ----
curl -s -o "$tmp/poll" -X POST "$H/v1/queues/poll/claim?wait_ms=10000" &
poller=$!
sleep 0.3
pushed=$("$cli" --url "$url" push poll 'wake up')
wait "$poller" || fail "the long poll failed"
[[ $(jq -r '.jobs[0].execution_id' <"$tmp/poll") == "$pushed" ]] || fail "the long poll did not get the push"

# ---- nack to dead, retry, purge, cancel, pause, limit, list, stats, cues ----
req POST /v1/queues/jobs/jobs --data-binary 'd1'
dead=$(jf .execution_id)
req POST /v1/queues/jobs/claim
tok=$(jf '.jobs[0].lease_token')
req POST "/v1/executions/$dead/nack" -H 'Content-Type: application/json' -d "{\"lease_token\":\"$tok\",\"error\":\"smtp down\",\"terminal\":true}"
want 200 "nack"
[[ $(jf .state) == dead ]] || fail "nack --terminal state"
req GET '/v1/queues/jobs/executions?state=dead'
want 200 "list"
[[ $(jf '.executions[0].execution_id') == "$dead" && $(jf '.executions[0].error') == 'smtp down' ]] || fail "list dead"
req POST "/v1/executions/$dead/retry"
want 200 "retry"
[[ $(jf .retried) == 1 ]] || fail "retry count"
[[ $(curl -s "$H/v1/executions/$dead" | jq -r .execution.state) == ready ]] || fail "retried is ready"
req POST "/v1/executions/$dead/retry"
problem 409 CONFLICT "retry of what is not dead"
req POST "/v1/executions/$dead/cancel"
want 200 "cancel"
[[ $(jf .state) == cancelled && $(jf .kind) == execution ]] || fail "cancel fields"
req POST '/v1/queues/jobs/purge?state=cancelled'
want 200 "purge"
[[ $(jf .purged) == 1 ]] || fail "purge count"
req POST /v1/queues/jobs/purge
problem 400 BAD_REQUEST "purge without a state"
req POST /v1/queues/emails/pause
want 200 "pause"
[[ $(jf .paused) == true ]] || fail "paused"
req GET /v1/queues/emails
want 200 "one queue"
[[ $(jf .queue) == emails && $(jf .paused) == true && $(jf .succeeded) == 1 ]] || fail "queue fields"
req POST /v1/queues/emails/resume
[[ $(jf .paused) == false ]] || fail "resumed"
req POST /v1/queues/emails/limit -H 'Content-Type: application/json' -d '{"concurrency":2}'
want 200 "limit"
[[ $(jf .limit.concurrency) == 2 ]] || fail "limit fields"
req GET /v1/queues
want 200 "stats"
[[ $(jf '[.queues[].queue] | index("emails") != null') == true ]] || fail "stats lists emails"
req GET /v1/queues/nothing-here
problem 404 NOT_FOUND "an unknown queue"
req POST '/v1/queues/ticks/jobs?every_ms=60000' --data-binary 'tick'
want 201 "a recurring cue"
cue=$(jf .cue_id)
req GET /v1/queues/ticks/cues
[[ $(jf '.cues[0].cue_id') == "$cue" && $(jf '.cues[0].next_fires | length') -ge 1 ]] || fail "cues"
req POST "/v1/cues/$cue/cancel"
[[ $(jf .kind) == cue ]] || fail "cancel a cue"
req POST /v1/jobs -H 'Content-Type: application/json' \
	-d '{"jobs":[{"queue":"many","payload":"a"},{"queue":"many","payload_base64":"//4="}]}'
want 200 "push many"
[[ $(jf '.results | length') == 2 && $(jf '.results[1].ok') == true ]] || fail "push many results"
for i in 1 2; do
	req POST /v1/jobs -H 'Content-Type: application/json' -H 'Idempotency-Key: batch-1' \
		-d '{"jobs":[{"queue":"many","payload":"b1"},{"queue":"many","payload":"b2"}]}'
	want 200 "push many with a key ($i)"
	[[ $i == 1 ]] && batch=$(cat "$tmp/body")
done
[[ $(cat "$tmp/body") == "$batch" && $(header Idempotent-Replayed) == true ]] || fail "push many replays"
[[ $(curl -s "$H/v1/queues/many" | jq -r .ready) == 4 ]] || fail "the replayed batch made nothing"
req POST /v1/ops/ack -H 'Content-Type: application/json' \
	-d '{"items":[{"execution_id":"0000000000000001","lease_token":"0000000000000001"}]}'
want 200 "a wire op by name"
[[ $(jf '.results[0].err') == NOT_FOUND ]] || fail "a batch ack answers per item"

# ---- unique keys and job idempotency keys ----
req POST '/v1/queues/u/jobs?unique=acct-1' --data-binary 'a'
holder=$(jf .execution_id)
req POST '/v1/queues/u/jobs?unique=acct-1' --data-binary 'b'
problem 409 CONFLICT "a unique key held"
[[ $(jf .holder) == "$holder" ]] || fail "the conflict names its holder"
req POST '/v1/queues/k/jobs?key=order-7' --data-binary 'a'
want 201 "push with a key"
kid=$(jf .execution_id)
req POST '/v1/queues/k/jobs?key=order-7' --data-binary 'a'
want 200 "the same key again"
[[ $(jf .duplicate) == true && $(jf .execution_id) == "$kid" ]] || fail "duplicate by key"
req POST '/v1/queues/k/jobs?key=order-7' --data-binary 'other'
problem 422 IDEMPOTENCY_MISMATCH "a key with another payload"

# ---- Idempotency-Key: replay, 422, and after kill -9 ----
req POST /v1/queues/pay/jobs -H 'Idempotency-Key: charge-1' --data-binary 'amount=5'
want 201 "first keyed push"
first=$(cat "$tmp/body")
[[ -z $(header Idempotent-Replayed) ]] || fail "a first answer is no replay"
req POST /v1/queues/pay/jobs -H 'Idempotency-Key: charge-1' --data-binary 'amount=5'
want 201 "the replay keeps the first status"
[[ $(cat "$tmp/body") == "$first" ]] || fail "the replay is the first body"
[[ $(header Idempotent-Replayed) == true ]] || fail "a replay says so"
req POST /v1/queues/pay/jobs -H 'Idempotency-Key: charge-1' --data-binary 'amount=6'
problem 422 IDEMPOTENCY_MISMATCH "the key with another body"
req POST '/v1/queues/pay/jobs?priority=1' -H 'Idempotency-Key: charge-1' --data-binary 'amount=5'
problem 422 IDEMPOTENCY_MISMATCH "the key with other options"
req POST /v1/queues/pay/jobs -H "Idempotency-Key: $(printf 'x%.0s' {1..300})" --data-binary 'a'
problem 400 BAD_REQUEST "a key too long"
kill9
start
req POST /v1/queues/pay/jobs -H 'Idempotency-Key: charge-1' --data-binary 'amount=5'
want 201 "the replay after kill -9"
[[ $(cat "$tmp/body") == "$first" && $(header Idempotent-Replayed) == true ]] ||
	fail "after kill -9 the replay is the first answer"
req POST /v1/queues/pay/jobs -H 'Idempotency-Key: charge-1' --data-binary 'amount=6'
problem 422 IDEMPOTENCY_MISMATCH "the key with another body after kill -9"
[[ $(curl -s "$H/v1/queues/pay" | jq -r .ready) == 1 ]] || fail "one execution for the key"

# ---- errors are problem+json; the guards ----
req GET /v1/nowhere
problem 404 NOT_FOUND "an unknown path"
req DELETE /v1/queues/emails/jobs
problem 405 METHOD_NOT_ALLOWED "a wrong method"
[[ $(jf .detail) == *POST* ]] || fail "405 names the methods"
req POST /v1/queues/emails/claim -H 'Content-Type: application/json' -d '{"max":'
problem 400 BAD_REQUEST "JSON that is not"
req POST /v1/queues/emails/claim -H 'Content-Type: text/plain' -d 'max=1'
problem 415 UNSUPPORTED_MEDIA_TYPE "a body that is not JSON"
req POST '/v1/queues/emails/claim?max=lots'
problem 400 BAD_REQUEST "a number that is not"
req POST '/v1/queues/emails/jobs?colour=red' --data-binary 'x'
problem 400 BAD_REQUEST "an unknown parameter"
[[ $(jf .detail) == *colour* ]] || fail "the unknown parameter is named"
req POST '/v1/queues/bad%20name/jobs' --data-binary 'x'
problem 400 BAD_REQUEST "a bad queue name"
head -c 5000000 /dev/zero >"$tmp/big"
req POST /v1/queues/emails/jobs --data-binary @"$tmp/big"
problem 413 TOO_LARGE "a body over --max-frame"
req GET /v1/queues -H 'Host: evil.example:7701'
problem 403 FORBIDDEN "a Host that is a name, without --auth"
req POST /v1/queues/emails/pause -H 'Origin: http://evil.example'
problem 403 FORBIDDEN "a cross-origin POST"
[[ $(curl -s "$H/v1/queues/emails" | jq -r .paused) == false ]] || fail "the refused request changed something"

# ---- hostile bytes on the socket: refused, nothing changes, still serving ----
python3 - "$hport" <<'PY' || fail "hostile HTTP input"
import socket, sys
port = int(sys.argv[1])
cases = [
    b"GARBAGE\r\n\r\n",
    b"\x00\xff" * 4000,
    b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 100000 + b"\r\n\r\n",
    b"POST /v1/queues/hostile/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999999\r\n\r\nx",
    b"POST /v1/queues/hostile/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
    b"POST /v1/queues/hostile/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n" + b"[" * 20000,
]
bad_job = b'{"jobs":[{"queue":"hostile","payload":"a"},{"queue":"hostile","priority":"high"}]}'
cases += [
    b"POST /v1/ops/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(bad_job)).encode() + b"\r\n\r\n" + bad_job,
    b"POST /v1/queues/hostile/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc",  # cut short
]
for c in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(c)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except OSError:
        pass  # closed on us: also a refusal
    s.close()
PY
req GET /v1/ping
want 200 "a ping after hostile input"
req GET /v1/queues/hostile
problem 404 NOT_FOUND "hostile input pushed nothing"

# ---- a flood of connections: all answered, nothing lost ----
seq 1 300 | xargs -P 64 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
	--data-binary 'job {}' "$H/v1/queues/flood/jobs" >"$tmp/codes"
[[ $(grep -c '^201$' "$tmp/codes") == 300 ]] || fail "flood: $(sort "$tmp/codes" | uniq -c | tr '\n' ' ')"
[[ $(curl -s "$H/v1/queues/flood" | jq -r .ready) == 300 ]] || fail "flood: not every push is there"
stop

# ---- 409 while the first of a key is in progress (every sync stalls 2 s) ----
CUEQ_FAULT=sync:1:slow:0 start
curl -s -o "$tmp/slow" -w '%{http_code}' -X POST -H 'Idempotency-Key: slow-1' --data-binary 's' \
	"$H/v1/queues/slow/jobs" >"$tmp/slow.code" &
slowpid=$!
sleep 0.5
req POST /v1/queues/slow/jobs -H 'Idempotency-Key: slow-1' --data-binary 's'
problem 409 CONFLICT "a key still in progress"
wait "$slowpid"
[[ $(cat "$tmp/slow.code") == 201 ]] || fail "the first of the slow key"
req POST /v1/queues/slow/jobs -H 'Idempotency-Key: slow-1' --data-binary 's'
want 201 "the slow key once answered"
[[ $(header Idempotent-Replayed) == true ]] || fail "the slow key replays once answered"
stop

# ---- storage faults under an HTTP push: never 2xx before it is durable, and a
# retry with the same Idempotency-Key makes exactly one execution ----
for fault in write:1:exit write:1:fail write:1:exit-after sync:1:exit; do
	rm -rf "$tmp/data"
	CUEQ_FAULT=$fault start
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Idempotency-Key: f-1' \
		--data-binary 'f' "$H/v1/queues/faulty/jobs") || true
	[[ $code != 2* ]] || fail "$fault: the push was answered $code before it was durable"
	wait "$pid" 2>/dev/null || true
	pid=""
	start
	req POST /v1/queues/faulty/jobs -H 'Idempotency-Key: f-1' --data-binary 'f'
	want 201 "$fault: the retry"
	case $fault in
	write:1:exit | write:1:fail)
		[[ -z $(header Idempotent-Replayed) ]] || fail "$fault: nothing was written, yet a replay" ;;
	*)
		[[ $(header Idempotent-Replayed) == true ]] || fail "$fault: written before the crash, yet no replay" ;;
	esac
	[[ $(curl -s "$H/v1/queues/faulty" | jq -r .ready) == 1 ]] || fail "$fault: not exactly one execution"
	stop
done
rm -rf "$tmp/data"

# ---- webhooks: GitHub's and Stripe's conventions, duplicates across kill -9 ----
printf 'gh-secret\n' >"$tmp/gh.secret"
printf 'whsec_test' >"$tmp/st.secret"
hooks=(--hook "github:key-header=X-GitHub-Delivery,signature=github,secret-file=$tmp/gh.secret"
	--hook "stripe:key-field=id,signature=stripe,secret-file=$tmp/st.secret"
	--hook "plain:key-header=X-Event-Id")
start "${hooks[@]}"
body='{"action":"opened","number":7}'
sig=sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac gh-secret -r | cut -d' ' -f1)
gh() { req POST /v1/hooks/github -H "X-GitHub-Delivery: $1" -H "X-Hub-Signature-256: $2" --data-binary "$body"; }
gh d-1 "$sig"
want 202 "a new GitHub delivery"
hid=$(jf .execution_id)
[[ $(curl -s "$H/v1/executions/$hid" | jq -r .execution.payload) == "$body" ]] || fail "the delivery's payload"
gh d-1 "$sig"
want 200 "a repeated GitHub delivery"
[[ $(jf .duplicate) == true && $(jf .execution_id) == "$hid" ]] || fail "the repeat names the first"
gh d-2 "sha256=$(printf '0%.0s' {1..64})"
problem 401 UNAUTHORIZED "a wrong signature"
gh d-2 ""
problem 401 UNAUTHORIZED "no signature"
ts=$(date +%s)
sbody='{"id":"evt_1","type":"charge.succeeded"}'
ssig=$(printf '%s.%s' "$ts" "$sbody" | openssl dgst -sha256 -hmac whsec_test -r | cut -d' ' -f1)
req POST /v1/hooks/stripe -H "Stripe-Signature: t=$ts,v1=$ssig" --data-binary "$sbody"
want 202 "a new Stripe event"
old=$((ts - 3600))
osig=$(printf '%s.%s' "$old" "$sbody" | openssl dgst -sha256 -hmac whsec_test -r | cut -d' ' -f1)
req POST /v1/hooks/stripe -H "Stripe-Signature: t=$old,v1=$osig" --data-binary "$sbody"
problem 401 UNAUTHORIZED "a Stripe signature an hour old"
req POST /v1/hooks/plain --data-binary 'no id'
problem 400 BAD_REQUEST "a delivery without its ID"
req POST /v1/hooks/nowhere -H 'X-Event-Id: 1' --data-binary 'x'
problem 404 NOT_FOUND "a queue with no hook"
kill9
start "${hooks[@]}"
gh d-1 "$sig"
want 200 "a repeated delivery after kill -9"
[[ $(jf .execution_id) == "$hid" ]] || fail "after kill -9 the repeat names the first"
req POST /v1/hooks/stripe -H "Stripe-Signature: t=$ts,v1=$ssig" --data-binary "$sbody"
want 200 "a repeated Stripe event after kill -9"
[[ $(curl -s "$H/v1/queues/github" | jq -r .ready) == 1 ]] || fail "one execution per delivery"
stop

# ---- --auth: the same tokens and roles ----
cat >"$tmp/auth" <<'EOF'
producer app  prod-token-0123456789
worker   w    work-token-0123456789
admin    ops  admin-token-012345678
EOF
start --auth "$tmp/auth" "${hooks[@]}"
req POST /v1/queues/a/jobs --data-binary 'x'
problem 401 UNAUTHORIZED "no token"
[[ $(header WWW-Authenticate) == Bearer* ]] || fail "401 asks for a bearer token"
req POST /v1/queues/a/jobs -H 'Authorization: Bearer nope-nope-nope-nope' --data-binary 'x'
problem 401 UNAUTHORIZED "an unknown token"
req POST /v1/queues/a/jobs -H 'Authorization: Bearer prod-token-0123456789' --data-binary 'x'
want 201 "a producer pushes"
req POST /v1/queues/a/claim -H 'Authorization: Bearer prod-token-0123456789'
problem 403 UNAUTHORIZED "a producer may not claim"
req POST /v1/queues/a/claim -H 'Authorization: Bearer work-token-0123456789'
want 200 "a worker claims"
req POST /v1/queues/a/pause -H 'Authorization: Bearer work-token-0123456789'
problem 403 UNAUTHORIZED "a worker may not pause"
req GET /v1/ping
want 200 "a ping needs no token"
gh d-9 "$sig"
want 202 "a signed webhook needs no token"
req POST /v1/hooks/plain -H 'X-Event-Id: 1' --data-binary 'x'
problem 401 UNAUTHORIZED "an unsigned webhook needs a token"
req GET /v1/queues -H 'Host: cueq.internal:7701' -H 'Authorization: Bearer admin-token-012345678'
want 200 "with --auth a Host name is fine"
stop

# ---- bad flags are refused with a sentence ----
for bad in "--http nowhere" "--http 10.1.2.3:80" "--hook x" "--hook q:key-header=A,signature=github" \
	"--hook q:key-header=A --http off"; do
	rc=0
	# shellcheck disable=SC2086 # each is a list of flags
	"$cueqd" --data "$tmp/data2" $bad >"$tmp/err" 2>&1 || rc=$?
	[[ $rc == 1 ]] || fail "cueqd $bad: exit $rc, want 1 (refused)"
	grep -q "^cueqd: " "$tmp/err" || fail "cueqd refused $bad without a word"
done
echo "http_test: ok"
