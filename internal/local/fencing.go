package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
)

// The user's fencing and hibernation requests live in fencing.json in the
// state directory, in the form of CloudNativePG's annotations (a list of
// instance names or ["*"], on/off). Until `pgward local fence` or
// `hibernate` writes it, the manifest's own annotations
// (cnpg.io/fencedInstances, cnpg.io/hibernation) hold; once written, the
// file does. The controller reads it at every step, and checks it as it
// checks the annotations (v1.Cluster.Fenced/Hibernated), so a damaged file
// stops no cluster: it is reported and the last good request stays.

func fencingFile(l Layout) string { return filepath.Join(l.Dir, "fencing.json") }

// fencingRequest is the content of fencing.json.
type fencingRequest struct {
	FencedInstances []string `json:"fencedInstances"`
	Hibernation     string   `json:"hibernation"`
}

// applyFencing sets c's fencing annotations from fencing.json, if there is
// one, and checks them; c is the controller's copy of the manifest.
func applyFencing(l Layout, c *v1.Cluster) (fenced []string, hibernate bool, err error) {
	b, err := os.ReadFile(fencingFile(l))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, false, err
	default:
		var req fencingRequest
		if err := json.Unmarshal(b, &req); err != nil {
			return nil, false, fmt.Errorf("%s: %w", fencingFile(l), err)
		}
		list, err := json.Marshal(req.FencedInstances)
		if err != nil {
			return nil, false, err
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[v1.FencedInstancesAnnotation] = string(list)
		c.Annotations[v1.HibernationAnnotation] = req.Hibernation
	}
	if fenced, err = c.Fenced(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", v1.FencedInstancesAnnotation, err)
	}
	if hibernate, err = c.Hibernated(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", v1.HibernationAnnotation, err)
	}
	return fenced, hibernate, nil
}

// FenceOptions configure `pgward local fence` and `pgward local hibernate`.
type FenceOptions struct {
	Dir string
	// Instance is the instance to fence or unfence, v1.FenceAll for all;
	// "" for hibernation.
	Instance string
	On       bool
	Timeout  time.Duration
	Out      io.Writer
}

// Fence asks the controller to fence (On) or unfence an instance, and
// waits until the instance reports it.
func Fence(ctx context.Context, o FenceOptions) error {
	return changeFencing(ctx, o, func(req *fencingRequest) {
		if o.On {
			if !slices.Contains(req.FencedInstances, o.Instance) {
				req.FencedInstances = append(req.FencedInstances, o.Instance)
			}
			return
		}
		if o.Instance == v1.FenceAll {
			req.FencedInstances = nil
			return
		}
		req.FencedInstances = slices.DeleteFunc(req.FencedInstances, func(n string) bool { return n == o.Instance })
	})
}

// Hibernate asks the controller to shut every instance down (On) or to
// bring the cluster back, and waits until the instances report it.
func Hibernate(ctx context.Context, o FenceOptions) error {
	o.Instance = ""
	return changeFencing(ctx, o, func(req *fencingRequest) {
		req.Hibernation = map[bool]string{true: "on", false: "off"}[o.On]
	})
}

func changeFencing(ctx context.Context, o FenceOptions, change func(*fencingRequest)) error {
	if os.Geteuid() == 0 {
		return errRoot
	}
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return err
	}
	fenced, hibernate, err := applyFencing(l, c)
	if err != nil {
		return err
	}
	req := fencingRequest{FencedInstances: fenced, Hibernation: map[bool]string{true: "on", false: "off"}[hibernate]}
	change(&req)
	if req.FencedInstances == nil {
		req.FencedInstances = []string{}
	}
	// The same checks as the annotations', before anything is written.
	list, err := json.Marshal(req.FencedInstances)
	if err != nil {
		return err
	}
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[v1.FencedInstancesAnnotation] = string(list)
	c.Annotations[v1.HibernationAnnotation] = req.Hibernation
	if _, err := c.Fenced(); err != nil {
		return fmt.Errorf("instance: %w", err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if err := instance.WriteFileAtomic(fencingFile(l), b, 0o600); err != nil {
		return err
	}
	what := "hibernation " + req.Hibernation
	if o.Instance != "" {
		what = fmt.Sprintf("fencing of %s %s", o.Instance, map[bool]string{true: "on", false: "off"}[o.On])
	}
	_, _ = fmt.Fprintf(o.Out, "%s requested\n", what)
	if !controllerRunning(l) {
		_, _ = fmt.Fprintln(o.Out, "the controller is not running: it applies the request at the next pgward local up")
		return nil
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cl, err := newStatusClient(l, st.Cluster, 2*time.Second)
	if err != nil {
		return err
	}
	defer cl.CloseIdle()
	start := time.Now()
	for {
		sts, _ := observe(ctx, cl, st)
		if done, waiting := fencingDone(st.Instances[:c.Spec.Instances], sts, fencedSet(req)); done {
			_, _ = fmt.Fprintf(o.Out, "done (%s)\n", time.Since(start).Round(time.Millisecond))
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("%s: %s not there after %s", what, waiting, o.Timeout)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fencedSet is, per instance, whether the request keeps it down.
func fencedSet(req fencingRequest) func(string) bool {
	return func(n string) bool {
		return req.Hibernation == "on" || slices.Contains(req.FencedInstances, n) || slices.Contains(req.FencedInstances, v1.FenceAll)
	}
}

// fencingDone reports whether every instance is as requested: down and
// fenced, or running unfenced; waiting names the first that is not.
func fencingDone(instances []InstanceState, sts []*instanceapi.Status, down func(string) bool) (bool, string) {
	for i, is := range instances {
		if i >= len(sts) {
			break
		}
		s := sts[i]
		switch {
		case s == nil:
			return false, is.Name + " (not answering)"
		case down(is.Name) && (s.PostmasterRunning || !s.Fenced):
			return false, is.Name + " fenced"
		case !down(is.Name) && (!s.PostmasterRunning || s.Fenced || !s.Ready):
			return false, is.Name + " running"
		}
	}
	return true, ""
}
