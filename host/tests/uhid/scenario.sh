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
# Lights of the other USB families: a blink(1) mk3 and a Luxafor Flag (no serial).
mkfifo /tmp/blink1.ctl
podlight emulate --family blink1 --serial 3000cafe </tmp/blink1.ctl >/tmp/blink1.log 2>&1 &
blink1=$!
exec 5>/tmp/blink1.ctl
mkfifo /tmp/flag.ctl
podlight emulate --family luxafor </tmp/flag.ctl >/tmp/flag.log 2>&1 &
flag=$!
exec 6>/tmp/flag.ctl

wait_for_node() {
  i=0
  while [ ! -e /dev/hidraw3 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
}
step() {
  echo "mark $1" >&3
  echo "mark $1" >&5
  echo "mark $1" >&6
  echo "== $1"
}
wait_for_node
# The Flag has no serial: podlight names it by its node, found here by its USB IDs.
flag_node=/dev/$(grep -l 'HID_ID=0003:000004D8:0000F372' /sys/class/hidraw/*/device/uevent | head -n1 | cut -d/ -f5)

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

step blink1-red
podlight set red --fade 0 --serial 3000cafe
echo "== rc $?"

step flag-green
podlight set green --fade 0 --serial "$flag_node"
echo "== rc $?"

# Lights of two families as one strip: the blink(1)'s two LEDs, then the Flag's six.
step two-families
podlight eval builtin "$(ls /data/*.json | head -n1)" --show --serial "3000cafe,$flag_node" --json
echo "== rc $?"

step blink1-hold
podlight set '#102030' --fade 0 --hold --serial 3000cafe &
holder=$!
sleep 1
step blink1-replug
echo unplug >&5
sleep 0.3
echo plug >&5
sleep 1.5
kill -TERM $holder
wait $holder
echo "== rc $?"

echo quit >&3
echo quit >&4
echo quit >&5
echo quit >&6
wait $stick $pro $blink1 $flag
sed 's/^/stick: /' /tmp/stick.log
sed 's/^/pro: /' /tmp/pro.log
sed 's/^/blink1: /' /tmp/blink1.log
sed 's/^/flag: /' /tmp/flag.log
