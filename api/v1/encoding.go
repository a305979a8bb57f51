package v1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serverEncodings are the encodings PostgreSQL 15 can use for a database
// (pg_wchar.h, the ones marked as server encodings), keyed by their name
// cleaned as PostgreSQL cleans it: lower case, letters and digits only.
var serverEncodings = map[string]string{
	"sqlascii": "SQL_ASCII", "utf8": "UTF8", "unicode": "UTF8",
	"eucjp": "EUC_JP", "euccn": "EUC_CN", "euckr": "EUC_KR", "euctw": "EUC_TW", "eucjis2004": "EUC_JIS_2004",
	"muleinternal": "MULE_INTERNAL",
	"latin1":       "LATIN1", "latin2": "LATIN2", "latin3": "LATIN3", "latin4": "LATIN4", "latin5": "LATIN5",
	"latin6": "LATIN6", "latin7": "LATIN7", "latin8": "LATIN8", "latin9": "LATIN9", "latin10": "LATIN10",
	"iso88591": "LATIN1", "iso88592": "LATIN2", "iso88593": "LATIN3", "iso88594": "LATIN4", "iso88599": "LATIN5",
	"iso885910": "LATIN6", "iso885913": "LATIN7", "iso885914": "LATIN8", "iso885915": "LATIN9", "iso885916": "LATIN10",
	"iso88595": "ISO_8859_5", "iso88596": "ISO_8859_6", "iso88597": "ISO_8859_7", "iso88598": "ISO_8859_8",
	"koi8r": "KOI8R", "koi8": "KOI8R", "koi8u": "KOI8U",
	"win866": "WIN866", "alt": "WIN866", "win874": "WIN874", "win1250": "WIN1250", "win1251": "WIN1251", "win": "WIN1251",
	"win1252": "WIN1252", "win1253": "WIN1253", "win1254": "WIN1254", "win1255": "WIN1255", "win1256": "WIN1256",
	"win1257": "WIN1257", "win1258": "WIN1258",
	"windows866": "WIN866", "windows874": "WIN874", "windows1250": "WIN1250", "windows1251": "WIN1251",
	"windows1252": "WIN1252", "windows1253": "WIN1253", "windows1254": "WIN1254", "windows1255": "WIN1255",
	"windows1256": "WIN1256", "windows1257": "WIN1257", "windows1258": "WIN1258",
}

func cleanEncodingName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// validateEncoding refuses what initdb refuses before it writes anything:
// an encoding that is not a server encoding, and an encoding that does not
// match the codeset a locale names ("en_US.UTF-8" with LATIN1). The C and
// POSIX locales, and SQL_ASCII, go with anything. Whether a locale is
// installed only the machine can tell: see the local runtime's preflight.
func validateEncoding(in *BootstrapInitDB, path *field.Path) field.ErrorList {
	enc := "UTF8"
	if in.Encoding != "" {
		var ok bool
		if enc, ok = serverEncodings[cleanEncodingName(in.Encoding)]; !ok {
			return field.ErrorList{field.Invalid(path.Child("encoding"), in.Encoding, "is not a valid server encoding name (e.g. UTF8, LATIN1, SQL_ASCII)")}
		}
	}
	var errs field.ErrorList
	for _, l := range []struct{ name, value string }{{"localeCollate", in.LocaleCollate}, {"localeCType", in.LocaleCType}} {
		_, codeset, ok := strings.Cut(l.value, ".")
		if !ok || enc == "SQL_ASCII" {
			continue
		}
		codeset, _, _ = strings.Cut(codeset, "@")
		localeEnc, known := serverEncodings[cleanEncodingName(codeset)]
		if known && localeEnc != enc && localeEnc != "SQL_ASCII" {
			errs = append(errs, field.Invalid(path.Child(l.name), l.value, fmt.Sprintf(
				"uses encoding %s, which does not match the database encoding %s: initdb would refuse it", localeEnc, enc)))
		}
	}
	return errs
}
