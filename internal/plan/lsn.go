package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's write-ahead log: a byte offset into the
// WAL stream. Positions on the same timeline compare as integers.
type LSN uint64

// ParseLSN parses PostgreSQL's text form of an LSN: two hexadecimal numbers
// of one to eight digits separated by a slash, high half first ("16/B374D848").
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q: want two hexadecimal numbers separated by '/'", s)
	}
	h, err := parseLSNHalf(hi)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: high half: %w", s, err)
	}
	l, err := parseLSNHalf(lo)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: low half: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

func parseLSNHalf(s string) (uint64, error) {
	if s == "" || len(s) > 8 {
		return 0, errors.New("want 1 to 8 hexadecimal digits")
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, errors.New("not a hexadecimal number")
	}
	return v, nil
}

// String formats l the way PostgreSQL prints it, for example "16/B374D848".
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF)
}

// MarshalText implements encoding.TextMarshaler so that persisted Memory and
// status documents carry the familiar text form.
func (l LSN) MarshalText() ([]byte, error) {
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// bytesBehind reports how many bytes of WAL l lacks to reach ahead, or 0 when
// l is not behind.
func (l LSN) bytesBehind(ahead LSN) uint64 {
	if l >= ahead {
		return 0
	}
	return uint64(ahead - l)
}
