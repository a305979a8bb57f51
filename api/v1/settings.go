package v1

import (
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// postgres15Settings is pg_settings of the PostgreSQL pgward runs: every
// parameter's name, type, unit, bounds and enum values. A manifest is
// checked against it before anything is written, so a name or value the
// server would refuse fails validation naming the field, instead of an
// instance that cannot start. test/e2e checks the file against the
// installed server, and checks this package's verdicts against the
// server's own on thousands of values.
//
//go:embed postgres15_settings.tsv
var postgres15Settings string

// setting is one row of pg_settings.
type setting struct {
	name     string // as PostgreSQL spells it (TimeZone, DateStyle)
	vartype  string // bool, integer, real, string, enum
	unit     string // the base unit: B, kB, 8kB, MB, ms, s, min, or ""
	min, max float64
	enumvals []string
	context  string
}

// settings maps lower-cased names to their rows.
var settings = parseSettings(postgres15Settings)

func parseSettings(tsv string) map[string]setting {
	out := make(map[string]setting)
	for line := range strings.SplitSeq(tsv, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			panic(fmt.Sprintf("postgres15_settings.tsv: %d fields in %q", len(f), line))
		}
		s := setting{name: f[0], vartype: f[1], unit: f[2], context: f[6]}
		if f[3] != "" {
			s.min, _ = strconv.ParseFloat(f[3], 64)
			s.max, _ = strconv.ParseFloat(f[4], 64)
		}
		if f[5] != "" {
			s.enumvals = strings.Split(f[5], ",")
		}
		out[strings.ToLower(f[0])] = s
	}
	return out
}

// checkSettingValue checks a value as PostgreSQL's configuration file
// parser would: the name must exist (unless it is an extension's,
// "ext.name", which only the extension can check once loaded), booleans
// and enums take their spellings, numbers their units and bounds. A
// string's meaning (a time zone, a search path) is for the server: see
// pgcheck, which asks it.
func checkSettingValue(name, value string) error {
	s, ok := settings[name]
	if !ok {
		if strings.Contains(name, ".") {
			// A module's: whether the module is loaded is the Cluster's
			// business (CheckModuleParameter).
			return nil
		}
		if near := nearestSetting(name); near != "" {
			return fmt.Errorf("PostgreSQL 15 has no parameter %q (did you mean %q?)", name, near)
		}
		return fmt.Errorf("PostgreSQL 15 has no parameter %q", name)
	}
	if s.context == "internal" {
		return fmt.Errorf("parameter %q is read-only: PostgreSQL reports it, it cannot be set", name)
	}
	switch s.vartype {
	case "bool":
		if _, ok := parseBool(value); !ok {
			return fmt.Errorf("parameter %q requires a Boolean value (on, off, true, false, yes, no, 1, 0)", name)
		}
	case "enum":
		if !s.enumAccepts(value) {
			return fmt.Errorf("parameter %q must be one of %s", name, strings.Join(s.enumvals, ", "))
		}
	case "integer", "real":
		return s.checkNumber(value)
	}
	return nil
}

// parseBool is PostgreSQL's parse_bool: any case, any unambiguous prefix
// of true, false, yes, no; on and off (at least "of"); 1 and 0.
func parseBool(v string) (value, ok bool) {
	l := strings.ToLower(v)
	switch {
	case l == "":
		return false, false
	case strings.HasPrefix("true", l), strings.HasPrefix("yes", l), l == "on", l == "1":
		return true, true
	case strings.HasPrefix("false", l), strings.HasPrefix("no", l), len(l) >= 2 && strings.HasPrefix("off", l), l == "0":
		return false, true
	}
	return false, false
}

// enumAccepts matches PostgreSQL's enum parsing: any case. Enums that
// offer on and off also take the Boolean spellings PostgreSQL keeps
// hidden from enumvals (synchronous_commit = true, huge_pages = yes).
func (s setting) enumAccepts(v string) bool {
	if slices.ContainsFunc(s.enumvals, func(e string) bool { return strings.EqualFold(e, v) }) {
		return true
	}
	if slices.Contains(s.enumvals, "on") && slices.Contains(s.enumvals, "off") {
		switch strings.ToLower(v) {
		case "true", "false", "yes", "no", "1", "0":
			return true
		}
	}
	return false
}

// Units PostgreSQL accepts, in bytes or in milliseconds.
var (
	memoryUnits = map[string]float64{"B": 1, "kB": 1 << 10, "8kB": 8 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	timeUnits   = map[string]float64{"us": 0.001, "ms": 1, "s": 1000, "min": 60 * 1000, "h": 3600 * 1000, "d": 24 * 3600 * 1000}
)

// checkNumber is PostgreSQL's parse_int/parse_real with units and bounds:
// a number (integers also in hex or octal, and fractions, which are then
// rounded), optional whitespace, an optional unit of the parameter's kind
// (case matters), converted to the parameter's base unit.
func (s setting) checkNumber(value string) error {
	v, rest, ok := scanInteger(value)
	isHex := ok && strings.Contains(strings.ToLower(value[:len(value)-len(rest)]), "0x")
	switch {
	case s.vartype == "real" && isHex:
		// strtod reads hex too: keep the integer part (a hex fraction
		// or exponent is refused as a unit, stricter than PostgreSQL).
	case s.vartype == "real", ok && rest != "" && strings.ContainsRune(".eE", rune(rest[0])):
		v, rest, ok = scanDecimal(value)
	}
	if !ok {
		return fmt.Errorf("parameter %q requires a numeric value", s.name)
	}
	if unit := strings.TrimSpace(rest); unit != "" {
		units, factor := memoryUnits, memoryUnits[s.unit]
		if _, isTime := timeUnits[s.unit]; isTime {
			units, factor = timeUnits, timeUnits[s.unit]
		}
		if s.unit == "" || units[unit] == 0 {
			return fmt.Errorf("parameter %q: invalid unit (%s)", s.name, s.validUnits())
		}
		v = v * units[unit] / factor
	}
	if s.vartype == "integer" {
		v = math.RoundToEven(v)
		if v > math.MaxInt32 || v < math.MinInt32 {
			return fmt.Errorf("parameter %q: value out of range", s.name)
		}
	}
	if v < s.min || v > s.max {
		return fmt.Errorf("parameter %q: value outside the valid range (%s .. %s%s)", s.name,
			strconv.FormatFloat(s.min, 'f', -1, 64), strconv.FormatFloat(s.max, 'f', -1, 64), unitSuffix(s.unit))
	}
	return nil
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

func (s setting) validUnits() string {
	switch {
	case s.unit == "":
		return "this parameter takes no unit"
	case timeUnits[s.unit] != 0:
		return `valid units are "us", "ms", "s", "min", "h" and "d"`
	}
	return `valid units are "B", "kB", "MB", "GB" and "TB"`
}

// scanInteger reads the longest integer at the start of s as C's strtol
// with base 0 does: leading whitespace, a sign, then 0x and hex digits, a
// 0 and octal digits, or decimal digits. It returns what follows.
func scanInteger(s string) (v float64, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t\n\r\f\v")
	i, neg := 0, false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base, digits := 10, "0123456789"
	switch {
	case strings.HasPrefix(s[i:], "0x") || strings.HasPrefix(s[i:], "0X"):
		if len(s) > i+2 && strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i+2])) {
			base, digits = 16, "0123456789abcdefABCDEF"
			i += 2
		}
	case strings.HasPrefix(s[i:], "0"):
		base, digits = 8, "01234567"
	}
	j := i
	for j < len(s) && strings.IndexByte(digits, s[j]) >= 0 {
		j++
	}
	if j == i {
		return 0, s, false
	}
	n, err := strconv.ParseUint(s[i:j], base, 64)
	if err != nil || n > math.MaxInt64 {
		return 0, s, false // strtol's ERANGE
	}
	v = float64(n)
	if neg {
		v = -v
	}
	return v, s[j:], true
}

// scanDecimal reads the longest decimal number at the start of s (after
// whitespace) as strtod does: sign, digits, a point, digits, an exponent.
// Hex floats, inf and nan, which strtod also reads, are refused: no
// setting needs them.
func scanDecimal(s string) (v float64, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t\n\r\f\v")
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	mant := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i == mant || (i == mant+1 && s[mant] == '.') {
		return 0, s, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, s, false // strtod's ERANGE
	}
	return v, s[i:], true
}

// nearestSetting suggests the parameter a mistyped name most likely meant.
func nearestSetting(name string) string {
	best, bestDist := "", 3
	for n := range settings {
		if d := editDistance(name, n); d < bestDist || (d == bestDist && best != "" && n < best) {
			best, bestDist = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// loadedOnUse are the modules shipped with PostgreSQL whose parameters take
// effect without shared_preload_libraries: the server loads them when a
// function of theirs is first called.
var loadedOnUse = map[string]bool{"plpgsql": true, "pg_trgm": true}

// PreloadableLibraries are the libraries spec.postgresql.shared_preload_libraries
// may name: shipped with PostgreSQL 15 (the operand image and Debian's
// postgresql-15 have them), and harmless to load in every backend.
var PreloadableLibraries = []string{"pg_stat_statements", "auto_explain"}

// CheckModuleParameter refuses a module's parameter that would do nothing:
// the module must load on use, or be preloaded by the manifest; otherwise
// the server would accept the setting as a placeholder and ignore it.
func CheckModuleParameter(name string, preloaded []string) error {
	module, _, dotted := strings.Cut(name, ".")
	if !dotted || loadedOnUse[module] || slices.Contains(preloaded, module) {
		return nil
	}
	if slices.Contains(PreloadableLibraries, module) {
		return fmt.Errorf("parameter %q belongs to %s, which is not loaded: add it to spec.postgresql.shared_preload_libraries", name, module)
	}
	return fmt.Errorf("parameter %q belongs to %s, which pgward does not load (shared_preload_libraries takes %s): it would have no effect",
		name, module, strings.Join(PreloadableLibraries, ", "))
}
