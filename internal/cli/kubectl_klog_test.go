package cli

import (
	"errors"
	"io"
	"os"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// TestQuietKlog: what client-go logs on its own (a port-forward's closed
// stream, an unhandled error) never reaches the plugin's stderr.
func TestQuietKlog(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	quietKlog()
	klog.ErrorS(errors.New("EOF"), "Error copying from local connection to remote stream")
	utilruntime.HandleError(errors.New("handled"))
	klog.Flush()
	os.Stderr = saved
	_ = w.Close()
	out, _ := io.ReadAll(r)
	if len(out) > 0 {
		t.Errorf("client-go's logs reached stderr:\n%s", out)
	}
}
