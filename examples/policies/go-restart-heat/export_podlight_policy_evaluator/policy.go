// Restart heat: the whole strip shows how hot the node runs — green while no pod
// restarts, through yellow, to red at `hotRestarts` restarts of the worst pod. While
// any container is in CrashLoopBackOff the strip pulses red instead, animated on the
// snapshot's time and the "again in N ms" hint. An empty node is dark.
//
// Settings (JSON, optional): {"hotRestarts": 10, "brightness": 0.3, "pulseMs": 1000}.
// Missing settings: those defaults. Malformed settings: the defaults, and Configure
// reports the problem to podlight's log.
package export_podlight_policy_evaluator

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	witRuntime "go.bytecodealliance.org/pkg/wit/runtime"
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/podlight_policy_evaluator"
	"wit_component/podlight_policy_snapshot"
	"wit_component/podlight_policy_types"
)

type settings struct {
	HotRestarts uint32  `json:"hotRestarts"`
	Brightness  float64 `json:"brightness"`
	PulseMs     uint32  `json:"pulseMs"`
}

var defaults = settings{HotRestarts: 10, Brightness: 0.3, PulseMs: 1000}

// Animation steps: 25 a second is smooth enough for a pulse.
const stepMs = 40

var current = defaults

// Go's collector reads the clock, and a component may not call the host while the
// host is copying a value into it (cabi_realloc): a collection triggered by such a
// copy traps. So nothing collects on its own; an evaluation starts with a collection,
// where calling the host is allowed, once the heap has grown by 4 MiB.
func init() {
	debug.SetGCPercent(-1)
}

const collectAfter = 4 << 20

var heapAfterCollection uint64

func collectIfDue() {
	// What the host copied in for the last evaluation stays pinned until released
	// here: an export without arguments never releases it itself.
	witRuntime.Unpin()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	if stats.HeapAlloc-heapAfterCollection >= collectAfter {
		runtime.GC()
		runtime.ReadMemStats(&stats)
		heapAfterCollection = stats.HeapAlloc
	}
}

func Configure(text witTypes.Option[string]) witTypes.Result[witTypes.Unit, string] {
	current = defaults
	if text.Tag() == witTypes.OptionNone || text.Some() == "" {
		return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
	}
	parsed := defaults
	if err := json.Unmarshal([]byte(text.Some()), &parsed); err != nil {
		return witTypes.Err[witTypes.Unit, string](fmt.Sprintf("restart-heat settings: %v; using the defaults", err))
	}
	if parsed.HotRestarts == 0 || parsed.Brightness < 0 || parsed.Brightness > 1 || parsed.PulseMs < 2*stepMs {
		return witTypes.Err[witTypes.Unit, string]("restart-heat settings: hotRestarts ≥ 1, brightness 0–1 and pulseMs ≥ 80 are required; using the defaults")
	}
	current = parsed
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

func crashLooping(pod podlight_policy_types.Pod) bool {
	for _, c := range pod.Containers {
		if c.State.Tag() == podlight_policy_types.ContainerState_Waiting && c.State.Waiting() == "CrashLoopBackOff" {
			return true
		}
	}
	return false
}

func scale(v float64) uint8 {
	return uint8(v*current.Brightness*255 + 0.5)
}

// heatColour goes green (0) → yellow (0.5) → red (1).
func heatColour(heat float64) podlight_policy_types.Rgb {
	r, g := 2*heat, 2*(1-heat)
	if r > 1 {
		r = 1
	}
	if g > 1 {
		g = 1
	}
	return podlight_policy_types.Rgb{R: scale(r), G: scale(g), B: 0}
}

func Evaluate() witTypes.Result[podlight_policy_evaluator.Frame, string] {
	collectIfDue()
	leds := make([]podlight_policy_types.Rgb, podlight_policy_snapshot.LedCount())
	again := witTypes.None[uint32]()
	pods := podlight_policy_snapshot.Pods()
	var worst uint32
	worstPod := -1
	var loopingPods []uint32
	for i, pod := range pods {
		if pod.Restarts > worst || worstPod < 0 {
			worst = pod.Restarts
			worstPod = i
		}
		if crashLooping(pod) && len(loopingPods) < 64 {
			loopingPods = append(loopingPods, uint32(i))
		}
	}
	looping := len(loopingPods) > 0
	var colour podlight_policy_types.Rgb
	var rule string
	var behind []uint32
	switch {
	case len(pods) == 0:
		colour = podlight_policy_types.Rgb{}
		rule = "no pods: dark"
	case looping:
		rule = "a container in CrashLoopBackOff: pulsing red"
		behind = loopingPods
		// A triangle wave: dark at the start of each period, brightest half way.
		phase := float64(podlight_policy_snapshot.NowMs()%uint64(current.PulseMs)) / float64(current.PulseMs)
		level := 1 - 2*abs(phase-0.5)
		colour = podlight_policy_types.Rgb{R: scale(level), G: 0, B: 0}
		again = witTypes.Some[uint32](stepMs)
	default:
		heat := float64(worst) / float64(current.HotRestarts)
		if heat > 1 {
			heat = 1
		}
		colour = heatColour(heat)
		rule = fmt.Sprintf("the most restarts: %d of %d for red", worst, current.HotRestarts)
		behind = []uint32{uint32(worstPod)}
	}
	every := make([]uint32, len(leds))
	for i := range leds {
		leds[i] = colour
		every[i] = uint32(i)
	}
	reasons := []podlight_policy_evaluator.LedReason{{Leds: every, Rule: rule, Pods: behind}}
	return witTypes.Ok[podlight_policy_evaluator.Frame, string](podlight_policy_evaluator.Frame{Leds: leds, AgainAfterMs: again, Reasons: reasons})
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
