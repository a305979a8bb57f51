package build

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/pgward/pgward/api/v1"
)

// The pgward binary's place in a pod whose operand image is the user's.
const (
	volBinary = "pgward-bin"
	// BinaryDir is where the init container puts the pgward binary, for
	// the postgres container to run it from.
	BinaryDir = "/controller"
	// BinaryPath is the copied binary.
	BinaryPath = BinaryDir + "/pgward"
	// InitContainerName is the init container that copies pgward in.
	InitContainerName = "bootstrap-controller"
)

// OperandImage is the image the postgres container of c's pods runs.
func OperandImage(opts Options) string {
	if opts.ClusterImage != "" {
		return opts.ClusterImage
	}
	return opts.Image
}

// withOperandImage applies the Cluster's image settings to an instance
// pod. With a user's image (imageName or a catalog), which has PostgreSQL
// but no pgward, an init container of pgward's own image copies the static
// pgward binary into an emptyDir, and the postgres container runs it from
// there, mounted read-only: what CloudNativePG does with its manager. The
// init container has the postgres container's security context.
func withOperandImage(pod *corev1.Pod, c *v1.Cluster, opts Options) {
	main := &pod.Spec.Containers[0]
	if p := c.Spec.ImagePullPolicy; p != "" {
		main.ImagePullPolicy = corev1.PullPolicy(p)
	}
	for _, s := range c.Spec.ImagePullSecrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s.Name})
	}
	if opts.ClusterImage == "" {
		return
	}
	main.Image = opts.ClusterImage
	main.Command[0] = BinaryPath
	main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: volBinary, MountPath: BinaryDir, ReadOnly: true})
	pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
		Name:            InitContainerName,
		Image:           opts.Image,
		ImagePullPolicy: corev1.PullPolicy(opts.ImagePullPolicy),
		Command:         []string{"pgward", "instance", "install-binary", BinaryPath},
		SecurityContext: main.SecurityContext.DeepCopy(),
		VolumeMounts:    []corev1.VolumeMount{{Name: volBinary, MountPath: BinaryDir}},
		// The copy needs little: a bounded init container also keeps the
		// pod's quota accounting honest.
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	})
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: volBinary, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(resource.MustParse("256Mi"))},
	}})
}
