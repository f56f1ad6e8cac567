// blinkt: one LED per pod, oldest first, coloured by its state — the style of the
// Pimoroni Blinkt! cluster lights. Pods beyond the LED count are not shown; the last
// LED turns white when some are hidden, so a full strip never hides a problem silently
// (it is red instead if a hidden pod failed).
//
// Settings (JSON, optional): {"brightness": 0.0-1.0, "colors": {"failed": "#ff0000", …}}
// with any of the states deleting, failed, succeeded, pending, unready, running,
// unknown. Missing settings: the defaults below. Malformed settings: the defaults,
// and configure reports the problem to podlight's log.

import * as snapshot from "podlight:policy/snapshot@0.4.0";

const DEFAULT_COLORS = {
  deleting: [0, 0, 255],
  failed: [255, 0, 0],
  succeeded: [0, 0, 0],
  pending: [255, 160, 0],
  unready: [255, 160, 0],
  running: [0, 255, 0],
  unknown: [128, 0, 128],
};
const DEFAULT_BRIGHTNESS = 0.2;
const OVERFLOW = [255, 255, 255];

let colors = DEFAULT_COLORS;
let brightness = DEFAULT_BRIGHTNESS;

function parseHex(text) {
  const m = /^#?([0-9a-fA-F]{6})$/.exec(text);
  if (!m) throw `not a #rrggbb colour: ${JSON.stringify(text)}`;
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function configure(settings) {
  colors = DEFAULT_COLORS;
  brightness = DEFAULT_BRIGHTNESS;
  if (settings === null || settings.trim() === "") return;
  let parsed;
  try {
    parsed = JSON.parse(settings);
  } catch (e) {
    throw `blinkt settings are not JSON (${e}); using the defaults`;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw "blinkt settings are not a JSON object; using the defaults";
  }
  const chosen = { ...DEFAULT_COLORS };
  for (const [state, value] of Object.entries(parsed.colors ?? {})) {
    if (!(state in DEFAULT_COLORS)) throw `blinkt settings: no state ${state}; using the defaults`;
    try {
      chosen[state] = parseHex(String(value));
    } catch (e) {
      throw `blinkt settings: ${state}: ${e}; using the defaults`;
    }
  }
  const b = parsed.brightness ?? DEFAULT_BRIGHTNESS;
  if (typeof b !== "number" || b < 0 || b > 1) {
    throw "blinkt settings: brightness must be a number from 0 to 1; using the defaults";
  }
  colors = chosen;
  brightness = b;
}

function scaled([r, g, b]) {
  return { r: Math.round(r * brightness), g: Math.round(g * brightness), b: Math.round(b * brightness) };
}

function evaluate() {
  const ledCount = snapshot.ledCount();
  // Each pod keeps its index in the snapshot: reasons name pods by it.
  const pods = snapshot.pods().map((pod, index) => ({ pod, index }));
  // Oldest first; the UID breaks ties so the order never depends on list order.
  pods.sort(
    ({ pod: a }, { pod: b }) => a.createdMs - b.createdMs || (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0),
  );
  const leds = [];
  const reasons = [];
  for (let i = 0; i < ledCount; i++) {
    if (i < pods.length) {
      const { pod, index } = pods[i];
      leds.push(scaled(colors[pod.state]));
      reasons.push(reason(i, `pod number ${i + 1} by age, ${pod.state}`, [index]));
    } else {
      leds.push({ r: 0, g: 0, b: 0 });
    }
  }
  if (pods.length > ledCount && ledCount > 0) {
    const hidden = pods.slice(ledCount - 1);
    const failedHidden = hidden.filter(({ pod }) => pod.state === "failed");
    const failed = failedHidden.length > 0;
    leds[ledCount - 1] = scaled(failed ? colors.failed : OVERFLOW);
    reasons[ledCount - 1] = reason(
      ledCount - 1,
      failed ? `${hidden.length} pods not shown, some failed` : `${hidden.length} pods not shown`,
      (failed ? failedHidden : hidden).slice(0, 64).map(({ index }) => index),
    );
  }
  return { leds, againAfterMs: null, reasons, seeThrough: [] };
}

function reason(led, rule, pods) {
  return { leds: [led], rule, pods, nodes: [], alerts: [] };
}

export const evaluator = { configure, evaluate };
