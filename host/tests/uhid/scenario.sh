# Runs inside the uhid VM (see scripts/uhid-vm): podlight against a virtual stick
# through hidapi, hidraw and uhid. The stick's log is printed at the end, prefixed
# "stick: "; "== step" and "== rc N" lines frame each command's own output.
# /data holds the snapshot to evaluate.
export RUST_LOG=warn
model=strip
mkfifo /tmp/stick.ctl
podlight emulate --model $model --serial BS012345-3.1 </tmp/stick.ctl >/tmp/stick.log 2>&1 &
stick=$!
exec 3>/tmp/stick.ctl
# A second stick of another model, to be picked by serial.
mkfifo /tmp/pro.ctl
podlight emulate --model pro --serial BS000777-3.0 </tmp/pro.ctl >/tmp/pro.log 2>&1 &
pro=$!
exec 4>/tmp/pro.ctl

wait_for_node() {
  i=0
  while [ ! -e /dev/hidraw1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
}
step() {
  echo "mark $1" >&3
  echo "== $1"
}
wait_for_node

step devices-unknown-model
podlight devices --json
echo "== rc $?"

step devices
podlight devices --json --model $model
echo "== rc $?"

step set-red
podlight set red --fade 0 --model $model --serial BS012345-3.1
echo "== rc $?"

step pro-red
podlight set red --fade 0 --model pro --leds 8 --serial BS000777-3.0
echo "== rc $?"

step eval
podlight eval builtin "$(ls /data/*.json | head -n1)" --show --model $model --serial BS012345-3.1 --json
echo "== rc $?"

step fade-blue
podlight set blue --fade 300 --model $model --serial BS012345-3.1
echo "== rc $?"

step hold-green
podlight set green --fade 0 --hold --model $model --serial BS012345-3.1 &
holder=$!
sleep 1
step replug
echo unplug >&3
sleep 0.3
echo plug >&3
sleep 1.5
kill -TERM $holder
wait $holder
echo "== rc $?"

echo quit >&3
echo quit >&4
wait $stick $pro
sed 's/^/stick: /' /tmp/stick.log
sed 's/^/pro: /' /tmp/pro.log
