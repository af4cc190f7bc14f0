#!/bin/sh
# order_sync.sh - the order-sync workflow of order_sync.c as a shell worker:
#
#   ORDER_SYNC_DIR=/tmp/shop cueq work orders -- sh order_sync.sh
#
# `cueq work` runs it once per execution, with the order name ("order-17")
# on standard input and CUEQ_EXECUTION_ID, CUEQ_LEASE_TOKEN and CUEQ_URL in
# its environment.  Each of the four steps (ensure_customer, create_invoice,
# mark_synced, send_email) is looked up in the execution's ledger first
# (`cueq step get`, exit status 5 when it is not there).  Only a missing
# step calls the third party, with the Idempotency-Key
# "cueq-$CUEQ_EXECUTION_ID-NAME" (the same on every delivery), and records
# the answer (`cueq step set ... --token $CUEQ_LEASE_TOKEN`).  If the lease
# has passed to another worker, the record is refused and the script stops;
# the new holder carries on from the ledger.
#
# The third parties are simulated in $ORDER_SYNC_DIR as by fake_api.c: one
# file KIND/KEY per Idempotency-Key, created exclusively (noclobber is
# O_CREAT|O_EXCL), and one line "ORDER KEY ID" in KIND.log per real
# creation, written before the object becomes readable.
# CUEQ names the cueq binary (default: cueq on PATH); ORDER_SYNC_STEP_DELAY
# (seconds, e.g. 0.05) pauses before each call, as a slow network would.
set -u

: "${ORDER_SYNC_DIR:?set ORDER_SYNC_DIR to the directory of the fake APIs}"
: "${CUEQ_EXECUTION_ID:?run me under cueq work}"
: "${CUEQ_LEASE_TOKEN:?run me under cueq work}"
CUEQ=${CUEQ:-cueq}
DELAY=${ORDER_SYNC_STEP_DELAY:-0}

order=$(cat)
case $order in
'' | *[!A-Za-z0-9._:-]*)
	echo "the payload '$order' is not an order name like order-17" >&2
	exit 2
	;;
esac
errf=$(mktemp) || exit 1
trap 'rm -f "$errf"' EXIT
trap 'exit 1' HUP INT TERM PIPE # the EXIT trap runs on these too

# api_create KIND KEY BODY: prints the ID of the KIND object created for
# Idempotency-Key KEY, creating it the first time (exit 3: KEY was used
# with another BODY).  Run it in a subshell ($(...)): it sets traps.
api_create() {
	obj=$ORDER_SYNC_DIR/$1/$2
	id=$(printf '%.3s' "$1")_$(date +%s%N)_$$
	mkdir -p "$ORDER_SYNC_DIR/$1" || return 1
	# A real API finishes a request whatever happens to its client: no
	# signal (a lost lease stops the script with SIGTERM) may cut this short.
	trap '' HUP INT TERM PIPE
	if (set -C && : >"$obj") 2>/dev/null; then
		printf '%s %s %s\n' "$order" "$2" "$id" >>"$ORDER_SYNC_DIR/$1.log" || return 1
		printf '%s\n%s\n' "$id" "$3" >"$obj.tmp.$$" && mv -f "$obj.tmp.$$" "$obj" || return 1
		trap 'exit 1' HUP INT TERM PIPE
		echo "$id"
		return 0
	fi
	trap 'exit 1' HUP INT TERM PIPE
	# Created before: wait (bounded) while that creation completes.
	tries=0
	while [ "$(wc -l <"$obj")" -lt 2 ]; do
		tries=$((tries + 1))
		if [ "$tries" -gt 250 ]; then
			echo "$obj stayed incomplete: its creator died mid-write" >&2
			return 1
		fi
		sleep 0.02
	done
	{ read -r id && read -r body; } <"$obj"
	if [ "$body" != "$3" ]; then
		echo "Idempotency-Key $2 was first used for '$body', now for '$3'" >&2
		return 3
	fi
	echo "$id"
}

# step NAME KIND BODY: prints the step's value, from the ledger or from one
# call to the third party that is then recorded in the ledger.
step() {
	value=$("$CUEQ" step get "$CUEQ_EXECUTION_ID" "$1" 2>"$errf")
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "$order (attempt ${CUEQ_ATTEMPT:-?}): $1 was done before: $value" >&2
		echo "$value"
		return 0
	fi
	if [ "$rc" -ne 5 ]; then # 5: not done yet; anything else is trouble
		cat "$errf" >&2
		return 1
	fi
	[ "$DELAY" = 0 ] || sleep "$DELAY"
	value=$(api_create "$2" "cueq-$CUEQ_EXECUTION_ID-$1" "$3") || return 1
	"$CUEQ" step set "$CUEQ_EXECUTION_ID" "$1" "$value" --token "$CUEQ_LEASE_TOKEN" >/dev/null ||
		return 1
	echo "$value"
}

customer=$(step ensure_customer customers "name=customer of $order") || exit 1
invoice=$(step create_invoice invoices "customer=$customer order=$order") || exit 1
record=$(step mark_synced synced "order=$order invoice=$invoice") || exit 1
mail=$(step send_email emails "to=$customer invoice=$invoice") || exit 1
echo "customer $customer invoice $invoice mail $mail (record $record)"
