package secrets

import (
	"fmt"
	"strconv"
	"strings"
)

// PgpassLine is one pgpass line that gives c's password for host:port and
// any database (so that psql's \c keeps working), escaped as libpq reads
// it. host is what libpq matches the line against: the host parameter,
// not hostaddr. A client told to go elsewhere (another -h or -p) finds
// no password here.
func PgpassLine(c Credentials, host string, port int) (string, error) {
	if err := validateUsername(c.Username); err != nil {
		return "", err
	}
	if err := ValidatePassword(c.Password); err != nil {
		return "", err
	}
	if err := validateHost(host); err != nil {
		return "", err
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("secrets: port %d is out of range", port)
	}
	return strings.Join([]string{escapePgpass(host), strconv.Itoa(port), "*", escapePgpass(c.Username), escapePgpass(c.Password)}, ":") + "\n", nil
}
