package v1

// Defaults applied by SetDefaults.
const (
	DefaultInstances = 1
	DefaultDatabase  = "app"
	DefaultEncoding  = "UTF8"
	// DefaultLocale is used for LC_COLLATE and LC_CTYPE. "C" sorts by byte
	// value: indexes never need rebuilding after an operating system's
	// collation library changes, which is the usual cause of silently
	// corrupted indexes after an image upgrade.
	DefaultLocale = "C"
)

// SetDefaults fills in every field of c that the user left empty. It is
// idempotent, never overrides a value the user set (even an invalid one,
// which Validate then reports) and is applied before Validate.
func SetDefaults(c *Cluster) {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.Spec.Instances == 0 {
		c.Spec.Instances = DefaultInstances
	}
	if c.Spec.EnableSuperuserAccess == nil {
		c.Spec.EnableSuperuserAccess = new(false)
	}
	if c.Spec.Bootstrap == nil {
		c.Spec.Bootstrap = &BootstrapConfiguration{}
	}
	if r := c.Spec.Bootstrap.Recovery; r != nil && c.Spec.Bootstrap.InitDB == nil {
		if r.Database == "" {
			r.Database = DefaultDatabase
		}
		if r.Owner == "" {
			r.Owner = r.Database
		}
	} else if p := c.Spec.Bootstrap.PgBaseBackup; p != nil && c.Spec.Bootstrap.InitDB == nil {
		if p.Database == "" {
			p.Database = DefaultDatabase
		}
		if p.Owner == "" {
			p.Owner = p.Database
		}
	} else {
		// initdb is the default bootstrap method.
		if c.Spec.Bootstrap.InitDB == nil {
			c.Spec.Bootstrap.InitDB = &BootstrapInitDB{}
		}
		setInitDBDefaults(c.Spec.Bootstrap.InitDB)
	}
	setBackupDefaults(c)
	setStorageDefaults(&c.Spec.StorageConfiguration)
}

// setInitDBDefaults fills in the application database and initdb options.
func setInitDBDefaults(in *BootstrapInitDB) {
	if in.Database == "" {
		in.Database = DefaultDatabase
	}
	if in.Owner == "" {
		in.Owner = in.Database
	}
	// Checksums detect storage corruption, and pg_rewind (which rejoins a
	// failed primary) needs them or wal_log_hints.
	if in.DataChecksums == nil {
		in.DataChecksums = new(true)
	}
	if in.Encoding == "" {
		in.Encoding = DefaultEncoding
	}
	if in.LocaleCollate == "" {
		in.LocaleCollate = DefaultLocale
	}
	if in.LocaleCType == "" {
		in.LocaleCType = DefaultLocale
	}
}
