package v1

// cnpRefusedFields are CloudNativePG Cluster fields that pgward refuses
// for good, each with its reason: unlike cnpOnlyFields ("not yet"), no
// later version is expected to accept them as they are.
var cnpRefusedFields = map[string]string{}

func init() {
	// barman-cloud's command-line options: pgward runs pgBackRest, whose
	// options are others. Passing them on would fail, or change what
	// pgBackRest does under a name that says barman.
	barmanArgs := "extra command-line options of barman-cloud, which pgward does not run: its backups are pgBackRest's, " +
		"and barman-cloud's options mean nothing there (pgward's store settings are the barmanObjectStore fields it implements, docs/backup.md)"
	for _, p := range []string{
		"backup.barmanObjectStore.data.additionalCommandArgs",
		"backup.barmanObjectStore.wal.archiveAdditionalCommandArgs",
		"backup.barmanObjectStore.wal.restoreAdditionalCommandArgs",
	} {
		cnpRefusedFields["spec."+p] = barmanArgs
	}
	// S3 server-side encryption. pgBackRest can ask for SSE-KMS only with
	// a key id, which CloudNativePG's field does not carry (aws:kms alone
	// means the account's default key); AES256 (SSE-S3) is a bucket
	// setting pgBackRest does not send per object, and S3 applies it to
	// every new object by default. Accepting either would promise an
	// encryption pgward does not ask for. Every object pgward writes is
	// encrypted on the client anyway (encryptionKey, docs/backup.md).
	sse := "S3 server-side encryption per object, which pgward's pgBackRest cannot request as this field says " +
		"(AES256 is the bucket's default encryption, set on the bucket; aws:kms needs a KMS key id this field does not carry); " +
		"every object pgward writes is already encrypted on the client with the cluster's encryptionKey (docs/backup.md)"
	for _, p := range []string{
		"backup.barmanObjectStore.wal.encryption", "backup.barmanObjectStore.data.encryption",
		"externalClusters[].barmanObjectStore.wal.encryption", "externalClusters[].barmanObjectStore.data.encryption",
	} {
		cnpRefusedFields["spec."+p] = sse
	}
}
