// Command device-plugin is a Kubernetes device plugin that advertises host device
// nodes matching path globs as an extended resource and hands one to each container
// that requests it. It takes the `--device` YAML of squat/generic-device-plugin
// (name, groups of paths, count) and the same `--domain`, so deploy/overlays/
// device-plugin runs it unchanged; the test node uses it because the Go module proxy
// does not serve that project. Only what podlight's overlay uses is supported: path
// globs, one device per group entry, no USB matching, no mount paths.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"sigs.k8s.io/yaml"
)

// deviceSpec is the subset of squat/generic-device-plugin's `--device` YAML used here.
type deviceSpec struct {
	Name   string `json:"name"`
	Groups []struct {
		Count int `json:"count"`
		Paths []struct {
			Path string `json:"path"`
		} `json:"paths"`
	} `json:"groups"`
}

type devices []string

func (d *devices) String() string     { return fmt.Sprint(*d) }
func (d *devices) Set(v string) error { *d = append(*d, v); return nil }

// rescan is how often the globs are matched again, so a stick plugged in later (or a
// udev link that appears later) is advertised.
const rescan = 2 * time.Second

func main() {
	var specs devices
	flag.Var(&specs, "device", "a device to advertise, as YAML (name, groups[].paths[].path); repeatable")
	domain := flag.String("domain", "squat.ai", "the resource's domain: DOMAIN/NAME")
	dir := flag.String("plugin-directory", pluginapi.DevicePluginPath, "the kubelet's device-plugin directory")
	flag.Parse()
	if len(specs) == 0 {
		log.Fatal("no --device given: nothing to advertise")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for _, text := range specs {
		var spec deviceSpec
		if err := yaml.UnmarshalStrict([]byte(text), &spec); err != nil {
			log.Fatalf("--device %q: %v", text, err)
		}
		var globs []string
		for _, group := range spec.Groups {
			for _, path := range group.Paths {
				globs = append(globs, path.Path)
			}
		}
		if spec.Name == "" || len(globs) == 0 {
			log.Fatalf("--device %q: needs a name and at least one path", text)
		}
		p := &plugin{resource: *domain + "/" + spec.Name, globs: globs, dir: *dir}
		go p.run(ctx)
	}
	<-ctx.Done()
}

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	resource string
	globs    []string
	dir      string
}

// matches lists the device nodes the globs match now, by path (which is the ID).
func (p *plugin) matches() []string {
	var found []string
	for _, glob := range p.globs {
		paths, _ := filepath.Glob(glob)
		for _, path := range paths {
			// A udev link counts when what it points to is a character device.
			if info, err := os.Stat(path); err == nil && info.Mode()&os.ModeCharDevice != 0 {
				found = append(found, path)
			}
		}
	}
	sort.Strings(found)
	return found
}

// run serves and registers, and does both again whenever the kubelet restarts (it
// then deletes every socket in its directory, ours included).
func (p *plugin) run(ctx context.Context) {
	socket := filepath.Join(p.dir, "podlight-"+filepath.Base(p.resource)+".sock")
	for ctx.Err() == nil {
		_ = os.Remove(socket)
		listener, err := net.Listen("unix", socket)
		if err != nil {
			log.Printf("%s: cannot listen on %s: %v; retrying", p.resource, socket, err)
			sleep(ctx, rescan)
			continue
		}
		server := grpc.NewServer()
		pluginapi.RegisterDevicePluginServer(server, p)
		go func() { _ = server.Serve(listener) }()
		if err := p.register(ctx, filepath.Base(socket)); err != nil {
			log.Printf("%s: cannot register with the kubelet: %v; retrying", p.resource, err)
			server.Stop()
			sleep(ctx, rescan)
			continue
		}
		log.Printf("%s: registered with the kubelet, serving on %s", p.resource, socket)
		for ctx.Err() == nil {
			if _, err := os.Stat(socket); err != nil {
				log.Printf("%s: the kubelet removed our socket (restarted?); registering again", p.resource)
				break
			}
			sleep(ctx, rescan)
		}
		server.Stop()
	}
	_ = os.Remove(socket)
}

func (p *plugin) register(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+filepath.Join(p.dir, filepath.Base(pluginapi.KubeletSocket)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     endpoint,
		ResourceName: p.resource,
	})
	return err
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the matching devices, then again whenever they change.
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	var sent []string
	first := true
	for {
		now := p.matches()
		if first || !reflect.DeepEqual(now, sent) {
			response := &pluginapi.ListAndWatchResponse{}
			for _, path := range now {
				response.Devices = append(response.Devices, &pluginapi.Device{ID: path, Health: pluginapi.Healthy})
			}
			if err := stream.Send(response); err != nil {
				return err
			}
			log.Printf("%s: advertising %d device(s): %v", p.resource, len(now), now)
			sent, first = now, false
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-time.After(rescan):
		}
	}
}

// Allocate hands each requested device node to the container at the same path,
// read-write (the runtime adds it to the container's device cgroup).
func (p *plugin) Allocate(_ context.Context, request *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	response := &pluginapi.AllocateResponse{}
	for _, container := range request.ContainerRequests {
		allocation := &pluginapi.ContainerAllocateResponse{}
		for _, id := range container.DevicesIds {
			allocation.Devices = append(allocation.Devices, &pluginapi.DeviceSpec{
				ContainerPath: id,
				HostPath:      id,
				Permissions:   "rw",
			})
		}
		response.ContainerResponses = append(response.ContainerResponses, allocation)
	}
	return response, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
