# test/lib/tap.sh — TAP output for shell tests
TAP_N=0
TAP_FAILED=0
tap_ok() {  # tap_ok <0|1 result of a test command> <description>
  TAP_N=$((TAP_N + 1))
  if [ "$1" -eq 0 ]; then echo "ok $TAP_N - $2"; else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
tap_is() {  # tap_is <got> <want> <description>
  TAP_N=$((TAP_N + 1))
  if [ "$1" = "$2" ]; then echo "ok $TAP_N - $3"
  else echo "not ok $TAP_N - $3"; echo "#   got:  '$1'"; echo "#   want: '$2'"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
tap_skip() {  # tap_skip <description> <reason>
  TAP_N=$((TAP_N + 1))
  echo "ok $TAP_N - $1 # skip $2"
}
tap_done() {
  echo "1..$TAP_N"
  [ "$TAP_FAILED" -eq 0 ]
}
