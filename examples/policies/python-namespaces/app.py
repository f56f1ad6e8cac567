"""Namespace colours: one LED per namespace on the node, in name order, in the colour
the settings give it; how bright it is shows how ready it is — the share of its pods
that are running and ready (a dim glow while none are, full when all are). A namespace
with a failed pod blinks between its colour and red once a second, on the snapshot's
time and the "again in N ms" hint.

Settings (JSON, optional):
    {"colors": {"team-a": "#00a0ff", "default": "#ffffff"}, "brightness": 0.4}
Namespaces not named take "default" (white unless set). Missing settings: those
defaults. Malformed settings: the defaults, and configure reports the problem to
podlight's log.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.evaluator import Frame, LedReason
from wit_world.imports import snapshot
from wit_world.imports.types import PodState, Rgb

DEFAULT_COLORS = {"default": (255, 255, 255)}
DEFAULT_BRIGHTNESS = 0.4
# A namespace with no ready pod still shows, dimly.
FLOOR = 0.1
BLINK_MS = 1000
RED = (255, 0, 0)

_colors = dict(DEFAULT_COLORS)
_brightness = DEFAULT_BRIGHTNESS


def _parse_hex(text):
    text = str(text).lstrip("#")
    if len(text) != 6:
        raise ValueError(f"not a #rrggbb colour: {text!r}")
    value = int(text, 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _configure(settings):
    if settings is None or not settings.strip():
        return dict(DEFAULT_COLORS), DEFAULT_BRIGHTNESS
    parsed = json.loads(settings)
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    colors = dict(DEFAULT_COLORS)
    for namespace, value in (parsed.get("colors") or {}).items():
        colors[namespace] = _parse_hex(value)
    brightness = parsed.get("brightness", DEFAULT_BRIGHTNESS)
    if not isinstance(brightness, (int, float)) or not 0 <= brightness <= 1:
        raise ValueError("brightness must be a number from 0 to 1")
    return colors, float(brightness)


def _scaled(color, level):
    return Rgb(*(round(c * level * _brightness) for c in color))


class Evaluator(exports.Evaluator):
    def configure(self, settings):
        global _colors, _brightness
        _colors, _brightness = dict(DEFAULT_COLORS), DEFAULT_BRIGHTNESS
        try:
            _colors, _brightness = _configure(settings)
        except (ValueError, TypeError, AttributeError) as problem:
            raise Err(f"namespaces settings: {problem}; using the defaults")

    def evaluate(self):
        namespaces = {}
        # Which pods of each namespace failed (indices into the snapshot's pods).
        failing = {}
        for index, pod in enumerate(snapshot.pods()):
            ready, total, failed = namespaces.get(pod.namespace, (0, 0, False))
            is_failed = pod.state == PodState.FAILED
            namespaces[pod.namespace] = (
                ready + (pod.state == PodState.RUNNING),
                total + 1,
                failed or is_failed,
            )
            if is_failed:
                failing.setdefault(pod.namespace, []).append(index)
        blink_on = snapshot.now_ms() % BLINK_MS < BLINK_MS // 2
        leds = []
        reasons = []
        any_failed = False
        for led, namespace in enumerate(sorted(namespaces)[: snapshot.led_count()]):
            ready, total, failed = namespaces[namespace]
            color = _colors.get(namespace, _colors["default"])
            rule = f"namespace {namespace}: {ready} of {total} pods running and ready"
            if failed:
                any_failed = True
                color = RED if blink_on else color
                rule += ", blinking red: a pod failed"
            leds.append(_scaled(color, max(FLOOR, ready / total)))
            reasons.append(
                LedReason(leds=[led], rule=rule, pods=failing.get(namespace, [])[:64], nodes=[], alerts=[])
            )
        return Frame(
            leds=leds,
            again_after_ms=BLINK_MS // 2 if any_failed else None,
            reasons=reasons,
            see_through=[],
        )
